//! UTC timestamps as text, from Unix milliseconds the caller read from its clock.
//! Hand-rolled (Howard Hinnant's days → civil date) because two formats do not
//! justify a date-time crate.

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// `2026-11-27T18:43:12.345Z`
    pub fn rfc3339(self) -> String {
        let (date, (h, m, s)) = split(self.0.div_euclid(1000));
        let (y, mo, d) = date;
        let ms = self.0.rem_euclid(1000);
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
    }

    /// `20261127T184312Z`: sortable, and safe as a path component.
    pub fn compact(self) -> String {
        let ((y, mo, d), (h, m, s)) = split(self.0.div_euclid(1000));
        format!("{y:04}{mo:02}{d:02}T{h:02}{m:02}{s:02}Z")
    }
}

type Date = (i64, u32, u32);
type TimeOfDay = (i64, i64, i64);

fn split(secs: i64) -> (Date, TimeOfDay) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    (
        civil_from_days(days),
        (rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

fn civil_from_days(days: i64) -> Date {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::UnixMillis;

    #[test]
    fn formats() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z", "19700101T000000Z"),
            (
                1_795_804_992_345,
                "2026-11-27T18:43:12.345Z",
                "20261127T184312Z",
            ),
            // Leap day, and the last millisecond of a leap year.
            (
                951_782_400_000,
                "2000-02-29T00:00:00.000Z",
                "20000229T000000Z",
            ),
            (
                1_735_689_599_999,
                "2024-12-31T23:59:59.999Z",
                "20241231T235959Z",
            ),
            (-1, "1969-12-31T23:59:59.999Z", "19691231T235959Z"),
        ];
        for (ms, rfc, compact) in cases {
            assert_eq!(UnixMillis(ms).rfc3339(), rfc, "{ms}");
            assert_eq!(UnixMillis(ms).compact(), compact, "{ms}");
        }
    }
}

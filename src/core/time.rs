//! UTC timestamps as text, from Unix milliseconds the caller read from its clock.
//! Hand-rolled (Howard Hinnant's days → civil date) because two formats do not
//! justify a date-time crate.

/// Where "now" comes from: the system clock in the server, a fixed one in tests. The
/// core only names the type; reading a clock happens at the edges.
pub type Clock = std::sync::Arc<dyn Fn() -> UnixMillis + Send + Sync>;

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

impl UnixMillis {
    /// Parses a [`UnixMillis::compact`] stamp (`20261127T184312Z`) back; whole seconds.
    pub fn from_compact(stamp: &str) -> Option<UnixMillis> {
        let b = stamp.as_bytes();
        if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
            return None;
        }
        let num = |range: std::ops::Range<usize>| stamp.get(range)?.parse::<i64>().ok();
        let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
        let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        let days = days_from_civil(y, mo, d);
        Some(UnixMillis((days * 86_400 + h * 3600 + mi * 60 + s) * 1000))
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
            assert_eq!(
                UnixMillis::from_compact(compact),
                Some(UnixMillis(ms.div_euclid(1000) * 1000)),
                "{compact}"
            );
        }
    }

    #[test]
    fn bad_compact_stamps() {
        for bad in [
            "",
            "20261327T000000Z",
            "20261127T250000Z",
            "20261127 184312Z",
            "2026112T184312Z",
        ] {
            assert_eq!(UnixMillis::from_compact(bad), None, "{bad}");
        }
    }
}

//! Durations as people read and write them: the config's `"90s"`, `"15m"`, `"1h30m"`,
//! `"500ms"`, `"7d"` ([`parse_duration`]), a limit printed back in that syntax
//! ([`format_limit`]), and how long something took ([`format_elapsed`]: the one
//! formatter of measured durations, for the deploy log, the dashboard and its live
//! updates alike).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a duration: write a number and a unit (ms, s, m, h, d), e.g. \"90s\" or \"1h30m\""
)]
pub struct DurationError(pub String);

pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(text.to_owned());
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(err());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let number: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        let ms = number.checked_mul(unit_ms).ok_or_else(err)?;
        total = total
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(err)?;
    }
    Ok(total)
}

/// A limit (`step_timeout`, a health check's `timeout`) in the config's own syntax, so
/// a message about it reads as the operator wrote it: whole seconds as `"90s"`,
/// anything finer as `"1500ms"`. [`parse_duration`] reads it back unchanged.
pub fn format_limit(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// How long something took, for people: `"999 ms"`, `"12.3 s"`, `"12m 34s"`.
/// Milliseconds because that is what the store keeps (`duration_ms`).
pub fn format_elapsed(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{}m {:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_print_in_the_config_syntax_and_parse_back() {
        let cases = [
            (Duration::from_secs(90), "90s"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(900), "900s"),
            (Duration::ZERO, "0s"),
        ];
        for (d, text) in cases {
            assert_eq!(format_limit(d), text, "{d:?}");
            assert_eq!(parse_duration(text), Ok(d), "{text}");
        }
    }

    /// The dashboard's server-rendered stage rows, its live updates and the deploy log
    /// all show this text.
    #[test]
    fn elapsed_reads_naturally() {
        let cases = [
            (0, "0 ms"),
            (999, "999 ms"),
            (1_000, "1.0 s"),
            (12_345, "12.3 s"),
            (59_999, "60.0 s"),
            (60_000, "1m 00s"),
            (754_000, "12m 34s"),
            (3_600_000, "60m 00s"),
        ];
        for (ms, expected) in cases {
            assert_eq!(format_elapsed(ms), expected, "{ms}");
        }
    }

    #[test]
    fn table() {
        let ok = [
            ("90s", 90_000),
            ("15m", 900_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("7d", 604_800_000),
            (" 2s ", 2_000),
            ("0s", 0),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in [
            "",
            "90",
            "s",
            "1.5s",
            "-1s",
            "10 s",
            "3w",
            "1h30",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}

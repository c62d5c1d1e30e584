//! Sizes as the config writes them: `"50MiB"`, `"512KiB"`, `"1GiB"`, `"100MB"`, `"4096"`.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a size: write a number and a unit (B, KiB, MiB, GiB, KB, MB, GB), e.g. \"50MiB\""
)]
pub struct SizeError(pub String);

/// Bytes. Units are case-insensitive; a bare number is bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let err = || SizeError(text.to_owned());
    let trimmed = text.trim();
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    let number: u64 = trimmed[..digits].parse().map_err(|_| err())?;
    let unit: u64 = match trimmed[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(err()),
    };
    number.checked_mul(unit).ok_or_else(err)
}

/// The shortest exact spelling: `52428800` → `50 MiB`, `1000` → `1000 B`.
pub fn format_size(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases: &[(&str, Option<u64>)] = &[
            ("50MiB", Some(50 << 20)),
            ("50 MiB", Some(50 << 20)),
            ("512kib", Some(512 << 10)),
            ("1GiB", Some(1 << 30)),
            ("100MB", Some(100_000_000)),
            ("2kB", Some(2_000)),
            ("4096", Some(4096)),
            ("10b", Some(10)),
            ("", None),
            ("MiB", None),
            ("1.5MiB", None),
            ("-1MiB", None),
            ("50 mebibytes", None),
            ("99999999999999999999GiB", None),
            ("18446744073709551615GiB", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_size(text).ok(), *expected, "{text:?}");
        }
        assert!(
            parse_size("1.5MiB")
                .unwrap_err()
                .to_string()
                .contains("\"1.5MiB\"")
        );
    }

    #[test]
    fn formatted() {
        for (bytes, text) in [
            (50u64 << 20, "50 MiB"),
            (1 << 30, "1 GiB"),
            (1536, "1536 B"),
            (2048, "2 KiB"),
            (1000, "1000 B"),
            (0, "0 B"),
        ] {
            assert_eq!(format_size(bytes), text, "{bytes}");
        }
    }
}

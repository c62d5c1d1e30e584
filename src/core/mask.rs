//! Masking secret values in log lines. The webhook secret, the API token and every
//! `env` value whose name says it is secret are replaced by `***` before a line is
//! written or broadcast.

use std::borrow::Cow;

/// Variable names that hold secrets, by the convention most tools share.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["SECRET", "TOKEN", "PASSWORD", "KEY"]
        .iter()
        .any(|word| upper.contains(word))
}

/// Values shorter than this are not masked: masking `KEY=1` would star every `1` in
/// the log and hide more than it protects.
pub const MIN_MASKED_LEN: usize = 4;

#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so a secret containing another is masked whole.
    values: Vec<String>,
}

impl Masker {
    pub fn new(values: impl IntoIterator<Item = String>) -> Masker {
        let mut values: Vec<String> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_MASKED_LEN)
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Masker { values }
    }

    pub fn mask<'a>(&self, line: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(line);
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), "***"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for (name, secret) in [
            ("DB_PASSWORD", true),
            ("api_token", true),
            ("STRIPE_SECRET", true),
            ("APP_KEY", true),
            ("KEYBOARD", true),
            ("APP_ENV", false),
            ("PATH", false),
        ] {
            assert_eq!(is_secret_name(name), secret, "{name}");
        }
    }

    #[test]
    fn masks_every_occurrence_longest_first() {
        let masker = Masker::new([
            "hunter2".to_string(),
            "hunter2-extra".to_string(),
            "1".to_string(),
        ]);
        let cases = [
            ("password is hunter2", "password is ***"),
            ("hunter2 and hunter2", "*** and ***"),
            ("hunter2-extra!", "***!"),
            ("nothing here: 1 2 3", "nothing here: 1 2 3"),
        ];
        for (line, expected) in cases {
            assert_eq!(masker.mask(line), expected);
        }
        assert!(matches!(masker.mask("clean"), Cow::Borrowed(_)));
    }
}

//! Masking secret values in log lines. The webhook secret, the API token and every
//! `env` value whose name says it is secret are replaced by `***` before a line is
//! written or broadcast, and so are their base64 (standard and URL-safe, with and
//! without padding) and hex (lower and upper case) forms, which builds print when
//! they write an `Authorization: Basic` header or dump a config.
//!
//! Not masked, on purpose or because it cannot be known: other encodings (URL-escaped,
//! JSON-escaped, base64 of the value inside a longer text), a value split across lines
//! or written one character at a time across an idle flush, and values shorter than
//! [`MIN_MASKED_LEN`].

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

#[derive(Clone, Default)]
pub struct Masker {
    /// Every form of every value, longest first, so a secret containing another is
    /// masked whole.
    values: Vec<String>,
}

/// Never the values themselves.
impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masker({} forms)", self.values.len())
    }
}

impl Masker {
    pub fn new(values: impl IntoIterator<Item = String>) -> Masker {
        let mut forms: Vec<String> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_MASKED_LEN)
            .flat_map(|v| encoded_forms(&v).into_iter().chain([v]))
            .collect();
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Masker { values: forms }
    }

    /// Every text that is masked (values and their encodings), longest first: what a
    /// line must never be cut through before it is masked.
    pub fn forms(&self) -> &[String] {
        &self.values
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

/// The base64 (standard, URL-safe; padded, unpadded) and hex (lower, upper) forms.
fn encoded_forms(value: &str) -> Vec<String> {
    use base64::prelude::{
        BASE64_STANDARD, BASE64_STANDARD_NO_PAD, BASE64_URL_SAFE, BASE64_URL_SAFE_NO_PAD,
        Engine as _,
    };
    let bytes = value.as_bytes();
    let mut forms = Vec::with_capacity(6);
    for engine in [
        &BASE64_STANDARD_NO_PAD,
        &BASE64_STANDARD,
        &BASE64_URL_SAFE_NO_PAD,
        &BASE64_URL_SAFE,
    ] {
        forms.push(engine.encode(bytes));
    }
    let hex = hex::encode(bytes);
    forms.push(hex.to_ascii_uppercase());
    forms.push(hex);
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        // The second form is standard base64, padded.
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encoded_forms(input)[1], expected, "{input}");
        }
    }

    #[test]
    fn encoded_forms_of_a_secret_are_masked() {
        // "s3cr?t>>" encodes with '+' and '/' in standard base64 and '-' and '_' in
        // URL-safe: the two alphabets differ on it.
        let masker = Masker::new(["s3cr?t>>~".to_string()]);
        let cases = [
            ("plain s3cr?t>>~", "plain ***"),
            ("std czNjcj90Pj5+", "std ***"),
            ("url czNjcj90Pj5-", "url ***"),
            ("hex 733363723f743e3e7e", "hex ***"),
            ("HEX 733363723F743E3E7E", "HEX ***"),
        ];
        for (line, expected) in cases {
            assert_eq!(masker.mask(line), expected, "{line}");
        }
        let padded = Masker::new(["hunter2".to_string()]);
        for (line, expected) in [
            (
                "Authorization: Basic aHVudGVyMg==",
                "Authorization: Basic ***",
            ),
            ("unpadded aHVudGVyMg.", "unpadded ***."),
            ("68756e74657232", "***"),
            ("68756E74657232", "***"),
        ] {
            assert_eq!(padded.mask(line), expected, "{line}");
        }
        assert_eq!(format!("{padded:?}"), "Masker(5 forms)");
    }

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

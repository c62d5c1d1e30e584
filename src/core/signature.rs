//! GitHub webhook signatures: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`.
//!
//! # Security
//!
//! The check runs over the raw bytes exactly as received, before anything parses
//! them, and the final comparison is constant-time (`Mac::verify_slice`), so a caller
//! cannot learn a valid signature byte by byte from response timings. The header
//! itself is public, so decoding its hex need not be constant-time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &[u8] = b"sha256=";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header (GitHub sends it whenever the hook has a secret).
    Missing,
    /// The header is not `sha256=` followed by 64 hex digits.
    Malformed,
    /// Well-formed, but not made with our secret over this body.
    Mismatch,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignatureError::Missing => {
                "missing X-Hub-Signature-256 header: set a secret on the GitHub webhook"
            }
            SignatureError::Malformed => {
                "malformed X-Hub-Signature-256 header: expected sha256=<64 hex digits>"
            }
            SignatureError::Mismatch => {
                "signature does not match: the webhook secret differs from stagehand's"
            }
        })
    }
}

impl std::error::Error for SignatureError {}

/// Checks `header` (the value of `X-Hub-Signature-256`) against `body` signed with `secret`.
pub fn verify(secret: &[u8], header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
    let mut verifier = Verifier::new(secret, header)?;
    verifier.update(body);
    verifier.finish()
}

/// [`verify`] over a body that arrives in pieces. The header is checked first, so a
/// request without a well-formed signature can be refused before its body is read.
pub struct Verifier {
    mac: HmacSha256,
    expected: [u8; 32],
}

impl Verifier {
    pub fn new(secret: &[u8], header: Option<&[u8]>) -> Result<Verifier, SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let hex_digest = header
            .trim_ascii()
            .strip_prefix(PREFIX)
            .ok_or(SignatureError::Malformed)?;
        let mut expected = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut expected).map_err(|_| SignatureError::Malformed)?;
        Ok(Verifier {
            mac: mac(secret, b""),
            expected,
        })
    }

    pub fn update(&mut self, piece: &[u8]) {
        self.mac.update(piece);
    }

    pub fn finish(self) -> Result<(), SignatureError> {
        self.mac
            .verify_slice(&self.expected)
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// Whether `expected` is the HMAC-SHA256 of `body` under `secret`, compared in constant
/// time: the check behind every forge's signature header.
pub fn verify_mac(secret: &[u8], body: &[u8], expected: &[u8]) -> bool {
    mac(secret, body).verify_slice(expected).is_ok()
}

/// The header value GitHub would send for `body`: used by `hook send`, the demo and tests.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex_mac(secret, body))
}

/// Hex HMAC-SHA256 of `message` under `key`: also derives the dashboard's session cookie
/// and CSRF token from the API token.
pub fn hex_mac(key: &[u8], message: &[u8]) -> String {
    hex::encode(mac(key, message).finalize().into_bytes())
}

fn mac(secret: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (long ones are hashed first), so this never fails;
    // an empty secret is refused earlier, by config validation.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's published test vector (docs: "Validating webhook deliveries").
    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn check(header: Option<&str>, body: &[u8], expected: Result<(), SignatureError>) {
        assert_eq!(
            verify(SECRET, header.map(str::as_bytes), body),
            expected,
            "header {header:?}"
        );
    }

    #[test]
    fn github_vector_signs_and_verifies() {
        assert_eq!(sign(SECRET, BODY), SIGNATURE);
        check(Some(SIGNATURE), BODY, Ok(()));
    }

    #[test]
    fn bad_headers_are_told_apart() {
        let upper = SIGNATURE.to_uppercase().replace("SHA256=", "sha256=");
        type Case<'a> = (Option<&'a str>, &'a [u8], Result<(), SignatureError>);
        let cases: &[Case<'_>] = &[
            (None, BODY, Err(SignatureError::Missing)),
            (Some(""), BODY, Err(SignatureError::Malformed)),
            (Some("sha1=757107ea"), BODY, Err(SignatureError::Malformed)),
            (Some("sha256="), BODY, Err(SignatureError::Malformed)),
            (Some("sha256=zz"), BODY, Err(SignatureError::Malformed)),
            (Some(&SIGNATURE[..70]), BODY, Err(SignatureError::Malformed)),
            (
                Some(SIGNATURE),
                b"Hello, World?",
                Err(SignatureError::Mismatch),
            ),
            (Some(SIGNATURE), b"", Err(SignatureError::Mismatch)),
            // Hex digits in either case decode to the same bytes.
            (Some(&upper), BODY, Ok(())),
        ];
        for (header, body, expected) in cases {
            check(*header, body, *expected);
        }
    }

    #[test]
    fn a_body_in_pieces_verifies_like_a_whole_one() {
        for split in [0, 1, 7, BODY.len()] {
            let mut verifier = Verifier::new(SECRET, Some(SIGNATURE.as_bytes())).unwrap();
            verifier.update(&BODY[..split]);
            verifier.update(&BODY[split..]);
            assert_eq!(verifier.finish(), Ok(()), "split at {split}");
        }
        let mut verifier = Verifier::new(SECRET, Some(SIGNATURE.as_bytes())).unwrap();
        verifier.update(&BODY[1..]);
        assert_eq!(verifier.finish(), Err(SignatureError::Mismatch));
    }

    #[test]
    fn other_secret_mismatches() {
        assert_eq!(
            verify(b"another secret", Some(SIGNATURE.as_bytes()), BODY),
            Err(SignatureError::Mismatch)
        );
    }
}

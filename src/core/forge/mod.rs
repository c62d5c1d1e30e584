//! Which forge sends an app's deliveries, and each forge's way of proving and describing
//! one: authentication over the raw body, the headers naming the event and the delivery,
//! and the body decoded into forge-neutral [`Event`]s that `intake` decides on.
//!
//! One module per forge (`github`, `gitlab`, `gitea` for Gitea and Forgejo, `bitbucket`);
//! this one dispatches. The HTTP edge only reads headers and bytes and calls
//! [`authenticate`], [`identify`] and [`decode`] in that order.
//!
//! # Security
//!
//! [`authenticate`] runs before anything else reads the body, and every comparison of a
//! secret-derived value is constant-time (HMAC `verify_slice`, or `subtle` over digests
//! for GitLab's plain token, so not even the token's length leaks).

mod bitbucket;
pub mod comment;
mod gitea;
mod github;
mod gitlab;
pub mod status;

use serde::Deserialize;

use super::event::{Event, EventError};

/// The forge an app's webhook comes from (`forge = "…"` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forge {
    #[default]
    Github,
    Gitlab,
    Gitea,
    Forgejo,
    Bitbucket,
}

impl Forge {
    pub const ALL: [Forge; 5] = [
        Forge::Github,
        Forge::Gitlab,
        Forge::Gitea,
        Forge::Forgejo,
        Forge::Bitbucket,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Forge::Github => "github",
            Forge::Gitlab => "gitlab",
            Forge::Gitea => "gitea",
            Forge::Forgejo => "forgejo",
            Forge::Bitbucket => "bitbucket",
        }
    }

    pub fn parse(name: &str) -> Option<Forge> {
        Forge::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// GitLab paths may nest groups (`group/sub/project`); the others are `owner/name`.
    pub fn valid_repository(self, full_name: &str) -> bool {
        let parts: Vec<&str> = full_name.split('/').collect();
        let shape = match self {
            Forge::Gitlab => parts.len() >= 2,
            _ => parts.len() == 2,
        };
        shape && parts.iter().all(|p| !p.is_empty())
    }
}

impl std::fmt::Display for Forge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header lookup by case-insensitive name: the HTTP edge implements it over its request,
/// tests over a slice of pairs.
pub trait Headers {
    fn get(&self, name: &str) -> Option<&[u8]>;

    fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }
}

impl Headers for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
    }
}

/// Why a delivery was not accepted as coming from the forge (always a 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing {header} header: set the webhook's secret to stagehand's")]
    Missing { header: &'static str },
    #[error("malformed {header} header: expected {expected}")]
    Malformed {
        header: &'static str,
        expected: &'static str,
    },
    #[error("{header} does not match: the webhook secret differs from stagehand's")]
    Mismatch { header: &'static str },
    /// GitHub's own errors keep their existing wording.
    #[error("{0}")]
    Github(#[from] super::signature::SignatureError),
}

/// Who sent what: the event name and the ids a redelivery repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub event: String,
    /// Unique per delivery and the same on the forge's retries: the redelivery key.
    pub delivery_id: String,
    /// The webhook's own id where the forge sends one, else empty.
    pub hook_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("missing {header} header")]
    MissingEvent { header: &'static str },
    #[error("missing or overlong {header} header")]
    BadDelivery { header: &'static str },
}

/// Checks the delivery came from the forge holding `secret`. Runs on the raw bytes,
/// before anything parses them.
pub fn authenticate(
    forge: Forge,
    secret: &[u8],
    headers: &(impl Headers + ?Sized),
    body: &[u8],
) -> Result<(), AuthError> {
    match forge {
        Forge::Github => github::authenticate(secret, headers, body),
        Forge::Gitlab => gitlab::authenticate(secret, headers),
        Forge::Gitea => gitea::authenticate(gitea::GITEA, secret, headers, body),
        Forge::Forgejo => gitea::authenticate(gitea::FORGEJO, secret, headers, body),
        Forge::Bitbucket => bitbucket::authenticate(secret, headers, body),
    }
}

/// What can be known before the body is read: the forge's signature (or token) header
/// is there and well-formed. The HTTP edge refuses a request failing this without
/// reading a byte of its body, so an unsigned flood costs no memory.
pub fn precheck(forge: Forge, headers: &(impl Headers + ?Sized)) -> Result<(), AuthError> {
    match forge {
        Forge::Github => github::precheck(headers),
        Forge::Gitlab => gitlab::precheck(headers),
        Forge::Gitea => gitea::precheck(gitea::GITEA, headers),
        Forge::Forgejo => gitea::precheck(gitea::FORGEJO, headers),
        Forge::Bitbucket => bitbucket::precheck(headers),
    }
}

/// The event name, delivery id and hook id, from the forge's headers (and, for a GitLab
/// too old to send any delivery id, from the body: a retry repeats the same bytes).
pub fn identify(
    forge: Forge,
    headers: &(impl Headers + ?Sized),
    body: &[u8],
) -> Result<Identity, IdentityError> {
    let (event, delivery, hook): (&'static str, &[&'static str], Option<&'static str>) = match forge
    {
        Forge::Github => (
            "X-GitHub-Event",
            &["X-GitHub-Delivery"],
            Some("X-GitHub-Hook-ID"),
        ),
        // The webhook UUID header changes per attempt; Idempotency-Key (GitLab 17.4+)
        // does not. Older GitLabs only send the per-event UUID.
        Forge::Gitlab => (
            "X-Gitlab-Event",
            &["Idempotency-Key", "X-Gitlab-Event-UUID"],
            None,
        ),
        Forge::Gitea => ("X-Gitea-Event", &["X-Gitea-Delivery"], None),
        Forge::Forgejo => ("X-Forgejo-Event", &["X-Forgejo-Delivery"], None),
        Forge::Bitbucket => ("X-Event-Key", &["X-Request-UUID"], Some("X-Hook-UUID")),
    };
    let event_name = headers
        .text(event)
        .filter(|e| !e.is_empty())
        .ok_or(IdentityError::MissingEvent { header: event })?;
    let sent = delivery
        .iter()
        .find_map(|h| headers.text(h).filter(|d| !d.is_empty()));
    let delivery_id = match sent {
        Some(id) if id.len() <= MAX_DELIVERY_ID => id.to_owned(),
        None if forge == Forge::Gitlab => {
            use sha2::Digest;
            format!("body-sha256:{}", hex::encode(sha2::Sha256::digest(body)))
        }
        _ => {
            return Err(IdentityError::BadDelivery {
                header: delivery[0],
            });
        }
    };
    let hook_id = hook.and_then(|h| headers.text(h)).unwrap_or_default();
    Ok(Identity {
        event: event_name.to_owned(),
        delivery_id,
        hook_id: hook_id.chars().take(MAX_DELIVERY_ID).collect(),
    })
}

/// Leaves room for the `#<n>` suffix of a multi-change delivery's later changes.
pub const MAX_DELIVERY_ID: usize = 100;

/// Decodes a verified body into the events it carries: one for most deliveries; one per
/// ref change for a Bitbucket `repo:push`, in the order the forge listed them.
pub fn decode(
    forge: Forge,
    event: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<Event>, EventError> {
    match forge {
        Forge::Github => github::decode(event, content_type, body).map(|e| vec![e]),
        Forge::Gitlab => gitlab::decode(event, body).map(|e| vec![e]),
        Forge::Gitea | Forge::Forgejo => {
            gitea::decode(forge, event, content_type, body).map(|e| vec![e])
        }
        Forge::Bitbucket => bitbucket::decode(event, body),
    }
}

/// The headers the forge would send with `body`: what `hook send --forge` and the tests
/// use to make deliveries exactly as each forge makes them.
pub fn delivery_headers(
    forge: Forge,
    secret: &[u8],
    event: &str,
    delivery_id: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let hex = super::signature::hex_mac(secret, body);
    let mut headers = vec![("Content-Type", "application/json".to_owned())];
    match forge {
        Forge::Github => headers.extend([
            ("X-GitHub-Event", event.to_owned()),
            ("X-GitHub-Delivery", delivery_id.to_owned()),
            ("X-GitHub-Hook-ID", "123456789".to_owned()),
            ("X-Hub-Signature-256", format!("sha256={hex}")),
        ]),
        Forge::Gitlab => headers.extend([
            ("X-Gitlab-Event", event.to_owned()),
            ("Idempotency-Key", delivery_id.to_owned()),
            (
                "X-Gitlab-Token",
                String::from_utf8_lossy(secret).into_owned(),
            ),
        ]),
        Forge::Gitea => headers.extend([
            ("X-Gitea-Event", event.to_owned()),
            ("X-Gitea-Delivery", delivery_id.to_owned()),
            ("X-Gitea-Signature", hex),
        ]),
        Forge::Forgejo => headers.extend([
            ("X-Forgejo-Event", event.to_owned()),
            ("X-Forgejo-Delivery", delivery_id.to_owned()),
            ("X-Forgejo-Signature", hex),
        ]),
        Forge::Bitbucket => headers.extend([
            ("X-Event-Key", event.to_owned()),
            ("X-Request-UUID", delivery_id.to_owned()),
            (
                "X-Hook-UUID",
                "{d3f3a2b1-0c4e-4b8a-9f1e-2a6b7c8d9e0f}".to_owned(),
            ),
            ("X-Hub-Signature", format!("sha256={hex}")),
        ]),
    }
    headers
}

/// Checks a bare hex HMAC-SHA256 of `body` (the part after any `sha256=` prefix).
fn verify_hex_mac(
    secret: &[u8],
    header: &'static str,
    value: Option<&[u8]>,
    prefix: &[u8],
    expected: &'static str,
    body: &[u8],
) -> Result<(), AuthError> {
    let digest = parse_hex_mac(header, value, prefix, expected)?;
    if super::signature::verify_mac(secret, body, &digest) {
        Ok(())
    } else {
        Err(AuthError::Mismatch { header })
    }
}

/// The 32-byte digest a signature header carries as `<prefix><64 hex digits>`.
fn parse_hex_mac(
    header: &'static str,
    value: Option<&[u8]>,
    prefix: &[u8],
    expected: &'static str,
) -> Result<[u8; 32], AuthError> {
    let value = value.ok_or(AuthError::Missing { header })?;
    let malformed = AuthError::Malformed { header, expected };
    let hex_digest = value
        .trim_ascii()
        .strip_prefix(prefix)
        .ok_or(malformed.clone())?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| malformed)?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    // GitHub's published vector; Gitea, Forgejo and Bitbucket use the same HMAC.
    const HEX: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn auth(forge: Forge, headers: &[(&str, &str)], body: &[u8]) -> Result<(), String> {
        authenticate(forge, SECRET, headers, body).map_err(|e| e.to_string())
    }

    #[test]
    fn each_forge_checks_its_own_header() {
        let prefixed = format!("sha256={HEX}");
        let token = "It's a Secret to Everybody";
        type Case<'a> = (Forge, Vec<(&'a str, &'a str)>, Result<(), &'a str>);
        let cases: Vec<Case<'_>> = vec![
            (
                Forge::Github,
                vec![("x-hub-signature-256", &prefixed)],
                Ok(()),
            ),
            (Forge::Gitlab, vec![("X-Gitlab-Token", token)], Ok(())),
            (
                Forge::Gitlab,
                vec![("X-Gitlab-Token", "It's a Secret to Everybod")],
                Err("X-Gitlab-Token does not match"),
            ),
            (
                Forge::Gitlab,
                vec![("X-Hub-Signature-256", &prefixed)],
                Err("missing X-Gitlab-Token"),
            ),
            (Forge::Gitea, vec![("X-Gitea-Signature", HEX)], Ok(())),
            (
                Forge::Gitea,
                vec![("X-Gitea-Signature", &prefixed)],
                Err("malformed X-Gitea-Signature"),
            ),
            // Forgejo also sends X-Gitea-Signature, but a Forgejo app trusts its own header.
            (
                Forge::Forgejo,
                vec![("X-Gitea-Signature", HEX)],
                Err("missing X-Forgejo-Signature"),
            ),
            (Forge::Forgejo, vec![("X-Forgejo-Signature", HEX)], Ok(())),
            (
                Forge::Bitbucket,
                vec![("X-Hub-Signature", &prefixed)],
                Ok(()),
            ),
            (
                Forge::Bitbucket,
                vec![("X-Hub-Signature", HEX)],
                Err("malformed X-Hub-Signature"),
            ),
            (
                Forge::Bitbucket,
                vec![("X-Hub-Signature-256", &prefixed)],
                Err("missing X-Hub-Signature"),
            ),
        ];
        for (forge, headers, expected) in cases {
            let got = auth(forge, &headers, BODY);
            match expected {
                Ok(()) => assert_eq!(got, Ok(()), "{forge} {headers:?}"),
                Err(needle) => {
                    let err = got.expect_err(needle);
                    assert!(err.contains(needle), "{forge}: {err}");
                }
            }
        }
        for forge in [
            Forge::Gitea,
            Forge::Forgejo,
            Forge::Bitbucket,
            Forge::Github,
        ] {
            let headers = delivery_headers(forge, SECRET, "push", "d", BODY);
            let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(auth(forge, &pairs, BODY), Ok(()), "{forge}");
            assert!(auth(forge, &pairs, b"Hello, World?").is_err(), "{forge}");
        }
    }

    #[test]
    fn identity_comes_from_each_forges_headers() {
        type Case<'a> = (
            Forge,
            Vec<(&'a str, &'a str)>,
            Result<(&'a str, &'a str, &'a str), &'a str>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                Forge::Gitlab,
                vec![
                    ("X-Gitlab-Event", "Push Hook"),
                    ("Idempotency-Key", "k1"),
                    ("X-Gitlab-Event-UUID", "e1"),
                    ("X-Gitlab-Webhook-UUID", "w1"),
                ],
                Ok(("Push Hook", "k1", "")),
            ),
            (
                Forge::Gitlab,
                vec![
                    ("X-Gitlab-Event", "Push Hook"),
                    ("X-Gitlab-Event-UUID", "e1"),
                ],
                Ok(("Push Hook", "e1", "")),
            ),
            // No delivery id at all (an old GitLab): the body's digest stands in.
            (
                Forge::Gitlab,
                vec![
                    ("X-Gitlab-Event", "Push Hook"),
                    ("X-Gitlab-Webhook-UUID", "w1"),
                ],
                Ok((
                    "Push Hook",
                    "body-sha256:dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f",
                    "",
                )),
            ),
            (
                Forge::Gitea,
                vec![("X-Gitea-Event", "push")],
                Err("missing or overlong X-Gitea-Delivery"),
            ),
            (
                Forge::Gitea,
                vec![("X-Gitea-Event", "push"), ("X-Gitea-Delivery", "g1")],
                Ok(("push", "g1", "")),
            ),
            (
                Forge::Forgejo,
                vec![("X-Forgejo-Event", "delete"), ("X-Forgejo-Delivery", "f1")],
                Ok(("delete", "f1", "")),
            ),
            (
                Forge::Bitbucket,
                vec![
                    ("X-Event-Key", "repo:push"),
                    ("X-Request-UUID", "b1"),
                    ("X-Hook-UUID", "h1"),
                ],
                Ok(("repo:push", "b1", "h1")),
            ),
            (
                Forge::Bitbucket,
                vec![("X-Request-UUID", "b1")],
                Err("missing X-Event-Key"),
            ),
        ];
        for (forge, headers, expected) in cases {
            let got = identify(forge, headers.as_slice(), b"Hello, World!");
            match expected {
                Ok((event, delivery, hook)) => {
                    let id = got.unwrap();
                    assert_eq!(
                        (
                            id.event.as_str(),
                            id.delivery_id.as_str(),
                            id.hook_id.as_str()
                        ),
                        (event, delivery, hook),
                        "{forge}"
                    );
                }
                Err(needle) => {
                    let err = got.unwrap_err().to_string();
                    assert!(err.contains(needle), "{forge}: {err}");
                }
            }
        }
    }

    #[test]
    fn config_names_and_repository_shapes() {
        for forge in Forge::ALL {
            assert_eq!(Forge::parse(forge.as_str()), Some(forge));
        }
        assert_eq!(Forge::parse("GitHub"), None);
        assert!(Forge::Gitlab.valid_repository("group/sub/project"));
        assert!(!Forge::Github.valid_repository("group/sub/project"));
        assert!(!Forge::Gitea.valid_repository("owner/"));
        assert!(Forge::Bitbucket.valid_repository("team_name/repo_name"));
    }
}

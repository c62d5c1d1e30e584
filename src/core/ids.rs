//! Newtypes for the names stagehand passes around. Each is validated once, where it
//! enters (config, payload, URL), so the rest of the code never re-checks a raw string.
//! App and environment names become path components and URL segments, hence the
//! narrow alphabet.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "{kind} name {value:?} is not allowed: use 1 to {max} characters of a-z, 0-9, '-' and '_', starting with a letter or digit"
    )]
    BadName {
        kind: &'static str,
        value: String,
        max: usize,
    },
    #[error("{value:?} is not a commit sha: expected 40 (or 64) hex digits")]
    BadSha { value: String },
}

fn is_name(value: &str, max: usize) -> bool {
    let mut bytes = value.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && value.len() <= max
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
}

macro_rules! name_type {
    ($name:ident, $kind:literal, $max:expr) => {
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(value: &str) -> Result<$name, IdError> {
                if is_name(value, $max) {
                    Ok($name(value.to_owned()))
                } else {
                    Err(IdError::BadName {
                        kind: $kind,
                        value: value.to_owned(),
                        max: $max,
                    })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        /// Validated as [`Self::parse`] does: an API client gets no name the server
        /// could not have sent.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let text = String::deserialize(d)?;
                $name::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(AppName, "app", 40);
// 63: the longest DNS label, so an environment name can become a preview hostname.
name_type!(EnvironmentName, "environment", 63);

/// A full object id in lowercase hex: a commit, or an annotated tag object before it is peeled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommitSha(String);

impl CommitSha {
    pub fn parse(value: &str) -> Result<CommitSha, IdError> {
        let ok = matches!(value.len(), 40 | 64) && value.bytes().all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(CommitSha(value.to_ascii_lowercase()))
        } else {
            Err(IdError::BadSha {
                value: value.to_owned(),
            })
        }
    }

    /// Git's all-zero id: what `before` is for a new ref and `after` for a deleted one.
    pub fn is_zero(&self) -> bool {
        self.0.bytes().all(|b| b == b'0')
    }

    pub fn short(&self) -> &str {
        &self.0[..7]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CommitSha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for CommitSha {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// The row id of a deploy. Shown as a string in JSON (the contract's `"id": "…"`),
/// so clients never do arithmetic on it and it can change shape later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeployId(pub i64);

impl DeployId {
    pub fn parse(value: &str) -> Option<DeployId> {
        value.parse::<i64>().ok().filter(|id| *id > 0).map(DeployId)
    }
}

impl std::fmt::Display for DeployId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for DeployId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeployId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DeployId, D::Error> {
        let text = String::deserialize(d)?;
        DeployId::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a deploy id")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let cases = [
            ("production", true),
            ("preview-feature-new-cart", true),
            ("a_b", true),
            ("0", true),
            ("", false),
            ("-x", false),
            ("_x", false),
            ("Prod", false),
            ("a/b", false),
            ("..", false),
            ("a.b", false),
            ("é", false),
        ];
        for (value, ok) in cases {
            assert_eq!(EnvironmentName::parse(value).is_ok(), ok, "{value:?}");
        }
        assert!(EnvironmentName::parse(&"a".repeat(63)).is_ok());
        assert!(EnvironmentName::parse(&"a".repeat(64)).is_err());
        assert!(AppName::parse(&"a".repeat(41)).is_err());
    }

    #[test]
    fn shas() {
        let sha = CommitSha::parse("3F2A1C9aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
        assert_eq!(sha.as_str(), "3f2a1c9aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(sha.short(), "3f2a1c9");
        assert!(!sha.is_zero());
        assert!(CommitSha::parse(&"0".repeat(40)).unwrap().is_zero());
        for bad in ["", "3f2a1c9", &"g".repeat(40), &"a".repeat(41)] {
            assert!(CommitSha::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deploy_ids() {
        assert_eq!(DeployId::parse("42"), Some(DeployId(42)));
        assert_eq!(serde_json::to_string(&DeployId(42)).unwrap(), "\"42\"");
        for bad in ["", "0", "-1", "4x", "99999999999999999999"] {
            assert_eq!(DeployId::parse(bad), None, "{bad:?}");
        }
    }
}

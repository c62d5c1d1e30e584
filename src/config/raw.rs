//! The config as deserialized, before anything is checked: the shape of
//! `stagehand.toml` with every key optional where the file may leave it out.
//!
//! Nothing here fails on a value that is merely wrong: a key stagehand does not know
//! lands in a table's `unknown` map and a word outside a fixed list in a [`Choice`],
//! so validation reports them beside every other problem instead of the first one
//! ending the parse. Only a value of the wrong TOML type (a list where a string goes)
//! still stops deserialization.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, DeserializeOwned, IgnoredAny, IntoDeserializer};
use serde::{Deserialize, Deserializer};

use crate::core::app_process::StopSignal;
use crate::core::forge::Forge;
use crate::core::notify::NotifyFormat;

use super::types::{FetchWith, MirrorMode};

/// The keys of a table that no field took, by name. A `#[serde(flatten)]` field: it
/// must come after every other flattened field of its struct, which take theirs first.
pub(super) type UnknownKeys = BTreeMap<String, IgnoredAny>;

/// A string naming one value of the serde enum `T`. A word outside `T`'s list is kept
/// with the list, for validation to report under its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Choice<T> {
    Valid(T),
    Invalid {
        text: String,
        allowed: &'static [&'static str],
    },
}

/// An enum read through [`Choice`]: its serde names, and how a text is brought to them.
pub(super) trait Enumerated: DeserializeOwned {
    /// Most enums take their names exactly; stop signals take any case and `SIG`.
    fn canonical(text: &str) -> String {
        text.to_owned()
    }
}

impl Enumerated for Forge {}
impl Enumerated for FetchWith {}
impl Enumerated for MirrorMode {}
impl Enumerated for NotifyFormat {}
impl Enumerated for StopSignal {
    fn canonical(text: &str) -> String {
        StopSignal::canonical(text)
    }
}

impl<'de, T: Enumerated> Deserialize<'de> for Choice<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let canonical = T::canonical(&text);
        let words: de::value::StrDeserializer<'_, NotAVariant> =
            canonical.as_str().into_deserializer();
        Ok(match T::deserialize(words) {
            Ok(value) => Choice::Valid(value),
            Err(NotAVariant { allowed }) => Choice::Invalid { text, allowed },
        })
    }
}

/// A boolean key of a flattened table. Through `#[serde(flatten)]` a value that is not a
/// boolean fails naming only the table (`apps.shop`): kept instead, and judged in
/// validation under its own key.
#[derive(Clone)]
pub(super) enum Flag {
    Valid(bool),
    Invalid(String),
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Flag, E> {
                Ok(Flag::Valid(value))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Flag, E> {
                Ok(Flag::Invalid(format!("{value:?}")))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Flag, E> {
                Ok(Flag::Invalid(value.to_string()))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Flag, E> {
                Ok(Flag::Invalid(value.to_string()))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Flag, E> {
                Ok(Flag::Invalid(value.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The one error a unit enum's derive gives for a string: which names it takes.
#[derive(Debug)]
struct NotAVariant {
    allowed: &'static [&'static str],
}

impl de::Error for NotAVariant {
    fn custom<M: fmt::Display>(_: M) -> Self {
        NotAVariant { allowed: &[] }
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        NotAVariant { allowed: expected }
    }
}

impl fmt::Display for NotAVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not one of {:?}", self.allowed)
    }
}

impl std::error::Error for NotAVariant {}

#[derive(Deserialize, Default)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub apps: BTreeMap<String, RawApp>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

#[derive(Deserialize, Default)]
pub(super) struct RawServer {
    pub listen: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub public_url: Option<String>,
    pub api_token_env: Option<String>,
    pub max_parallel_deploys: Option<i64>,
    pub shutdown_grace: Option<String>,
    pub log_retention: Option<String>,
    pub max_log_size: Option<String>,
    pub reconcile_interval: Option<String>,
    pub ports: Option<String>,
    pub checks_poll_interval: Option<String>,
    pub front_door: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

/// Keys an app sets as its environments' defaults and an environment may override.
#[derive(Deserialize, Default, Clone)]
pub(super) struct RawOverridable {
    pub env: Option<BTreeMap<String, String>>,
    pub build: Option<Vec<String>>,
    pub after_release: Option<Vec<String>>,
    pub keep_releases: Option<i64>,
    pub shared: Option<Vec<String>>,
    pub cache: Option<Vec<String>>,
    pub step_timeout: Option<String>,
    pub require_checks: Option<RawRequireChecks>,
    pub checks_timeout: Option<String>,
    pub sync_exclude: Option<Vec<String>>,
    pub before_sync: Option<Vec<String>>,
    pub link_after_build: Option<Flag>,
    pub export_ignore: Option<Flag>,
    pub run: Option<String>,
    pub teardown: Option<Vec<String>>,
    pub stop_signal: Option<Choice<StopSignal>>,
    pub stop_timeout: Option<String>,
    pub drain_timeout: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RawApp {
    pub repo: String,
    pub forge: Option<Choice<Forge>>,
    pub repository: Option<String>,
    pub github: Option<RawGithub>,
    pub statuses: Option<RawStatuses>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub root: PathBuf,
    pub ssh_key: Option<PathBuf>,
    pub token_env: Option<String>,
    pub fetch_with: Option<Choice<FetchWith>>,
    pub mirror: Option<Choice<MirrorMode>>,
    pub sync: Option<Vec<String>>,
    pub notify: Option<Vec<RawNotify>>,
    pub max_log_size: Option<String>,
    #[serde(default)]
    pub environments: BTreeMap<String, RawEnvironment>,
    #[serde(flatten)]
    pub defaults: RawOverridable,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

/// `"https://…"`, or `{ url = "https://…", format = "slack" }`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawNotify {
    Url(String),
    Table(RawNotifyTable),
}

#[derive(Deserialize)]
pub(super) struct RawNotifyTable {
    pub url: String,
    pub format: Option<Choice<NotifyFormat>>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

/// `github = "acme/shop"`, or, to report deploys back,
/// `github = { repo = "acme/shop", token_env = "GITHUB_TOKEN", api_url = "…" }`.
/// (The contract's `[apps.shop.github] token_env = …` beside `github = "acme/shop"`
/// would define the key twice, which TOML forbids; the table form holds both.)
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawGithub {
    Repo(String),
    Table(RawGithubTable),
}

#[derive(Deserialize)]
pub(super) struct RawGithubTable {
    pub repo: String,
    pub token_env: Option<String>,
    pub api_url: Option<String>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

#[derive(Deserialize)]
pub(super) struct RawStatuses {
    pub token_env: String,
    pub api_url: Option<String>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

#[derive(Deserialize)]
pub(super) struct RawEnvironment {
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub pull_requests: Option<RawPullRequests>,
    pub allow_forks: Option<bool>,
    pub fork_label: Option<String>,
    pub auto_deploy: Option<bool>,
    pub protected: Option<bool>,
    pub health_check: Option<RawHealthCheck>,
    pub seed_from: Option<String>,
    pub url: Option<String>,
    pub hosts: Option<Vec<String>>,
    pub expire_after: Option<String>,
    pub max_environments: Option<i64>,
    #[serde(rename = "static")]
    pub static_dir: Option<String>,
    #[serde(flatten)]
    pub overrides: RawOverridable,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

/// `require_checks = true` (every check) or a list of check / status names.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum RawRequireChecks {
    All(bool),
    Named(Vec<String>),
}

/// `pull_requests = true` (requests into any branch) or a base-branch pattern.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawPullRequests {
    All(bool),
    Into(String),
}

#[derive(Deserialize)]
pub(super) struct RawHealthCheck {
    pub url: Option<String>,
    pub path: Option<String>,
    pub timeout: Option<String>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

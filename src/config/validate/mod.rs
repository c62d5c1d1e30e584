//! Validation: the raw config and what loading read → the validated [`Config`], or
//! every problem found, each as `key: what is wrong`.
//!
//! Each check reports all it finds and goes on with a stand-in value, so one wrong key
//! never hides another. Every value is checked once, under the key of the table that
//! set it: an app's defaults under `apps.<app>.…`, an environment's own keys under
//! `apps.<app>.environments.<env>.…`, and only then are the two laid together.
//! Nothing here reads a file or the process environment: [`Inputs`] carries what
//! `load.rs` read.
//!
//! - `mod.rs`: the problem list, the shared checks (durations, sizes, URLs, paths,
//!   unknown keys, fixed-list words) and `[server]`;
//! - `app.rs`: an app's own keys (secret, forge and repository, reporting, fetching);
//! - `layer.rs`: the keys an app sets for its environments and each may override;
//! - `environment.rs`: an environment (what feeds it, its own keys, the layers merged);
//! - `run.rs`, `front_door.rs`: the keys of those features, each in one place.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::core::duration::parse_duration;
use crate::core::ids::AppName;
use crate::core::secret::Secret;
use crate::core::size::parse_size;

use super::raw::{Choice, Flag, RawConfig, RawServer, UnknownKeys};
use super::types::{Config, DEFAULT_MAX_LOG_SIZE, ServerConfig};

mod app;
mod environment;
mod front_door;
mod layer;
mod run;

/// What loading read for validation to use.
pub(in crate::config) struct Inputs<'a> {
    /// The process environment: `*_env` keys name variables in it.
    pub env: &'a HashMap<String, String>,
    /// Each `secret_file` (resolved against `base_dir`): its text, or why it could not be read.
    pub secret_files: &'a BTreeMap<PathBuf, Result<String, String>>,
    /// The config file's directory: relative paths in it start there.
    pub base_dir: &'a Path,
}

/// Relative paths are taken from the config file's directory, not the process's.
pub(in crate::config) fn resolve(base_dir: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        base_dir.join(path)
    }
}

/// Validates `raw`; the problems, each naming its key, if there are any.
pub(in crate::config) fn config(
    file: &Path,
    raw: RawConfig,
    inputs: &Inputs<'_>,
) -> Result<Config, Vec<String>> {
    let mut v = Validator {
        problems: Vec::new(),
        inputs,
    };
    v.unknown_keys("", &raw.unknown);
    let server = v.server(raw.server);
    if raw.apps.is_empty() {
        v.problem("apps", "no app is configured: add an [apps.<name>] table");
    }
    let mut apps = BTreeMap::new();
    for (name, raw_app) in raw.apps {
        let key = format!("apps.{name}");
        match AppName::parse(&name) {
            Ok(app_name) => {
                if let Some(app) = v.app(&key, app_name.clone(), raw_app) {
                    apps.insert(app_name, app);
                }
            }
            Err(e) => v.problem(&key, e),
        }
    }
    let hosts = v.host_table(apps.values());
    if v.problems.is_empty() {
        Ok(Config {
            file: file.to_owned(),
            server,
            apps,
            hosts,
        })
    } else {
        Err(v.problems)
    }
}

struct Validator<'a> {
    problems: Vec<String>,
    inputs: &'a Inputs<'a>,
}

impl Validator<'_> {
    fn problem(&mut self, key: &str, message: impl std::fmt::Display) {
        self.problems.push(format!("{key}: {message}"));
    }

    fn path(&self, p: PathBuf) -> PathBuf {
        resolve(self.inputs.base_dir, p)
    }

    /// Keys no field took: reported with the others, never instead of them.
    fn unknown_keys(&mut self, table: &str, unknown: &UnknownKeys) {
        for name in unknown.keys() {
            let key = if table.is_empty() {
                name.clone()
            } else {
                format!("{table}.{name}")
            };
            self.problem(
                &key,
                format!("unknown field `{name}`: not a key of this table (misspelt, or in the wrong table?)"),
            );
        }
    }

    /// A word from a fixed list; a wrong one is reported with the list.
    fn flag(&mut self, key: &str, flag: Option<&Flag>) -> Option<bool> {
        match flag? {
            Flag::Valid(value) => Some(*value),
            Flag::Invalid(text) => {
                self.problem(key, format!("{text} is not a boolean: use true or false"));
                None
            }
        }
    }

    fn choice<T>(&mut self, key: &str, noun: &str, choice: Option<Choice<T>>) -> Option<T> {
        match choice? {
            Choice::Valid(value) => Some(value),
            Choice::Invalid { text, allowed } => {
                self.problem(
                    key,
                    format!("{text:?} is not {noun}: use one of {}", one_of(allowed)),
                );
                None
            }
        }
    }

    /// An absolute `http://` (or, with `https_too`, `https://`) URL naming a host.
    fn http_url(&mut self, key: &str, text: &str, https_too: bool) -> bool {
        self.http_url_as(key, text, text, https_too)
    }

    /// [`Self::http_url`] on `checked` (a template filled in), naming `shown` if wrong.
    fn http_url_as(&mut self, key: &str, shown: &str, checked: &str, https_too: bool) -> bool {
        let why = match url::Url::parse(checked) {
            Err(e) => Some(e.to_string()),
            Ok(url) if url.scheme() == "http" || (https_too && url.scheme() == "https") => url
                .host_str()
                .is_none_or(str::is_empty)
                .then(|| "it names no host".to_owned()),
            Ok(url) => Some(format!("the scheme is {}:", url.scheme())),
        };
        match why {
            None => true,
            Some(why) => {
                let kind = if https_too {
                    "an http(s)"
                } else {
                    "an http://"
                };
                self.problem(key, format!("{shown:?} is not {kind} URL: {why}"));
                false
            }
        }
    }

    fn duration(&mut self, key: &str, text: Option<&str>, default: Duration) -> Duration {
        self.optional_duration(key, text).unwrap_or(default)
    }

    /// `None` when unset or wrong (reported).
    fn optional_duration(&mut self, key: &str, text: Option<&str>) -> Option<Duration> {
        match parse_duration(text?) {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(key, e);
                None
            }
        }
    }

    fn size(&mut self, key: &str, text: Option<&str>) -> Option<u64> {
        match parse_size(text?) {
            Ok(0) => {
                self.problem(key, "must be more than 0 bytes");
                None
            }
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.problem(key, e);
                None
            }
        }
    }

    fn positive(&mut self, key: &str, value: Option<i64>, default: usize) -> usize {
        self.optional_positive(key, value).unwrap_or(default)
    }

    /// `None` when unset or below 1 (reported).
    fn optional_positive(&mut self, key: &str, value: Option<i64>) -> Option<usize> {
        match value? {
            n if n >= 1 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            n => {
                self.problem(key, format!("must be at least 1, got {n}"));
                None
            }
        }
    }

    /// Shared, cache and static paths are joined onto release directories: only plain
    /// relative paths.
    fn relative_inside(&mut self, key: &str, path: &str) -> bool {
        let p = Path::new(path);
        let ok = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
        if !ok {
            self.problem(
                key,
                format!("{path:?} must be a relative path inside the release, without `..`"),
            );
        }
        ok
    }

    fn server(&mut self, raw: RawServer) -> ServerConfig {
        self.unknown_keys("server", &raw.unknown);
        let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:9000".into());
        let listen = listen_text.parse().unwrap_or_else(|_| {
            self.problem(
                "server.listen",
                format!(
                    "{listen_text:?} is not an address: write IP:PORT, e.g. \"127.0.0.1:9000\""
                ),
            );
            SocketAddr::from(([127, 0, 0, 1], 9000))
        });
        let api_token_env = raw
            .api_token_env
            .unwrap_or_else(|| "STAGEHAND_API_TOKEN".into());
        let api_token = self
            .inputs
            .env
            .get(&api_token_env)
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        if let Some(url) = &raw.public_url {
            self.http_url("server.public_url", url, true);
        }
        ServerConfig {
            listen,
            state_dir: self.path(raw.state_dir.unwrap_or_else(|| "/var/lib/stagehand".into())),
            public_url: raw.public_url.map(|u| u.trim_end_matches('/').to_owned()),
            api_token_env,
            api_token,
            max_parallel_deploys: self.positive(
                "server.max_parallel_deploys",
                raw.max_parallel_deploys,
                2,
            ),
            shutdown_grace: self.duration(
                "server.shutdown_grace",
                raw.shutdown_grace.as_deref(),
                Duration::from_secs(60),
            ),
            log_retention: self.duration(
                "server.log_retention",
                raw.log_retention.as_deref(),
                Duration::from_secs(90 * 86_400),
            ),
            max_log_size: self
                .size("server.max_log_size", raw.max_log_size.as_deref())
                .unwrap_or(DEFAULT_MAX_LOG_SIZE),
            reconcile_interval: self.reconcile_interval(raw.reconcile_interval.as_deref()),
            ports: self.ports(raw.ports.as_deref()),
            checks_poll_interval: self.duration(
                "server.checks_poll_interval",
                raw.checks_poll_interval.as_deref(),
                Duration::from_secs(60),
            ),
            front_door: self.front_door(raw.front_door.as_deref()),
            trusted_proxies: self.trusted_proxies(raw.trusted_proxies),
        }
    }

    /// `"0"` (or any zero duration) is off; below a second a round would follow a round,
    /// fetching without pause.
    fn reconcile_interval(&mut self, text: Option<&str>) -> Option<Duration> {
        let key = "server.reconcile_interval";
        if text.map(str::trim) == Some("0") {
            return None;
        }
        let interval = self.duration(key, text, Duration::from_secs(5 * 60));
        if !interval.is_zero() && interval < Duration::from_secs(1) {
            self.problem(
                key,
                format!(
                    "{} is too short: at least \"1s\" (or \"0\" to turn reconciliation off)",
                    text.unwrap_or_default()
                ),
            );
        }
        Some(interval).filter(|d| !d.is_zero())
    }
}

/// `"json", "slack", "discord"`.
fn one_of(allowed: &[&str]) -> String {
    allowed
        .iter()
        .map(|word| format!("{word:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

//! `stagehand.toml` + `STAGEHAND__SECTION__KEY` overrides → a validated [`Config`].
//!
//! Reading (file, environment, secret files) is split from validation: [`load`] reads,
//! [`Config::from_sources`] parses and checks, and the tests drive the second with
//! strings. Every problem found is reported at once, each naming its key, so an
//! operator fixes a file in one pass. Handlers never see raw TOML: durations, names,
//! patterns and paths arrive here as ready-to-use types.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::core::checks::RequiredChecks;
use crate::core::duration::parse_duration;
use crate::core::forge::Forge;
use crate::core::hosts::{HostPattern, HostTable};
use crate::core::ids::{AppName, EnvironmentName};
use crate::core::notify::NotifyFormat;
use crate::core::ref_pattern::RefPattern;
use crate::core::routing::{RefSource, RouteRule, RoutingTable};
use crate::core::secret::Secret;
use crate::core::size::parse_size;
use crate::core::sync_exclude::SyncExclude;

/// `max_log_size` when the config does not say: 50 MiB.
pub const DEFAULT_MAX_LOG_SIZE: u64 = 50 << 20;

mod front_door;
mod run;

pub use crate::core::app_process::{PortRange, StopSignal};
pub use run::{HealthCheck, HealthTarget, RunConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the config file: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: {} problem(s):\n  - {}", problems.len(), problems.join("\n  - "))]
    Invalid {
        file: PathBuf,
        problems: Vec<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub server: ServerConfig,
    pub apps: BTreeMap<AppName, AppConfig>,
    /// Every environment's `hosts`, checked to be unambiguous (see `core::hosts`).
    pub hosts: HostTable,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub public_url: Option<String>,
    pub api_token_env: String,
    /// `None` when the variable is unset: the API then answers 401 to everyone.
    pub api_token: Option<Secret>,
    pub max_parallel_deploys: usize,
    pub shutdown_grace: Duration,
    pub log_retention: Duration,
    /// Bytes of build output one deploy's log keeps; the rest is dropped.
    pub max_log_size: u64,
    /// How often to compare each environment with its branch's head on the remote
    /// (`pipeline::reconcile`); `None` (`"0"`) turns reconciliation off, at start too.
    pub reconcile_interval: Option<Duration>,
    /// Ports given to app processes (`$PORT`).
    pub ports: PortRange,
    /// How often a deploy waiting for its checks asks the forge's API (the fallback
    /// when no check event arrives).
    pub checks_poll_interval: Duration,
    /// Where `stagehand front-door` listens; `None`: no front door.
    pub front_door: Option<SocketAddr>,
    /// Peers whose `X-Forwarded-*` headers the front door passes on.
    pub trusted_proxies: Vec<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchWith {
    /// The default: libgit2 for `https://`, the git CLI for SSH and local repositories
    /// (see `pipeline::git`).
    Auto,
    /// libgit2, in process, wherever it can (SSH still goes through the CLI).
    Git2,
    /// The `git` CLI, for SSH setups libgit2 cannot handle (ssh config, aliases, agents).
    GitCli,
}

/// What the app's mirror holds (`mirror = "full" | "treeless"`): see `pipeline::partial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorMode {
    /// Every object of every fetched ref: works with any repository; the default.
    Full,
    /// Every commit, and the trees and blobs of deployed commits only (git CLI, a
    /// repository that serves filters).
    Treeless,
}

#[derive(Debug, Clone)]
pub struct AppConfig {
    pub name: AppName,
    pub repo: String,
    /// Where the webhook comes from: decides how deliveries are authenticated and read.
    pub forge: Forge,
    /// The repository's full name on the forge (`owner/name`, GitLab `group/sub/name`):
    /// deliveries naming another are refused.
    pub repository: String,
    /// Mirroring deploys as GitHub Deployments, when a token is configured.
    pub github_report: Option<GithubReport>,
    /// Reporting deploys as commit statuses on GitLab, Gitea, Forgejo or Bitbucket.
    pub status_report: Option<StatusReport>,
    pub secret: Secret,
    pub root: PathBuf,
    pub ssh_key: Option<PathBuf>,
    pub repo_token: Option<Secret>,
    pub fetch_with: FetchWith,
    pub mirror: MirrorMode,
    pub sync: Vec<String>,
    pub notify: Vec<NotifyTarget>,
    /// Overrides `[server] max_log_size` for this app's deploys.
    pub max_log_size: Option<u64>,
    pub environments: BTreeMap<EnvironmentName, EnvironmentConfig>,
    pub routing: RoutingTable,
}

/// A `notify` entry: a URL, and the shape of what it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    pub url: String,
    pub format: NotifyFormat,
}

/// Where and how to report deploys to GitHub's Deployments API.
#[derive(Debug, Clone)]
pub struct GithubReport {
    pub token: Secret,
    /// `https://api.github.com`, or a GitHub Enterprise / test server, without a trailing `/`.
    pub api_url: String,
}

/// Where and how to post commit statuses (`statuses = { token_env, api_url }`).
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub token: Secret,
    /// The forge's API base without a trailing `/` (`https://gitlab.com/api/v4`).
    pub api_url: String,
}

/// A `shared` entry: a path inside every release that links to `<env>/shared/<path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPath {
    pub path: String,
    /// Written with a trailing `/`: created as a directory, else as an empty file.
    pub is_dir: bool,
}

/// One environment with the app's defaults already applied.
#[derive(Debug, Clone)]
pub struct EnvironmentConfig {
    pub name: EnvironmentName,
    pub source: RefSource,
    /// The app's `env` overlaid with the environment's.
    pub env: BTreeMap<String, String>,
    pub build: Vec<String>,
    pub after_release: Vec<String>,
    pub keep_releases: usize,
    pub shared: Vec<SharedPath>,
    pub cache: Vec<String>,
    pub step_timeout: Duration,
    /// Paths a copy of runtime data leaves out: the app's patterns plus the environment's.
    pub sync_exclude: SyncExclude,
    /// Commands run in this environment before its data is copied elsewhere (a
    /// consistent database dump into shared/, say).
    pub before_sync: Vec<String>,
    /// Link `shared` after the build instead of before, so builds never see live data.
    pub link_after_build: bool,
    pub auto_deploy: bool,
    pub protected: bool,
    pub health_check: Option<HealthCheck>,
    pub seed_from: Option<EnvironmentName>,
    pub url: Option<String>,
    /// Automatic deploys (push, reconcile) wait for these checks of their commit on
    /// the forge; `None`: they do not wait.
    pub require_checks: Option<RequiredChecks>,
    /// How long such a deploy waits before it ends `skipped`.
    pub checks_timeout: Duration,
    /// For a `pull_requests` environment: build requests whose commits come from forks.
    pub allow_forks: bool,
    /// For a `pull_requests` environment: a fork's request carrying this label is built.
    pub fork_label: Option<String>,
    /// `None`: the environment is files only (as before `run` existed).
    pub run: Option<RunConfig>,
    /// Run when a temporary environment is torn down, before its process stops.
    pub teardown: Vec<String>,
    /// A branch pattern's previews with no deploy for this long are torn down.
    pub expire_after: Option<Duration>,
    /// At most this many previews of a branch-pattern environment at once.
    pub max_environments: Option<usize>,
    /// The names the front door answers for it.
    pub hosts: Vec<HostPattern>,
    /// `static = "public"`: without `run`, the front door serves `current/<static>`.
    pub static_dir: Option<String>,
}

impl AppConfig {
    pub fn environment(&self, name: &EnvironmentName) -> Option<&EnvironmentConfig> {
        self.environments.get(name)
    }
}

/// Reads `file` and the `STAGEHAND__…` variables in `env`, then validates.
/// `env` is passed in (not read from the process) so tests control it.
pub fn load(file: &Path, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_owned(),
        source,
    })?;
    Config::from_sources(file, &text, env, &|path: &Path| {
        std::fs::read_to_string(path)
    })
}

/// Where `--config` defaults from: `$STAGEHAND_CONFIG`, else `./stagehand.toml`.
pub fn default_path(env: &HashMap<String, String>) -> PathBuf {
    env.get("STAGEHAND_CONFIG")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("stagehand.toml"))
}

/// Just `server.listen` from a config text, for client commands that need the
/// address but not the secrets a full load would insist on.
pub fn listen_address(toml_text: &str) -> Option<String> {
    let parsed = config::Config::builder()
        .add_source(config::File::from_str(toml_text, config::FileFormat::Toml))
        .build()
        .ok()?;
    parsed.get_string("server.listen").ok()
}

type ReadFile<'a> = &'a dyn Fn(&Path) -> std::io::Result<String>;

impl Config {
    pub fn from_sources(
        file: &Path,
        toml_text: &str,
        env: &HashMap<String, String>,
        read_file: ReadFile<'_>,
    ) -> Result<Config, ConfigError> {
        let overrides: HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("STAGEHAND__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let raw: RawConfig = config::Config::builder()
            .add_source(config::File::from_str(toml_text, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("STAGEHAND")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(overrides)),
            )
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| ConfigError::Parse {
                file: file.to_owned(),
                message: e.to_string(),
            })?;
        let base_dir = file.parent().unwrap_or(Path::new("."));
        let mut v = Validator {
            problems: Vec::new(),
            env,
            read_file,
            base_dir,
        };
        let config = v.config(file, raw);
        match config {
            Some(config) if v.problems.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid {
                file: file.to_owned(),
                problems: v.problems,
            }),
        }
    }

    /// The table `stagehand check` prints: what feeds each environment and how.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for app in self.apps.values() {
            out.push_str(&format!(
                "app {} ({}, from {}) → {}\n",
                app.name,
                app.repository,
                app.repo,
                app.root.display()
            ));
            out.push_str(&format!(
                "  {:<14} {:<22} {:<7} {:<10} {}\n",
                "ENVIRONMENT", "FED BY", "DEPLOY", "PROTECTED", "NOTES"
            ));
            for env in app.environments.values() {
                let mut notes = Vec::new();
                if env.source.is_temporary() {
                    notes.push(format!("temporary: one <{}-…> per branch", env.name));
                }
                if let Some(seed) = &env.seed_from {
                    notes.push(format!("seeded from {seed}"));
                }
                if let Some(run) = &env.run {
                    notes.push(format!("runs `{}`", run.command));
                }
                if env.health_check.is_some() {
                    notes.push("health-checked".into());
                }
                out.push_str(&format!(
                    "  {:<14} {:<22} {:<7} {:<10} {}\n",
                    env.name.as_str(),
                    env.source.describe(),
                    if env.auto_deploy { "auto" } else { "manual" },
                    if env.protected { "yes" } else { "no" },
                    notes.join("; ")
                ));
            }
        }
        out
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    apps: BTreeMap<String, RawApp>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    state_dir: Option<PathBuf>,
    public_url: Option<String>,
    api_token_env: Option<String>,
    max_parallel_deploys: Option<i64>,
    shutdown_grace: Option<String>,
    log_retention: Option<String>,
    max_log_size: Option<String>,
    reconcile_interval: Option<String>,
    ports: Option<String>,
    checks_poll_interval: Option<String>,
    front_door: Option<String>,
    trusted_proxies: Option<Vec<String>>,
}

/// Keys an environment may set to override its app's.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawOverridable {
    env: Option<BTreeMap<String, String>>,
    build: Option<Vec<String>>,
    after_release: Option<Vec<String>>,
    keep_releases: Option<i64>,
    shared: Option<Vec<String>>,
    cache: Option<Vec<String>>,
    step_timeout: Option<String>,
    require_checks: Option<RawRequireChecks>,
    checks_timeout: Option<String>,
    sync_exclude: Option<Vec<String>>,
    before_sync: Option<Vec<String>>,
    link_after_build: Option<bool>,
    run: Option<String>,
    teardown: Option<Vec<String>>,
    stop_signal: Option<String>,
    stop_timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    repo: String,
    forge: Option<Forge>,
    repository: Option<String>,
    github: Option<RawGithub>,
    statuses: Option<RawStatuses>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    root: PathBuf,
    ssh_key: Option<PathBuf>,
    token_env: Option<String>,
    fetch_with: Option<String>,
    mirror: Option<String>,
    sync: Option<Vec<String>>,
    notify: Option<Vec<RawNotify>>,
    max_log_size: Option<String>,
    #[serde(flatten)]
    defaults: RawOverridable,
    #[serde(default)]
    environments: BTreeMap<String, RawEnvironment>,
}

/// `github = "acme/shop"`, or, to report deploys back,
/// `github = { repo = "acme/shop", token_env = "GITHUB_TOKEN", api_url = "…" }`.
/// (The contract's `[apps.shop.github] token_env = …` beside `github = "acme/shop"`
/// would define the key twice, which TOML forbids; the table form holds both.)
/// `"https://…"`, or `{ url = "https://…", format = "slack" }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawNotify {
    Url(String),
    Table { url: String, format: Option<String> },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawGithub {
    Repo(String),
    Table(RawGithubTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatuses {
    token_env: String,
    api_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGithubTable {
    repo: String,
    token_env: Option<String>,
    api_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    branch: Option<String>,
    tag: Option<String>,
    pull_requests: Option<RawPullRequests>,
    allow_forks: Option<bool>,
    fork_label: Option<String>,
    auto_deploy: Option<bool>,
    protected: Option<bool>,
    health_check: Option<RawHealthCheck>,
    seed_from: Option<String>,
    url: Option<String>,
    hosts: Option<Vec<String>>,
    expire_after: Option<String>,
    max_environments: Option<i64>,
    #[serde(rename = "static")]
    static_dir: Option<String>,
    #[serde(flatten)]
    overrides: RawOverridable,
}

/// `require_checks = true` (every check) or a list of check / status names.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawRequireChecks {
    All(bool),
    Named(Vec<String>),
}

/// `pull_requests = true` (requests into any branch) or a base-branch pattern.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawPullRequests {
    All(bool),
    Into(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealthCheck {
    url: Option<String>,
    path: Option<String>,
    timeout: Option<String>,
}

/// Longest configured environment name: leaves room for `-<branch slug>` in temporary ones.
const MAX_CONFIGURED_ENV_LEN: usize = 40;

struct Validator<'a> {
    problems: Vec<String>,
    env: &'a HashMap<String, String>,
    read_file: ReadFile<'a>,
    base_dir: &'a Path,
}

impl Validator<'_> {
    fn problem(&mut self, key: &str, message: impl std::fmt::Display) {
        self.problems.push(format!("{key}: {message}"));
    }

    /// Relative paths are taken from the config file's directory, not the process's.
    fn path(&self, p: PathBuf) -> PathBuf {
        if p.is_absolute() {
            p
        } else {
            self.base_dir.join(p)
        }
    }

    fn duration(&mut self, key: &str, text: Option<&str>, default: Duration) -> Duration {
        match text.map(parse_duration) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.problem(key, e);
                default
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
        match value {
            None => default,
            Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
            Some(n) => {
                self.problem(key, format!("must be at least 1, got {n}"));
                default
            }
        }
    }

    fn config(&mut self, file: &Path, raw: RawConfig) -> Option<Config> {
        let server = self.server(raw.server);
        if raw.apps.is_empty() {
            self.problem("apps", "no app is configured: add an [apps.<name>] table");
        }
        let mut apps = BTreeMap::new();
        for (name, raw_app) in raw.apps {
            let key = format!("apps.{name}");
            match AppName::parse(&name) {
                Ok(app_name) => {
                    if let Some(app) = self.app(&key, app_name.clone(), raw_app) {
                        apps.insert(app_name, app);
                    }
                }
                Err(e) => self.problem(&key, e),
            }
        }
        let hosts = self.host_table(apps.values());
        Some(Config {
            file: file.to_owned(),
            server,
            apps,
            hosts,
        })
    }

    fn server(&mut self, raw: RawServer) -> ServerConfig {
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
            .env
            .get(&api_token_env)
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        if let Some(url) = &raw.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            self.problem(
                "server.public_url",
                format!("{url:?} must start with http:// or https://"),
            );
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

    fn secret(
        &mut self,
        key: &str,
        secret_env: Option<String>,
        secret_file: Option<PathBuf>,
    ) -> Secret {
        let value = match (secret_env, secret_file) {
            (Some(_), Some(_)) => {
                self.problem(key, "set secret_env or secret_file, not both");
                None
            }
            (None, None) => {
                self.problem(
                    key,
                    "no webhook secret: set secret_env or secret_file (the webhook never runs unsigned)",
                );
                None
            }
            (Some(var), None) => match self.env.get(&var).map(|v| v.trim()) {
                Some(v) if !v.is_empty() => Some(v.to_owned()),
                _ => {
                    self.problem(
                        &format!("{key}.secret_env"),
                        format!("environment variable {var} is not set or empty"),
                    );
                    None
                }
            },
            (None, Some(path)) => {
                let path = self.path(path);
                match (self.read_file)(&path) {
                    Ok(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
                    Ok(_) => {
                        self.problem(
                            &format!("{key}.secret_file"),
                            format!("{} is empty", path.display()),
                        );
                        None
                    }
                    Err(e) => {
                        self.problem(
                            &format!("{key}.secret_file"),
                            format!("cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                }
            }
        };
        Secret::new(value.unwrap_or_default())
    }

    fn status_report(&mut self, key: &str, forge: Forge, raw: RawStatuses) -> Option<StatusReport> {
        let key = format!("{key}.statuses");
        if forge == Forge::Github {
            self.problem(
                &key,
                "GitHub reports as Deployments: use github = { repo, token_env } instead",
            );
            return None;
        }
        let api_url = raw
            .api_url
            .or_else(|| crate::core::forge::status::default_api_url(forge).map(str::to_owned));
        let api_url = match api_url {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                url.trim_end_matches('/').to_owned()
            }
            Some(url) => {
                self.problem(
                    &format!("{key}.api_url"),
                    format!("{url:?} is not an http(s) URL"),
                );
                return None;
            }
            None => {
                self.problem(
                    &format!("{key}.api_url"),
                    format!("is required for {forge}: the API's base, e.g. https://git.example.com/api/v1"),
                );
                return None;
            }
        };
        match self.env.get(&raw.token_env) {
            Some(token) if !token.is_empty() => Some(StatusReport {
                token: Secret::new(token.clone()),
                api_url,
            }),
            _ => {
                self.problem(
                    &format!("{key}.token_env"),
                    format!("environment variable {} is not set or empty", raw.token_env),
                );
                None
            }
        }
    }

    /// `repository`, or its older name `github`; both may be given if they agree.
    fn repository(
        &mut self,
        key: &str,
        forge: Forge,
        repository: Option<String>,
        github: Option<String>,
    ) -> String {
        let trimmed = |s: Option<String>| s.map(|s| s.trim().to_owned());
        let chosen = match (trimmed(repository), trimmed(github)) {
            (Some(r), Some(g)) if !r.eq_ignore_ascii_case(&g) => {
                self.problem(
                    &format!("{key}.repository"),
                    format!("{r:?} disagrees with {key}.github = {g:?}: keep one of them"),
                );
                r
            }
            (Some(r), _) | (None, Some(r)) => r,
            (None, None) => {
                self.problem(
                    &format!("{key}.repository"),
                    "is required: the repository's full name on the forge (\"owner/name\")",
                );
                return String::new();
            }
        };
        if !forge.valid_repository(&chosen) {
            let shape = if forge == Forge::Gitlab {
                "group/name (or group/subgroup/name)"
            } else {
                "owner/name"
            };
            self.problem(
                &format!("{key}.repository"),
                format!("{chosen:?} is not {shape}"),
            );
        }
        chosen
    }

    fn app(&mut self, key: &str, name: AppName, raw: RawApp) -> Option<AppConfig> {
        let secret = self.secret(key, raw.secret_env, raw.secret_file);
        let forge = raw.forge.unwrap_or_default();
        let (github, github_report) = match raw.github {
            None => (None, None),
            Some(RawGithub::Repo(repo)) => (Some(repo), None),
            Some(RawGithub::Table(table)) => {
                if table.token_env.is_some() && forge != Forge::Github {
                    self.problem(
                        &format!("{key}.github.token_env"),
                        format!("reports deploys to GitHub's API, but the app's forge is {forge}"),
                    );
                }
                let report = table.token_env.and_then(|var| match self.env.get(&var) {
                    Some(token) if !token.is_empty() => Some(GithubReport {
                        token: Secret::new(token.clone()),
                        api_url: table
                            .api_url
                            .clone()
                            .unwrap_or_else(|| "https://api.github.com".into())
                            .trim_end_matches('/')
                            .to_owned(),
                    }),
                    _ => {
                        self.problem(
                            &format!("{key}.github.token_env"),
                            format!("environment variable {var} is not set or empty"),
                        );
                        None
                    }
                });
                if let Some(url) = &table.api_url
                    && !(url.starts_with("https://") || url.starts_with("http://"))
                {
                    self.problem(
                        &format!("{key}.github.api_url"),
                        format!("{url:?} is not an http(s) URL"),
                    );
                }
                (Some(table.repo), report)
            }
        };
        let repository = self.repository(key, forge, raw.repository, github);
        let status_report = raw
            .statuses
            .and_then(|statuses| self.status_report(key, forge, statuses));
        if raw.repo.trim().is_empty() {
            self.problem(&format!("{key}.repo"), "is empty");
        }
        let fetch_with = match raw.fetch_with.as_deref() {
            None | Some("auto") => FetchWith::Auto,
            Some("git2") => FetchWith::Git2,
            Some("git") => FetchWith::GitCli,
            Some(other) => {
                self.problem(
                    &format!("{key}.fetch_with"),
                    format!("{other:?} is not \"auto\", \"git2\" or \"git\""),
                );
                FetchWith::Auto
            }
        };
        let mirror = match raw.mirror.as_deref() {
            None | Some("full") => MirrorMode::Full,
            Some("treeless") => MirrorMode::Treeless,
            Some(other) => {
                self.problem(
                    &format!("{key}.mirror"),
                    format!("{other:?} is not \"full\" or \"treeless\""),
                );
                MirrorMode::Full
            }
        };
        let repo_token = raw.token_env.and_then(|var| match self.env.get(&var) {
            Some(v) if !v.is_empty() => Some(Secret::new(v.clone())),
            _ => {
                self.problem(
                    &format!("{key}.token_env"),
                    format!("environment variable {var} is not set or empty"),
                );
                None
            }
        });
        if raw.environments.is_empty() {
            self.problem(
                &format!("{key}.environments"),
                "the app has no environments: add [apps.<app>.environments.<name>] with a branch",
            );
        }
        let env_names: Vec<String> = raw.environments.keys().cloned().collect();
        let mut environments = BTreeMap::new();
        for (env_name, raw_env) in raw.environments {
            let env_key = format!("{key}.environments.{env_name}");
            let parsed = EnvironmentName::parse(&env_name).and_then(|n| {
                if n.as_str().len() > MAX_CONFIGURED_ENV_LEN {
                    Err(crate::core::ids::IdError::BadName {
                        kind: "environment",
                        value: env_name.clone(),
                        max: MAX_CONFIGURED_ENV_LEN,
                    })
                } else {
                    Ok(n)
                }
            });
            match parsed {
                Ok(n) => {
                    if let Some(env) =
                        self.environment(&env_key, n.clone(), &raw.defaults, raw_env, &env_names)
                    {
                        if env.require_checks.is_some() && forge == Forge::Bitbucket {
                            self.problem(
                                &format!("{env_key}.require_checks"),
                                "stagehand reads no check results from Bitbucket: the deploy would only wait and be skipped",
                            );
                        }
                        if env.require_checks.is_some()
                            && forge == Forge::Forgejo
                            && status_report.is_none()
                        {
                            self.problem(
                                &format!("{env_key}.require_checks"),
                                "Forgejo sends no commit-status events, so results come only from its API: set statuses = { token_env, api_url }, or the deploy would only wait and be skipped",
                            );
                        }
                        environments.insert(n, env);
                    }
                }
                Err(e) => self.problem(&env_key, e),
            }
        }
        let rules = environments
            .values()
            .map(|e| RouteRule {
                environment: e.name.clone(),
                source: e.source.clone(),
            })
            .collect();
        let routing = match RoutingTable::new(rules) {
            Ok(table) => table,
            Err(conflict) => {
                self.problem(&format!("{key}.environments"), conflict);
                return None;
            }
        };
        let max_log_size = self.size(&format!("{key}.max_log_size"), raw.max_log_size.as_deref());
        Some(AppConfig {
            name,
            max_log_size,
            repo: raw.repo,
            forge,
            repository,
            github_report,
            status_report,
            secret,
            root: self.path(raw.root),
            ssh_key: raw.ssh_key.map(|p| self.path(p)),
            repo_token,
            fetch_with,
            mirror,
            sync: raw.sync.unwrap_or_default(),
            notify: raw
                .notify
                .unwrap_or_default()
                .into_iter()
                .filter_map(|entry| {
                    let (url, format) = match entry {
                        RawNotify::Url(url) => (url, None),
                        RawNotify::Table { url, format } => (url, format),
                    };
                    let format = match format.as_deref() {
                        None | Some("json") => NotifyFormat::Json,
                        Some("slack") => NotifyFormat::Slack,
                        Some("discord") => NotifyFormat::Discord,
                        Some(other) => {
                            self.problem(
                                &format!("{key}.notify"),
                                format!("format {other:?} is not one of \"json\", \"slack\", \"discord\""),
                            );
                            return None;
                        }
                    };
                    if !(url.starts_with("https://") || url.starts_with("http://")) {
                        self.problem(
                            &format!("{key}.notify"),
                            format!("{url:?} is not an http(s) URL"),
                        );
                        return None;
                    }
                    Some(NotifyTarget { url, format })
                })
                .collect(),
            environments,
            routing,
        })
    }

    fn environment(
        &mut self,
        key: &str,
        name: EnvironmentName,
        app: &RawOverridable,
        raw: RawEnvironment,
        siblings: &[String],
    ) -> Option<EnvironmentConfig> {
        let pattern = |v: &mut Self, field: &str, text: &str| match RefPattern::parse(text) {
            Ok(p) => Some(p),
            Err(e) => {
                v.problem(&format!("{key}.{field}"), e);
                None
            }
        };
        let pull_requests = match &raw.pull_requests {
            None | Some(RawPullRequests::All(false)) => None,
            Some(RawPullRequests::All(true)) => Some("**".to_owned()),
            Some(RawPullRequests::Into(base)) => Some(base.clone()),
        };
        let source = match (&raw.branch, &raw.tag, &pull_requests) {
            (Some(b), None, None) => RefSource::Branch(pattern(self, "branch", b)?),
            (None, Some(t), None) => RefSource::Tag(pattern(self, "tag", t)?),
            (None, None, Some(p)) => RefSource::PullRequests(pattern(self, "pull_requests", p)?),
            (None, None, None) => {
                self.problem(
                    key,
                    "nothing feeds this environment: set branch (or tag, or pull_requests)",
                );
                return None;
            }
            _ => {
                self.problem(key, "set one of branch, tag and pull_requests");
                return None;
            }
        };
        if raw.allow_forks.is_some() && pull_requests.is_none() {
            self.problem(
                &format!("{key}.allow_forks"),
                "only means something with pull_requests",
            );
        }
        if raw.fork_label.is_some() && pull_requests.is_none() {
            self.problem(
                &format!("{key}.fork_label"),
                "only means something with pull_requests",
            );
        }
        let o = &raw.overrides;
        let mut env = app.env.clone().unwrap_or_default();
        env.extend(o.env.clone().unwrap_or_default());
        for var in env.keys() {
            let valid = var
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                self.problem(
                    &format!("{key}.env"),
                    format!("{var:?} is not a valid variable name"),
                );
            } else if var.starts_with("STAGEHAND_") {
                self.problem(
                    &format!("{key}.env"),
                    format!("{var} is set by stagehand itself"),
                );
            }
        }
        let shared = o
            .shared
            .clone()
            .or_else(|| app.shared.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|entry| {
                let is_dir = entry.ends_with('/');
                let path = entry.trim_end_matches('/').to_owned();
                if self.relative_inside(&format!("{key}.shared"), &path) {
                    Some(SharedPath { path, is_dir })
                } else {
                    None
                }
            })
            .collect();
        let cache = o
            .cache
            .clone()
            .or_else(|| app.cache.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.trim_end_matches('/').to_owned())
            .filter(|c| self.relative_inside(&format!("{key}.cache"), c))
            .collect();
        let exclude_patterns: Vec<String> = app
            .sync_exclude
            .iter()
            .chain(&o.sync_exclude)
            .flatten()
            .cloned()
            .collect();
        let sync_exclude = match SyncExclude::parse(&exclude_patterns) {
            Ok(set) => set,
            Err((pattern, e)) => {
                let owner = if o
                    .sync_exclude
                    .as_ref()
                    .is_some_and(|l| l.contains(&pattern))
                {
                    key
                } else {
                    key.split(".environments.").next().unwrap_or(key)
                };
                let problem = format!("{owner}.sync_exclude: {pattern:?}: {e}");
                // An app-level pattern is checked once per environment: say it once.
                if !self.problems.contains(&problem) {
                    self.problems.push(problem);
                }
                SyncExclude::default()
            }
        };
        let timeout_key = if o.step_timeout.is_some() {
            format!("{key}.step_timeout")
        } else {
            "step_timeout".into()
        };
        let step_timeout = self.duration(
            &timeout_key,
            o.step_timeout.as_deref().or(app.step_timeout.as_deref()),
            Duration::from_secs(15 * 60),
        );
        let app_key = key.split(".environments.").next().unwrap_or(key);
        let run = self.run_config(key, app_key, app, o);
        let source_is_temporary = source.is_temporary();
        let health_check = self.health_check(key, raw.health_check, run.is_some());
        let require_checks = self.require_checks(key, o, app);
        let checks_timeout = self.duration(
            &if o.checks_timeout.is_some() {
                format!("{key}.checks_timeout")
            } else {
                format!(
                    "{}.checks_timeout",
                    key.split(".environments.").next().unwrap_or(key)
                )
            },
            o.checks_timeout
                .as_deref()
                .or(app.checks_timeout.as_deref()),
            Duration::from_secs(30 * 60),
        );
        let seed_from = raw.seed_from.and_then(|seed| {
            if seed == name.as_str() || !siblings.contains(&seed) {
                self.problem(
                    &format!("{key}.seed_from"),
                    format!(
                        "{seed:?} names no other environment of this app (have: {})",
                        siblings.join(", ")
                    ),
                );
                None
            } else {
                EnvironmentName::parse(&seed).ok()
            }
        });
        Some(EnvironmentConfig {
            name,
            source,
            env,
            build: o
                .build
                .clone()
                .or_else(|| app.build.clone())
                .unwrap_or_default(),
            after_release: o
                .after_release
                .clone()
                .or_else(|| app.after_release.clone())
                .unwrap_or_default(),
            keep_releases: self.positive(
                &format!("{key}.keep_releases"),
                o.keep_releases.or(app.keep_releases),
                5,
            ),
            shared,
            cache,
            step_timeout,
            sync_exclude,
            before_sync: o
                .before_sync
                .clone()
                .or_else(|| app.before_sync.clone())
                .unwrap_or_default(),
            link_after_build: o.link_after_build.or(app.link_after_build).unwrap_or(false),
            require_checks,
            checks_timeout,
            auto_deploy: raw.auto_deploy.unwrap_or(true),
            protected: raw.protected.unwrap_or(false),
            health_check,
            seed_from,
            url: raw.url,
            allow_forks: raw.allow_forks.unwrap_or(false),
            fork_label: raw.fork_label.filter(|l| !l.trim().is_empty()),
            run,
            teardown: o
                .teardown
                .clone()
                .or_else(|| app.teardown.clone())
                .unwrap_or_default(),
            expire_after: self.expire_after(key, raw.expire_after.as_deref(), source_is_temporary),
            max_environments: self.max_environments(key, raw.max_environments, source_is_temporary),
            hosts: self.hosts(key, raw.hosts, source_is_temporary),
            static_dir: self.static_dir(key, raw.static_dir),
        })
    }

    fn require_checks(
        &mut self,
        key: &str,
        o: &RawOverridable,
        app: &RawOverridable,
    ) -> Option<RequiredChecks> {
        let (key, raw) = match (&o.require_checks, &app.require_checks) {
            (Some(raw), _) => (format!("{key}.require_checks"), raw),
            (None, Some(raw)) => (
                format!(
                    "{}.require_checks",
                    key.split(".environments.").next().unwrap_or(key)
                ),
                raw,
            ),
            (None, None) => return None,
        };
        match raw {
            RawRequireChecks::All(true) => Some(RequiredChecks::All),
            RawRequireChecks::All(false) => None,
            RawRequireChecks::Named(names) => {
                if names.is_empty() || names.iter().any(|n| n.trim().is_empty()) {
                    self.problem(
                        &key,
                        "list the check names (non-empty), or write true for every check",
                    );
                    return None;
                }
                Some(RequiredChecks::Named(names.clone()))
            }
        }
    }

    /// Shared and cache paths are joined onto release directories: only plain relative paths.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
listen = "127.0.0.1:9100"
state_dir = "state"

[apps.shop]
repo = "/srv/git/shop.git"
github = "acme/shop"
secret_env = "SHOP_SECRET"
root = "/srv/shop"
shared = ["storage/", ".env"]
build = ["make"]
env = { APP_NAME = "shop", APP_ENV = "unset" }

[apps.shop.environments.production]
branch = "main"
protected = true
env = { APP_ENV = "production" }

[apps.shop.environments.staging]
branch = "develop"
keep_releases = 3
build = ["make staging"]

[apps.shop.environments.preview]
branch = "feature/*"
seed_from = "staging"
step_timeout = "90s"
"#;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let read = |p: &Path| -> std::io::Result<String> {
            if p.ends_with("shop.secret") {
                Ok("from-file\n".into())
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file",
                ))
            }
        };
        Config::from_sources(
            Path::new("/etc/stagehand/stagehand.toml"),
            toml,
            &env(vars),
            &read,
        )
    }

    fn errors(toml: &str, vars: &[(&str, &str)]) -> String {
        match parse(toml, vars) {
            Ok(_) => panic!("config was accepted:\n{toml}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_good_file_becomes_ready_types() {
        let config = parse(
            GOOD,
            &[("SHOP_SECRET", "s3cret"), ("STAGEHAND_API_TOKEN", "tok")],
        )
        .unwrap();
        assert_eq!(config.server.listen.port(), 9100);
        assert_eq!(
            config.server.state_dir,
            PathBuf::from("/etc/stagehand/state")
        );
        assert_eq!(
            config.server.api_token.as_ref().map(Secret::expose),
            Some("tok")
        );
        let shop = &config.apps[&AppName::parse("shop").unwrap()];
        assert_eq!(shop.secret.expose(), "s3cret");
        let prod = &shop.environments[&EnvironmentName::parse("production").unwrap()];
        assert_eq!(prod.env["APP_ENV"], "production");
        assert_eq!(prod.env["APP_NAME"], "shop");
        assert_eq!(prod.build, ["make"]);
        assert!(prod.protected && prod.auto_deploy);
        assert_eq!(
            prod.shared[0],
            SharedPath {
                path: "storage".into(),
                is_dir: true
            }
        );
        assert_eq!(
            prod.shared[1],
            SharedPath {
                path: ".env".into(),
                is_dir: false
            }
        );
        let staging = &shop.environments[&EnvironmentName::parse("staging").unwrap()];
        assert_eq!(
            (staging.keep_releases, staging.build.as_slice()),
            (3, &["make staging".to_string()][..])
        );
        let preview = &shop.environments[&EnvironmentName::parse("preview").unwrap()];
        assert_eq!(preview.step_timeout, Duration::from_secs(90));
        assert_eq!(
            preview.seed_from.as_ref().map(|s| s.as_str()),
            Some("staging")
        );
        assert_eq!(staging.step_timeout, Duration::from_secs(900));
        let table = config.describe();
        assert!(table.contains("branches feature/*"), "{table}");
        assert!(table.contains("seeded from staging"), "{table}");
    }

    #[test]
    fn env_vars_override_keys() {
        let config = parse(
            GOOD,
            &[
                ("SHOP_SECRET", "s"),
                ("STAGEHAND__SERVER__MAX_PARALLEL_DEPLOYS", "4"),
                ("STAGEHAND__SERVER__LISTEN", "127.0.0.1:9200"),
            ],
        )
        .unwrap();
        assert_eq!(config.server.max_parallel_deploys, 4);
        assert_eq!(config.server.listen.port(), 9200);
        assert!(config.server.api_token.is_none());
    }

    #[test]
    fn require_checks_is_true_or_names_per_environment_with_the_app_default() {
        let toml = GOOD.replace(
            "[apps.shop.environments.production]",
            "require_checks = true\nchecks_timeout = \"10m\"\n[apps.shop.environments.production]\nrequire_checks = [\"ci\"]",
        );
        let config = parse(&toml, &[("SHOP_SECRET", "s")]).unwrap_or_else(|e| panic!("{e}"));
        let shop = &config.apps[&AppName::parse("shop").unwrap()];
        for (name, env) in &shop.environments {
            let expected = if name.as_str() == "production" {
                RequiredChecks::Named(vec!["ci".into()])
            } else {
                RequiredChecks::All
            };
            assert_eq!(env.require_checks.as_ref(), Some(&expected), "{name}");
            assert_eq!(env.checks_timeout, Duration::from_secs(600), "{name}");
        }
        let empty = GOOD.replace(
            "[apps.shop.environments.production]",
            "[apps.shop.environments.production]\nrequire_checks = []",
        );
        let message = parse(&empty, &[("SHOP_SECRET", "s")])
            .unwrap_err()
            .to_string();
        assert!(
            message
                .contains("apps.shop.environments.production.require_checks: list the check names"),
            "{message}"
        );
    }

    #[test]
    fn reconcile_interval_defaults_to_five_minutes_and_zero_turns_it_off() {
        let interval = |value: Option<&str>| {
            let toml = match value {
                Some(v) => {
                    GOOD.replace("[server]", &format!("[server]\nreconcile_interval = {v:?}"))
                }
                None => GOOD.to_string(),
            };
            parse(&toml, &[("SHOP_SECRET", "s")]).map(|c| c.server.reconcile_interval)
        };
        assert_eq!(interval(None).unwrap(), Some(Duration::from_secs(300)));
        assert_eq!(
            interval(Some("30s")).unwrap(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(interval(Some("0")).unwrap(), None);
        assert_eq!(interval(Some("0s")).unwrap(), None);
        for (bad, says) in [("soon", "\"soon\""), ("500ms", "too short")] {
            let message = interval(Some(bad)).unwrap_err().to_string();
            assert!(
                message.contains("server.reconcile_interval") && message.contains(says),
                "{message}"
            );
        }
    }

    #[test]
    fn forge_and_repository_keys() {
        let with = |keys: &str| GOOD.replace("github = \"acme/shop\"\n", keys);
        let ok = |keys: &str| {
            let config = parse(&with(keys), &[("SHOP_SECRET", "s")])
                .unwrap_or_else(|e| panic!("{keys}: {e}"));
            let app = config.apps.into_values().next().unwrap();
            (app.forge, app.repository)
        };
        assert_eq!(
            ok("github = \"acme/shop\"\n"),
            (Forge::Github, "acme/shop".into())
        );
        assert_eq!(
            ok("repository = \"acme/shop\"\n"),
            (Forge::Github, "acme/shop".into())
        );
        assert_eq!(
            ok("forge = \"gitlab\"\nrepository = \"acme/web/shop\"\n"),
            (Forge::Gitlab, "acme/web/shop".into())
        );
        let statuses = parse(
            &with("forge = \"gitlab\"\nrepository = \"a/b\"\nstatuses = { token_env = \"GL\" }\n"),
            &[("SHOP_SECRET", "s"), ("GL", "glpat")],
        )
        .unwrap();
        let report = statuses
            .apps
            .values()
            .next()
            .unwrap()
            .status_report
            .clone()
            .unwrap();
        assert_eq!(report.api_url, "https://gitlab.com/api/v4");
        assert_eq!(report.token.expose(), "glpat");
        assert_eq!(
            ok("forge = \"bitbucket\"\nrepository = \"Acme/Shop\"\ngithub = \"acme/shop\"\n"),
            (Forge::Bitbucket, "Acme/Shop".into())
        );
        let cases = [
            ("", "apps.shop.repository: is required"),
            (
                "repository = \"acme/shop\"\ngithub = \"acme/other\"\n",
                "apps.shop.repository: \"acme/shop\" disagrees with apps.shop.github",
            ),
            (
                "forge = \"gitea\"\nrepository = \"a/b/c\"\n",
                "\"a/b/c\" is not owner/name",
            ),
            (
                "forge = \"sourcehut\"\nrepository = \"a/b\"\n",
                "apps.shop.forge",
            ),
            (
                "repository = \"a/b\"\nstatuses = { token_env = \"GH\" }\n",
                "apps.shop.statuses: GitHub reports as Deployments",
            ),
            (
                "forge = \"gitea\"\nrepository = \"a/b\"\nstatuses = { token_env = \"GH\" }\n",
                "apps.shop.statuses.api_url: is required for gitea",
            ),
            (
                "forge = \"gitlab\"\nrepository = \"a/b\"\nstatuses = { token_env = \"NOPE\" }\n",
                "apps.shop.statuses.token_env: environment variable NOPE is not set",
            ),
            (
                "forge = \"gitlab\"\ngithub = { repo = \"a/b\", token_env = \"GH\" }\n",
                "apps.shop.github.token_env: reports deploys to GitHub's API, but the app's forge is gitlab",
            ),
            (
                "forge = \"bitbucket\"\nrepository = \"a/b\"\nrequire_checks = true\n",
                "apps.shop.environments.production.require_checks: stagehand reads no check results from Bitbucket",
            ),
            (
                "forge = \"forgejo\"\nrepository = \"a/b\"\nrequire_checks = true\n",
                "apps.shop.environments.production.require_checks: Forgejo sends no commit-status events",
            ),
        ];
        for (keys, needle) in cases {
            let err = parse(&with(keys), &[("SHOP_SECRET", "s"), ("GH", "t")])
                .err()
                .unwrap_or_else(|| panic!("{keys} was accepted"))
                .to_string();
            assert!(err.contains(needle), "{keys}: {err}");
        }
        // With its API to ask, a Forgejo app may wait for checks.
        let forgejo = "forge = \"forgejo\"\nrepository = \"a/b\"\nrequire_checks = true\nstatuses = { token_env = \"GH\", api_url = \"http://forgejo/api/v1\" }\n";
        parse(&with(forgejo), &[("SHOP_SECRET", "s"), ("GH", "t")])
            .unwrap_or_else(|e| panic!("{forgejo}: {e}"));
    }

    #[test]
    fn github_table_enables_reporting() {
        let table =
            r#"github = { repo = "acme/shop", token_env = "GH", api_url = "http://127.0.0.1:1/" }"#;
        let toml = GOOD.replace(r#"github = "acme/shop""#, table);
        let config = parse(&toml, &[("SHOP_SECRET", "s"), ("GH", "gh-token")]).unwrap();
        let app = config.apps.values().next().unwrap();
        assert_eq!(app.repository, "acme/shop");
        let report = app.github_report.as_ref().unwrap();
        assert_eq!(
            (report.token.expose(), report.api_url.as_str()),
            ("gh-token", "http://127.0.0.1:1")
        );
        let message = errors(&toml, &[("SHOP_SECRET", "s")]);
        assert!(
            message.contains("apps.shop.github.token_env: environment variable GH is not set"),
            "{message}"
        );
        let plain = parse(GOOD, &[("SHOP_SECRET", "s")]).unwrap();
        assert!(plain.apps.values().next().unwrap().github_report.is_none());
    }

    /// Issue 16 items 1 and 3: exclusions merge app and environment patterns; a bad
    /// one is named with its key, once.
    #[test]
    fn sync_exclude_before_sync_and_link_after_build() {
        let toml = GOOD
            .replace(
                "build = [\"make\"]\n",
                "build = [\"make\"]\nsync_exclude = [\"*.key\"]\nbefore_sync = [\"dump\"]\nlink_after_build = true\n",
            )
            .replace(
                "[apps.shop.environments.preview]",
                "[apps.shop.environments.preview]\nsync_exclude = [\"instance/config.py\"]",
            );
        let config = parse(&toml, &[("SHOP_SECRET", "s")]).unwrap_or_else(|e| panic!("{e}"));
        let app = config.apps.values().next().unwrap();
        let preview = app
            .environments
            .values()
            .find(|e| e.name.as_str() == "preview")
            .unwrap();
        assert!(preview.sync_exclude.excludes("tls/a.key"));
        assert!(preview.sync_exclude.excludes("instance/config.py"));
        assert_eq!(preview.before_sync, ["dump"]);
        assert!(preview.link_after_build);
        let plain = parse(GOOD, &[("SHOP_SECRET", "s")]).unwrap();
        let env = plain
            .apps
            .values()
            .next()
            .unwrap()
            .environments
            .values()
            .next()
            .unwrap();
        assert!(env.sync_exclude.is_empty() && !env.link_after_build);

        let bad = toml.replace(r#"["*.key"]"#, r#"["[ab].key"]"#);
        let message = errors(&bad, &[("SHOP_SECRET", "s")]);
        assert_eq!(
            message
                .matches("apps.shop.sync_exclude: \"[ab].key\"")
                .count(),
            1,
            "{message}"
        );
    }

    #[test]
    fn max_log_size_defaults_to_50_mib_and_an_app_may_override_it() {
        let config = parse(GOOD, &[("SHOP_SECRET", "s")]).unwrap();
        assert_eq!(config.server.max_log_size, 50 << 20);
        assert_eq!(config.apps.values().next().unwrap().max_log_size, None);
        let toml = GOOD
            .replace("[server]", "[server]\nmax_log_size = \"10MiB\"")
            .replace(
                "build = [\"make\"]",
                "build = [\"make\"]\nmax_log_size = \"64KiB\"",
            );
        let config = parse(&toml, &[("SHOP_SECRET", "s")]).unwrap();
        assert_eq!(config.server.max_log_size, 10 << 20);
        assert_eq!(
            config.apps.values().next().unwrap().max_log_size,
            Some(64 << 10)
        );
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let toml = GOOD.replace(
            r#"secret_env = "SHOP_SECRET""#,
            r#"secret_file = "shop.secret""#,
        );
        let config = parse(&toml, &[]).unwrap();
        assert_eq!(
            config.apps.values().next().unwrap().secret.expose(),
            "from-file"
        );
    }

    /// Each broken file and a piece of the message it must give.
    #[test]
    fn errors_name_the_key() {
        let ok = [("SHOP_SECRET", "s")];
        type Vars<'a> = &'a [(&'a str, &'a str)];
        let cases: Vec<(String, Vars<'_>, &str)> = vec![
            (
                GOOD.replace("keep_releases = 3", "keep_release = 3"),
                &ok,
                "unknown field `keep_release`",
            ),
            (
                GOOD.replace("[server]", "[server]\nport = 1"),
                &ok,
                "unknown field `port`",
            ),
            (
                GOOD.to_string(),
                &[],
                "apps.shop.secret_env: environment variable SHOP_SECRET is not set",
            ),
            (
                GOOD.replace(r#"secret_env = "SHOP_SECRET""#, ""),
                &ok,
                "apps.shop: no webhook secret",
            ),
            (
                GOOD.replace(
                    r#"secret_env = "SHOP_SECRET""#,
                    r#"secret_file = "missing""#,
                ),
                &ok,
                "apps.shop.secret_file: cannot read /etc/stagehand/missing",
            ),
            (
                GOOD.replace(
                    "build = [\"make\"]\n",
                    "build = [\"make\"]\nnotify = [\"https://ok.example.com\", { url = \"https://x.example.com\", format = \"teams\" }]\n",
                ),
                &ok,
                "apps.shop.notify: format \"teams\" is not one of \"json\", \"slack\", \"discord\"",
            ),
            (
                GOOD.replace(r#""90s""#, r#""90 seconds""#),
                &ok,
                "apps.shop.environments.preview.step_timeout: \"90 seconds\" is not a duration",
            ),
            (
                GOOD.replace("[server]", "[server]\nmax_log_size = \"50 megs\""),
                &ok,
                "server.max_log_size: \"50 megs\" is not a size",
            ),
            (
                GOOD.replace(
                    "build = [\"make\"]",
                    "build = [\"make\"]\nmax_log_size = \"0MiB\"",
                ),
                &ok,
                "apps.shop.max_log_size: must be more than 0 bytes",
            ),
            (
                GOOD.replace(r#"seed_from = "staging""#, r#"seed_from = "stage""#),
                &ok,
                "apps.shop.environments.preview.seed_from: \"stage\" names no other environment",
            ),
            (
                GOOD.replace(r#"branch = "develop""#, r#"branch = "ma*""#),
                &ok,
                "environments `production` (branch main) and `staging` (branches ma*) both match \"main\"",
            ),
            (
                GOOD.split("[apps.shop.environments.production]")
                    .next()
                    .unwrap()
                    .to_string(),
                &ok,
                "apps.shop.environments: the app has no environments",
            ),
            (
                GOOD.replace(r#"branch = "develop""#, ""),
                &ok,
                "apps.shop.environments.staging: nothing feeds this environment",
            ),
            (
                GOOD.replace(r#"listen = "127.0.0.1:9100""#, r#"listen = "nine""#),
                &ok,
                "server.listen: \"nine\" is not an address",
            ),
            (
                GOOD.replace(r#"["storage/", ".env"]"#, r#"["../etc"]"#),
                &ok,
                "apps.shop.environments.production.shared: \"../etc\" must be a relative path",
            ),
            (
                GOOD.replace(
                    "[apps.shop.environments.staging]",
                    "[apps.shop.environments.Staging]",
                ),
                &ok,
                "apps.shop.environments.Staging: environment name \"Staging\" is not allowed",
            ),
            (
                GOOD.replace("keep_releases = 3", "keep_releases = 0"),
                &ok,
                "keep_releases: must be at least 1",
            ),
            (
                GOOD.replace(r#"APP_NAME = "shop""#, r#"STAGEHAND_APP = "x""#),
                &ok,
                "STAGEHAND_APP is set by stagehand itself",
            ),
            ("[server]\n".to_string(), &ok, "apps: no app is configured"),
            (
                "[apps.shop\n".to_string(),
                &ok,
                "/etc/stagehand/stagehand.toml: ",
            ),
        ];
        for (toml, vars, needle) in cases {
            let message = errors(&toml, vars);
            assert!(
                message.contains(needle),
                "expected {needle:?} in:\n{message}"
            );
            assert!(
                message.starts_with("/etc/stagehand/stagehand.toml: "),
                "{message}"
            );
        }
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let toml = GOOD
            .replace(r#""90s""#, r#""soon""#)
            .replace("keep_releases = 3", "keep_releases = -1");
        let message = errors(&toml, &[]);
        assert!(
            message.contains("4 problem(s)") || message.contains("3 problem(s)"),
            "{message}"
        );
        assert!(
            message.contains("SHOP_SECRET") && message.contains("soon") && message.contains("-1"),
            "{message}"
        );
    }

    #[test]
    fn run_keys_are_inherited_and_overridden() {
        let toml = GOOD
            .replace(
                "build = [\"make\"]\n",
                "build = [\"make\"]\nrun = \"python3 app.py\"\nstop_timeout = \"5s\"\n",
            )
            .replace(
                "keep_releases = 3\n",
                "keep_releases = 3\nstop_signal = \"INT\"\nhealth_check = { path = \"/healthz\", timeout = \"10s\" }\n",
            )
            .replace("[server]\n", "[server]\nports = \"21000-21099\"\n");
        let config = parse(&toml, &[("SHOP_SECRET", "s")]).unwrap();
        assert_eq!(
            config.server.ports,
            PortRange {
                first: 21000,
                last: 21099
            }
        );
        let shop = config.apps.values().next().unwrap();
        let staging = &shop.environments[&EnvironmentName::parse("staging").unwrap()];
        assert_eq!(
            staging.run,
            Some(RunConfig {
                command: "python3 app.py".into(),
                stop_signal: StopSignal::Int,
                stop_timeout: Duration::from_secs(5),
            })
        );
        assert_eq!(
            staging.health_check,
            Some(HealthCheck {
                target: HealthTarget::Path("/healthz".into()),
                timeout: Duration::from_secs(10),
            })
        );
        let prod = &shop.environments[&EnvironmentName::parse("production").unwrap()];
        assert_eq!(
            prod.run.as_ref().map(|r| r.stop_signal),
            Some(StopSignal::Term)
        );
        assert!(config.describe().contains("runs `python3 app.py`"));
        // Without `run` nothing changes: the default range, no process.
        let plain = parse(GOOD, &[("SHOP_SECRET", "s")]).unwrap();
        assert_eq!(plain.server.ports, PortRange::default());
        assert!(
            plain
                .apps
                .values()
                .all(|a| a.environments.values().all(|e| e.run.is_none()))
        );
    }

    #[test]
    fn run_errors_name_the_key() {
        let ok = [("SHOP_SECRET", "s")];
        let with_run = GOOD.replace(
            "build = [\"make\"]\n",
            "build = [\"make\"]\nrun = \"./serve\"\n",
        );
        let cases = [
            (
                GOOD.replace("[server]\n", "[server]\nports = \"80-90\"\n"),
                "server.ports: \"80-90\": ports below 1024",
            ),
            (
                with_run.replace("keep_releases = 3\n", "stop_signal = \"STOP\"\n"),
                "apps.shop.environments.staging.stop_signal: \"STOP\" is not a stop signal",
            ),
            (
                with_run.replace(
                    "build = [\"make\"]\n",
                    "build = [\"make\"]\nstop_timeout = \"long\"\n",
                ),
                "apps.shop.stop_timeout: \"long\" is not a duration",
            ),
            (
                GOOD.replace("keep_releases = 3\n", "stop_timeout = \"5s\"\n"),
                "apps.shop.environments.staging.stop_timeout: has no effect without `run`",
            ),
            (
                with_run.replace("keep_releases = 3\n", "run = \"\"\n"),
                "apps.shop.environments.staging.run: is empty",
            ),
            (
                with_run.replace(
                    "keep_releases = 3\n",
                    "health_check = { url = \"http://127.0.0.1:1/\" }\n",
                ),
                "apps.shop.environments.staging.health_check.url: \"http://127.0.0.1:1/\": with `run`, give a path",
            ),
            (
                GOOD.replace("keep_releases = 3\n", "health_check = { path = \"/up\" }\n"),
                "apps.shop.environments.staging.health_check.path: \"/up\": a path needs `run`",
            ),
            (
                with_run.replace(
                    "keep_releases = 3\n",
                    "health_check = { path = \"up now\" }\n",
                ),
                "apps.shop.environments.staging.health_check.path: \"up now\" must start with /",
            ),
        ];
        for (toml, needle) in cases {
            let message = errors(&toml, &ok);
            assert!(
                message.contains(needle),
                "expected {needle:?} in:\n{message}"
            );
        }
    }
}

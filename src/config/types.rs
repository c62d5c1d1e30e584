//! The validated config: what the rest of stagehand reads. Every value here has
//! passed its checks and is ready to use (durations, names, patterns, paths made
//! absolute, the app's defaults applied to each environment); nothing here knows TOML.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::core::app_process::{PortRange, StopSignal};
use crate::core::checks::RequiredChecks;
use crate::core::forge::Forge;
use crate::core::hosts::{HostPattern, HostTable};
use crate::core::ids::{AppName, EnvironmentName};
use crate::core::notify::NotifyFormat;
use crate::core::routing::{RefSource, RoutingTable};
use crate::core::secret::Secret;
use crate::core::sync_exclude::SyncExclude;

/// `max_log_size` when the config does not say: 50 MiB.
pub const DEFAULT_MAX_LOG_SIZE: u64 = 50 << 20;

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

/// `fetch_with = "auto" | "git2" | "git"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FetchWith {
    /// The default: libgit2 for `https://`, the git CLI for SSH and local repositories
    /// (see `pipeline::git`).
    #[default]
    Auto,
    /// libgit2, in process, wherever it can (SSH still goes through the CLI).
    Git2,
    /// The `git` CLI, for SSH setups libgit2 cannot handle (ssh config, aliases, agents).
    #[serde(rename = "git")]
    GitCli,
}

/// What the app's mirror holds (`mirror = "full" | "treeless"`): see `pipeline::partial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MirrorMode {
    /// Every object of every fetched ref: works with any repository; the default.
    #[default]
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
    /// Leave out of every release what the commit's `.gitattributes` mark
    /// `export-ignore`, as `git archive` does (`core::export_ignore`).
    pub export_ignore: bool,
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

impl Config {
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
                if env.export_ignore {
                    notes.push("releases without export-ignore paths".into());
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

/// How an environment's app process is run (its `run` and what stops it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// Run by `sh -c` in the release directory, with `$PORT` set.
    pub command: String,
    pub stop_signal: StopSignal,
    /// After `stop_signal`, how long before SIGKILL.
    pub stop_timeout: Duration,
    /// After a switch, how long the old process is left to finish the requests the
    /// front door still has in flight to it before `stop_signal` (`front_door::in_flight`).
    pub drain_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthTarget {
    /// `url = "http://…"`: checked after the switch (environments without `run`).
    Url(String),
    /// `path = "/healthz"`: checked on the new process's own port, before the switch.
    Path(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub target: HealthTarget,
    pub timeout: Duration,
}

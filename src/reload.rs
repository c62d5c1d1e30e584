//! Config reload (`SIGHUP`, `POST /api/reload`, `stagehand reload`): the file is read
//! and validated again; a file with problems keeps the old config and every problem is
//! reported; a good one is swapped in and what changed is logged.
//!
//! [`LiveConfig`] is the one place the running config lives. Readers take a snapshot
//! ([`LiveConfig::get`]): an HTTP request, a runner pass or a deploy each work on the
//! config of the moment they started, so a reload never changes a running deploy
//! halfway and never drops a queued one (it starts with the config of its start; a
//! deploy of an environment the new file removed fails then, saying so).
//!
//! What a reload cannot change while running: `server.listen` (the socket is bound)
//! and `server.state_dir` (the database and mirrors are open there). A new file that
//! changes `state_dir` is refused; a changed `listen` is applied at the next start and
//! the log says so. Variables are read once at start, so a secret in `secret_env`
//! changes with a restart, one in `secret_file` with a reload.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::config::{self, AppConfig, Config, ConfigError};

/// The running config, swapped whole on reload.
#[derive(Clone)]
pub struct LiveConfig {
    current: Arc<RwLock<Arc<Config>>>,
    /// The process environment the config was loaded with (secrets, overrides).
    env: Arc<HashMap<String, String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0} (the running config is unchanged)")]
    Config(#[from] ConfigError),
    #[error(
        "{file}: server.state_dir changed from {old} to {new}: that needs a restart (the running config is unchanged)"
    )]
    StateDir {
        file: String,
        old: String,
        new: String,
    },
}

impl LiveConfig {
    pub fn new(config: Config, env: HashMap<String, String>) -> LiveConfig {
        LiveConfig {
            current: Arc::new(RwLock::new(Arc::new(config))),
            env: Arc::new(env),
        }
    }

    /// The config of this moment; later reloads do not change it.
    pub fn get(&self) -> Arc<Config> {
        // A panic while swapping cannot leave a half-written Arc: the old one stands.
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads and validates the config file again and swaps it in. Returns what changed
    /// (empty when nothing did). Blocking: reads files.
    pub fn reload(&self) -> Result<Vec<String>, ReloadError> {
        let old = self.get();
        let new = config::load(&old.file, &self.env)?;
        if new.server.state_dir != old.server.state_dir {
            return Err(ReloadError::StateDir {
                file: old.file.display().to_string(),
                old: old.server.state_dir.display().to_string(),
                new: new.server.state_dir.display().to_string(),
            });
        }
        let changes = changes(&old, &new);
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(new);
        Ok(changes)
    }
}

/// What differs between two configs, one line each: apps and environments added,
/// removed or changed, and server keys.
pub fn changes(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if old.server.listen != new.server.listen {
        out.push(format!(
            "server.listen changed to {}: takes effect at the next start",
            new.server.listen
        ));
    }
    let server = |c: &Config| {
        format!(
            "{:?}",
            (
                &c.server.public_url,
                &c.server.api_token_env,
                c.server.api_token.is_some(),
                c.server.max_parallel_deploys,
                c.server.shutdown_grace,
                c.server.log_retention,
            )
        )
    };
    if server(old) != server(new) {
        out.push("[server] changed".into());
    }
    for (name, app) in &old.apps {
        match new.apps.get(name) {
            None => out.push(format!("app {name} removed")),
            Some(new_app) => app_changes(app, new_app, &mut out),
        }
    }
    for name in new.apps.keys().filter(|n| !old.apps.contains_key(*n)) {
        out.push(format!("app {name} added"));
    }
    out
}

fn app_changes(old: &AppConfig, new: &AppConfig, out: &mut Vec<String>) {
    // Debug of the parts that are plain data: secrets print as ***, so a changed
    // secret_file is applied but not listed.
    let settings = |a: &AppConfig| {
        format!(
            "{:?}",
            (
                &a.repo,
                a.forge,
                &a.repository,
                &a.root,
                &a.ssh_key,
                &a.fetch_with,
                &a.sync,
                &a.notify,
                a.github_report.as_ref().map(|g| &g.api_url),
            )
        )
    };
    if settings(old) != settings(new) {
        out.push(format!("app {} changed", old.name));
    }
    for (name, env) in &old.environments {
        match new.environments.get(name) {
            None => out.push(format!("{}/{name} removed", old.name)),
            Some(new_env) if format!("{env:?}") != format!("{new_env:?}") => {
                out.push(format!("{}/{name} changed", old.name));
            }
            Some(_) => {}
        }
    }
    for name in new
        .environments
        .keys()
        .filter(|n| !old.environments.contains_key(*n))
    {
        out.push(format!("{}/{name} added", old.name));
    }
}

/// Reloads off the async workers and logs the outcome: each change, or each problem.
pub async fn reload_and_log(live: &LiveConfig) -> Result<Vec<String>, ReloadError> {
    let worker = live.clone();
    let result = match tokio::task::spawn_blocking(move || worker.reload()).await {
        Ok(result) => result,
        Err(e) => Err(ReloadError::Config(ConfigError::Parse {
            file: live.get().file.clone(),
            message: format!("the reload task failed: {e}"),
        })),
    };
    match &result {
        Ok(changes) if changes.is_empty() => tracing::info!("config reloaded: nothing changed"),
        Ok(changes) => {
            for change in changes {
                tracing::info!(change = %change, "config reloaded");
            }
        }
        Err(ReloadError::Config(ConfigError::Invalid { file, problems })) => {
            for problem in problems {
                tracing::error!(file = %file.display(), problem = %problem, "config reload refused; keeping the running config");
            }
        }
        Err(e) => tracing::error!(error = %e, "config reload refused"),
    }
    result
}

/// Takes over SIGHUP (whose default is to end the process). Call it before announcing
/// that the server is up, so a SIGHUP right after never kills it.
pub fn catch_hangup() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(hangups) => Some(hangups),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: reload with `stagehand reload` instead");
            None
        }
    }
}

/// Reloads on every SIGHUP until the process ends.
pub async fn on_hangup(live: LiveConfig, mut hangups: tokio::signal::unix::Signal) {
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the config");
        let _ = reload_and_log(&live).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(rest: &str) -> Config {
        let toml = format!(
            "[apps.shop]\nrepo = \"/r\"\ngithub = \"acme/shop\"\nsecret_env = \"S\"\nroot = \"/srv/shop\"\n{rest}"
        );
        let env = HashMap::from([("S".to_string(), "x".to_string())]);
        Config::from_sources(Path::new("t.toml"), &toml, &env, &|_| Ok(String::new()))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn changes_name_what_was_added_removed_and_changed() {
        let old = config(
            "[apps.shop.environments.staging]\nbranch = \"develop\"\n\
             [apps.shop.environments.preview]\nbranch = \"feature/*\"\n",
        );
        let new = config(
            "build = [\"make\"]\n[apps.shop.environments.staging]\nbranch = \"develop\"\n\
             [apps.shop.environments.production]\nbranch = \"main\"\n",
        );
        assert_eq!(
            changes(&old, &new),
            [
                "shop/preview removed",
                "shop/staging changed",
                "shop/production added"
            ]
        );
        assert!(changes(&old, &old).is_empty());
    }
}

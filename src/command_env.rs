//! The command environment: the variables every command stagehand starts sees — build,
//! `after_release`, teardown hooks, `before_sync` and `sync` commands (`deploy`), and
//! the app processes of environments that `run` (`supervisor`). It is made here and
//! nowhere else, so the rule below holds for all of them. (It lives beside the step
//! runner rather than in `deploy/` because the supervisor needs it and `deploy` needs
//! the supervisor: no cycle.)
//!
//! # Security
//!
//! Commands run code from the repository, and stagehand's own environment holds the
//! webhook secrets and the API token: a pushed branch could print them into the log.
//! So a command starts from an empty environment (`commands::run` and
//! `supervisor::spawn` clear it) plus exactly these variables, in this order, a later
//! entry winning over an earlier one of the same name:
//!
//! 1. [`inherited`]: a short allow-list of harmless variables of stagehand's own
//!    (`PATH`, `HOME`, locale, …);
//! 2. the configured `env` of the environment;
//! 3. stagehand's own `STAGEHAND_*` (and an app's `PORT`), so configuration cannot
//!    make a command lie about what it deploys.
//!
//! Payload data (branch names) reaches commands only here, as values, never in a
//! command string.

use std::collections::{BTreeMap, HashMap};

use crate::core::deploy::Trigger;
use crate::core::event::GitRef;
use crate::core::ids::{AppName, CommitSha, DeployId, EnvironmentName};
use crate::layout::EnvironmentDir;

/// The variables a command inherits from stagehand's own environment: `PATH`,
/// `HOME`, `USER`, `LOGNAME`, `SHELL`, `LANG`, `LC_*`, `TZ`, `TMPDIR` and `TERM`,
/// each only if set; everything else is dropped on purpose (see the module doc). The
/// environment is a parameter (pass `std::env::vars().collect()`) so that tests
/// control it. Sorted by name, so the child environment does not depend on hash order.
pub fn inherited(process_env: &HashMap<String, String>) -> Vec<(String, String)> {
    const KEEP: &[&str] = &[
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMPDIR", "TERM",
    ];
    let mut env: Vec<(String, String)> = process_env
        .iter()
        .filter(|(name, _)| KEEP.contains(&name.as_str()) || name.starts_with("LC_"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    env.sort();
    env
}

/// One command's complete environment, built in the order of the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandEnv {
    vars: Vec<(String, String)>,
}

/// What a command that runs in (or for) a release is told about it.
pub struct ReleaseVars<'a> {
    pub app: &'a AppName,
    pub environment: &'a EnvironmentName,
    pub base_environment: &'a EnvironmentName,
    pub env_dir: &'a EnvironmentDir,
    pub release: &'a str,
    /// The release's `REVISION`; an empty `STAGEHAND_COMMIT` when it cannot be read.
    pub commit: Option<&'a CommitSha>,
}

/// What a deploy's own commands are told besides the release.
pub struct DeployVars<'a> {
    pub id: DeployId,
    pub trigger: Trigger,
    /// The full ref (`refs/heads/main`), or empty when the deploy names none.
    pub git_ref: &'a str,
}

/// What `before_sync` and `sync` commands are told: where data comes from and goes.
pub struct DataCopyVars<'a> {
    pub app: &'a AppName,
    pub deploy: DeployId,
    pub from: &'a EnvironmentName,
    pub from_dir: &'a EnvironmentDir,
    pub to: &'a EnvironmentName,
    pub to_dir: &'a EnvironmentDir,
}

impl CommandEnv {
    /// The inherited allow-list, then the configured `env`.
    pub fn new(
        process_env: &HashMap<String, String>,
        configured: &BTreeMap<String, String>,
    ) -> CommandEnv {
        let mut vars = inherited(process_env);
        vars.extend(configured.iter().map(|(k, v)| (k.clone(), v.clone())));
        CommandEnv { vars }
    }

    fn set(&mut self, name: &str, value: impl Into<String>) {
        self.vars.push((name.to_owned(), value.into()));
    }

    /// `STAGEHAND_APP`, `_ENVIRONMENT`, `_BASE_ENVIRONMENT`, `_COMMIT`, `_RELEASE`,
    /// `_RELEASE_DIR`, `_SHARED_DIR`.
    pub fn with_release(mut self, r: &ReleaseVars) -> CommandEnv {
        let release_dir = r.env_dir.releases().join(r.release);
        self.set("STAGEHAND_APP", r.app.as_str());
        self.set("STAGEHAND_ENVIRONMENT", r.environment.as_str());
        self.set("STAGEHAND_BASE_ENVIRONMENT", r.base_environment.as_str());
        self.set(
            "STAGEHAND_COMMIT",
            r.commit.map(CommitSha::as_str).unwrap_or_default(),
        );
        self.set("STAGEHAND_RELEASE", r.release);
        self.set("STAGEHAND_RELEASE_DIR", release_dir.display().to_string());
        self.set(
            "STAGEHAND_SHARED_DIR",
            r.env_dir.shared().display().to_string(),
        );
        self
    }

    /// `STAGEHAND_BRANCH` or `STAGEHAND_TAG` (the other empty), `_REF`, `_CACHE_DIR`,
    /// `_DEPLOY_ID`, `_TRIGGER`.
    pub fn with_deploy(mut self, env_dir: &EnvironmentDir, d: &DeployVars) -> CommandEnv {
        let (branch, tag) = match GitRef::from_full(d.git_ref) {
            GitRef::Branch(b) => (b, String::new()),
            GitRef::Tag(t) => (String::new(), t),
            GitRef::Other(_) => (String::new(), String::new()),
        };
        self.set("STAGEHAND_BRANCH", branch);
        self.set("STAGEHAND_TAG", tag);
        self.set("STAGEHAND_REF", d.git_ref);
        self.set("STAGEHAND_CACHE_DIR", env_dir.cache().display().to_string());
        self.set("STAGEHAND_DEPLOY_ID", d.id.to_string());
        self.set("STAGEHAND_TRIGGER", d.trigger.to_string());
        self
    }

    /// `STAGEHAND_PREVIOUS_RELEASE`, for `after_release`: the release live before
    /// this one (empty for the first).
    pub fn with_previous_release(mut self, previous: Option<&str>) -> CommandEnv {
        self.set("STAGEHAND_PREVIOUS_RELEASE", previous.unwrap_or_default());
        self
    }

    /// `PORT`, for an app process: the port it must listen on.
    pub fn with_port(mut self, port: u16) -> CommandEnv {
        self.set("PORT", port.to_string());
        self
    }

    /// `STAGEHAND_APP`, `_DEPLOY_ID`, `_FROM_ENVIRONMENT`, `_FROM_SHARED`,
    /// `_TO_ENVIRONMENT`, `_TO_SHARED`.
    pub fn with_data_copy(mut self, c: &DataCopyVars) -> CommandEnv {
        self.set("STAGEHAND_APP", c.app.as_str());
        self.set("STAGEHAND_DEPLOY_ID", c.deploy.to_string());
        self.set("STAGEHAND_FROM_ENVIRONMENT", c.from.as_str());
        self.set(
            "STAGEHAND_FROM_SHARED",
            c.from_dir.shared().display().to_string(),
        );
        self.set("STAGEHAND_TO_ENVIRONMENT", c.to.as_str());
        self.set(
            "STAGEHAND_TO_SHARED",
            c.to_dir.shared().display().to_string(),
        );
        self
    }

    /// The list for `CommandSpec::env` or `supervisor::spawn`.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn process_env() -> HashMap<String, String> {
        [
            ("PATH", "/usr/bin:/bin"),
            ("HOME", "/home/deploy"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C"),
            ("TERM", "xterm"),
            ("STAGEHAND_API_TOKEN", "tok"),
            ("SHOP_WEBHOOK_SECRET", "hush"),
            ("SECRET_TOKEN", "x"),
            ("LD_PRELOAD", "/tmp/evil.so"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn inherited_keeps_the_allow_list_and_drops_secrets() {
        let env = inherited(&process_env());
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["HOME", "LANG", "LC_ALL", "PATH", "TERM"]);
        assert!(env.contains(&("PATH".to_owned(), "/usr/bin:/bin".to_owned())));
    }

    /// What a child sees is the last entry of each name (`Command::envs` in order).
    fn seen(env: &CommandEnv) -> HashMap<&str, &str> {
        env.vars()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn configured_env_overrides_inherited_and_stagehand_s_own_override_both() {
        let name = |s: &str| EnvironmentName::parse(s).unwrap();
        let configured: BTreeMap<String, String> = [
            ("PATH", "/opt/php/bin:/usr/bin"),
            ("APP_ENV", "staging"),
            ("STAGEHAND_BRANCH", "configured"),
            ("PORT", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let app = AppName::parse("shop").unwrap();
        let (environment, base) = (name("preview-feature-x"), name("preview"));
        let env_dir = EnvironmentDir::new(Path::new("/srv/shop"), &environment);
        let sha = CommitSha::parse(&"3f2a1c9".repeat(6)[..40]).unwrap();
        let env = CommandEnv::new(&process_env(), &configured)
            .with_release(&ReleaseVars {
                app: &app,
                environment: &environment,
                base_environment: &base,
                env_dir: &env_dir,
                release: "20261127T184312Z-3f2a1c9",
                commit: Some(&sha),
            })
            .with_deploy(
                &env_dir,
                &DeployVars {
                    id: DeployId(7),
                    trigger: Trigger::Push,
                    git_ref: "refs/heads/feature/x",
                },
            )
            .with_previous_release(None)
            .with_port(41000);
        let seen = seen(&env);
        let expected = [
            ("PATH", "/opt/php/bin:/usr/bin"),
            ("HOME", "/home/deploy"),
            ("APP_ENV", "staging"),
            ("STAGEHAND_APP", "shop"),
            ("STAGEHAND_ENVIRONMENT", "preview-feature-x"),
            ("STAGEHAND_BASE_ENVIRONMENT", "preview"),
            ("STAGEHAND_COMMIT", sha.as_str()),
            ("STAGEHAND_RELEASE", "20261127T184312Z-3f2a1c9"),
            (
                "STAGEHAND_RELEASE_DIR",
                "/srv/shop/preview-feature-x/releases/20261127T184312Z-3f2a1c9",
            ),
            ("STAGEHAND_SHARED_DIR", "/srv/shop/preview-feature-x/shared"),
            ("STAGEHAND_BRANCH", "feature/x"),
            ("STAGEHAND_TAG", ""),
            ("STAGEHAND_REF", "refs/heads/feature/x"),
            ("STAGEHAND_CACHE_DIR", "/srv/shop/preview-feature-x/cache"),
            ("STAGEHAND_DEPLOY_ID", "7"),
            ("STAGEHAND_TRIGGER", "push"),
            ("STAGEHAND_PREVIOUS_RELEASE", ""),
            ("PORT", "41000"),
        ];
        for (name, value) in expected {
            assert_eq!(seen.get(name), Some(&value), "{name}");
        }
        for secret in ["STAGEHAND_API_TOKEN", "SHOP_WEBHOOK_SECRET", "SECRET_TOKEN"] {
            assert!(!seen.contains_key(secret), "{secret}");
        }
    }

    #[test]
    fn a_data_copy_names_both_sides() {
        let name = |s: &str| EnvironmentName::parse(s).unwrap();
        let app = AppName::parse("shop").unwrap();
        let (from, to) = (name("production"), name("staging"));
        let (from_dir, to_dir) = (
            EnvironmentDir::new(Path::new("/srv/shop"), &from),
            EnvironmentDir::new(Path::new("/srv/shop"), &to),
        );
        let env =
            CommandEnv::new(&HashMap::new(), &BTreeMap::new()).with_data_copy(&DataCopyVars {
                app: &app,
                deploy: DeployId(3),
                from: &from,
                from_dir: &from_dir,
                to: &to,
                to_dir: &to_dir,
            });
        assert_eq!(
            env.vars(),
            [
                ("STAGEHAND_APP", "shop"),
                ("STAGEHAND_DEPLOY_ID", "3"),
                ("STAGEHAND_FROM_ENVIRONMENT", "production"),
                ("STAGEHAND_FROM_SHARED", "/srv/shop/production/shared"),
                ("STAGEHAND_TO_ENVIRONMENT", "staging"),
                ("STAGEHAND_TO_SHARED", "/srv/shop/staging/shared"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }
}

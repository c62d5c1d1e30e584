//! The keys an app sets as defaults for its environments and an environment may set
//! for itself (`build`, `shared`, `step_timeout`, `env`, `run`, …). Each table's values
//! are checked once, where they were written, into a [`Layer`]; an environment is then
//! its own layer over its app's. So a wrong app-level `step_timeout` is one problem
//! under `apps.<app>.step_timeout`, not one per environment under another key.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::core::app_process::StopSignal;
use crate::core::checks::RequiredChecks;
use crate::core::forge::Forge;
use crate::core::sync_exclude::SyncExclude;

use super::super::raw::{RawOverridable, RawRequireChecks};
use super::super::types::SharedPath;
use super::Validator;

/// One table's checked values; `None` where it leaves a key out (or the value was wrong
/// and is reported), so the layer below shows through.
#[derive(Default)]
pub(super) struct Layer {
    pub env: BTreeMap<String, String>,
    pub build: Option<Vec<String>>,
    pub after_release: Option<Vec<String>>,
    pub keep_releases: Option<usize>,
    pub shared: Option<Vec<SharedPath>>,
    pub cache: Option<Vec<String>>,
    pub step_timeout: Option<Duration>,
    /// `Some(None)`: `require_checks = false`, which also overrides an app's `true`.
    pub require_checks: Option<Option<RequiredChecks>>,
    pub checks_timeout: Option<Duration>,
    /// Only the valid patterns; an environment's add to its app's.
    pub sync_exclude: SyncExclude,
    pub before_sync: Option<Vec<String>>,
    pub link_after_build: Option<bool>,
    pub export_ignore: Option<bool>,
    pub run: Option<String>,
    pub teardown: Option<Vec<String>>,
    pub stop_signal: Option<StopSignal>,
    pub stop_timeout: Option<Duration>,
    pub drain_timeout: Option<Duration>,
}

/// Where an app's check results can come from: what `require_checks` is checked against.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChecksFrom {
    pub forge: Forge,
    /// The app can ask its forge's API (`statuses = { … }`).
    pub status_api: bool,
}

impl Validator<'_> {
    /// `key` is the table's: `apps.shop` or `apps.shop.environments.staging`.
    pub(super) fn layer(&mut self, key: &str, raw: &RawOverridable, checks: ChecksFrom) -> Layer {
        let ChecksFrom { forge, status_api } = checks;
        let env = raw.env.clone().unwrap_or_default();
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
        let shared = raw.shared.as_ref().map(|list| {
            list.iter()
                .filter_map(|entry| {
                    let is_dir = entry.ends_with('/');
                    let path = entry.trim_end_matches('/').to_owned();
                    self.relative_inside(&format!("{key}.shared"), &path)
                        .then_some(SharedPath { path, is_dir })
                })
                .collect()
        });
        let cache = raw.cache.as_ref().map(|list| {
            list.iter()
                .map(|c| c.trim_end_matches('/').to_owned())
                .filter(|c| self.relative_inside(&format!("{key}.cache"), c))
                .collect()
        });
        let run = raw.run.clone();
        if run
            .as_ref()
            .is_some_and(|command| command.trim().is_empty())
        {
            self.problem(
                &format!("{key}.run"),
                "is empty: give the command that starts the app, e.g. \"gunicorn -b 127.0.0.1:$PORT app:app\"",
            );
        }
        let require_checks = self.require_checks(key, raw.require_checks.as_ref());
        if forge == Forge::Bitbucket && matches!(require_checks, Some(Some(_))) {
            self.problem(
                &format!("{key}.require_checks"),
                "stagehand reads no check results from Bitbucket: the deploy would only wait and be skipped",
            );
        }
        if forge == Forge::Forgejo && !status_api && matches!(require_checks, Some(Some(_))) {
            self.problem(
                &format!("{key}.require_checks"),
                "Forgejo sends no commit-status events, so results come only from its API: set statuses = { token_env, api_url }, or the deploy would only wait and be skipped",
            );
        }
        Layer {
            env,
            build: raw.build.clone(),
            after_release: raw.after_release.clone(),
            keep_releases: self
                .optional_positive(&format!("{key}.keep_releases"), raw.keep_releases),
            shared,
            cache,
            step_timeout: self
                .optional_duration(&format!("{key}.step_timeout"), raw.step_timeout.as_deref()),
            require_checks,
            checks_timeout: self.optional_duration(
                &format!("{key}.checks_timeout"),
                raw.checks_timeout.as_deref(),
            ),
            sync_exclude: self.sync_exclude(key, raw.sync_exclude.as_deref()),
            before_sync: raw.before_sync.clone(),
            link_after_build: self.flag(
                &format!("{key}.link_after_build"),
                raw.link_after_build.as_ref(),
            ),
            export_ignore: self.flag(&format!("{key}.export_ignore"), raw.export_ignore.as_ref()),
            run,
            teardown: raw.teardown.clone(),
            stop_signal: self.choice(
                &format!("{key}.stop_signal"),
                "a stop signal",
                raw.stop_signal.clone(),
            ),
            stop_timeout: self
                .optional_duration(&format!("{key}.stop_timeout"), raw.stop_timeout.as_deref()),
            drain_timeout: self.optional_duration(
                &format!("{key}.drain_timeout"),
                raw.drain_timeout.as_deref(),
            ),
        }
    }

    fn require_checks(
        &mut self,
        key: &str,
        raw: Option<&RawRequireChecks>,
    ) -> Option<Option<RequiredChecks>> {
        Some(match raw? {
            RawRequireChecks::All(true) => Some(RequiredChecks::All),
            RawRequireChecks::All(false) => None,
            RawRequireChecks::Named(names) => {
                if names.is_empty() || names.iter().any(|n| n.trim().is_empty()) {
                    self.problem(
                        &format!("{key}.require_checks"),
                        "list the check names (non-empty), or write true for every check",
                    );
                    return None;
                }
                Some(RequiredChecks::Named(names.clone()))
            }
        })
    }

    /// Every wrong pattern is reported, not only the first.
    fn sync_exclude(&mut self, key: &str, patterns: Option<&[String]>) -> SyncExclude {
        let mut valid = Vec::new();
        for pattern in patterns.unwrap_or_default() {
            match SyncExclude::parse(std::slice::from_ref(pattern)) {
                Ok(_) => valid.push(pattern.clone()),
                Err((pattern, e)) => {
                    self.problem(&format!("{key}.sync_exclude"), format!("{pattern:?}: {e}"));
                }
            }
        }
        SyncExclude::parse(&valid).unwrap_or_default()
    }
}

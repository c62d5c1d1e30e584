//! One environment: what feeds it (`branch`, `tag` or `pull_requests`), the keys only
//! an environment has (`protected`, `seed_from`, `url`, `health_check`, …), its own
//! layer of overridable keys laid over its app's, and the defaults below both.

use std::time::Duration;

use crate::core::ids::EnvironmentName;
use crate::core::ref_pattern::RefPattern;
use crate::core::routing::RefSource;

use super::super::raw::{RawEnvironment, RawPullRequests};
use super::super::types::EnvironmentConfig;
use super::Validator;
use super::layer::{ChecksFrom, Layer};

impl Validator<'_> {
    pub(super) fn environment(
        &mut self,
        key: &str,
        name: EnvironmentName,
        app: &Layer,
        raw: RawEnvironment,
        siblings: &[String],
        checks: ChecksFrom,
    ) -> Option<EnvironmentConfig> {
        self.unknown_keys(key, &raw.unknown);
        // The environment's own keys are checked before anything can end it early, so
        // their problems are reported even when nothing feeds it.
        let own = self.layer(key, &raw.overrides, checks);
        let source = self.source(key, &raw)?;
        let pull_requests = matches!(source, RefSource::PullRequests(_));
        if raw.allow_forks.is_some() && !pull_requests {
            self.problem(
                &format!("{key}.allow_forks"),
                "only means something with pull_requests",
            );
        }
        if raw.fork_label.is_some() && !pull_requests {
            self.problem(
                &format!("{key}.fork_label"),
                "only means something with pull_requests",
            );
        }
        let mut env = app.env.clone();
        env.extend(own.env.clone());
        let run = self.run_config(key, app, &own, &raw.overrides);
        let temporary = source.is_temporary();
        let health_check = self.health_check(key, raw.health_check, run.is_some());
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
        let url = raw.url.filter(|url| self.environment_url(key, url));
        Some(EnvironmentConfig {
            name,
            source,
            env,
            build: own.build.or_else(|| app.build.clone()).unwrap_or_default(),
            after_release: own
                .after_release
                .or_else(|| app.after_release.clone())
                .unwrap_or_default(),
            keep_releases: own.keep_releases.or(app.keep_releases).unwrap_or(5),
            shared: own
                .shared
                .or_else(|| app.shared.clone())
                .unwrap_or_default(),
            cache: own.cache.or_else(|| app.cache.clone()).unwrap_or_default(),
            step_timeout: own
                .step_timeout
                .or(app.step_timeout)
                .unwrap_or(Duration::from_secs(15 * 60)),
            sync_exclude: app.sync_exclude.union(&own.sync_exclude),
            before_sync: own
                .before_sync
                .or_else(|| app.before_sync.clone())
                .unwrap_or_default(),
            link_after_build: own
                .link_after_build
                .or(app.link_after_build)
                .unwrap_or(false),
            export_ignore: own.export_ignore.or(app.export_ignore).unwrap_or(false),
            require_checks: own
                .require_checks
                .or_else(|| app.require_checks.clone())
                .flatten(),
            checks_timeout: own
                .checks_timeout
                .or(app.checks_timeout)
                .unwrap_or(Duration::from_secs(30 * 60)),
            auto_deploy: raw.auto_deploy.unwrap_or(true),
            protected: raw.protected.unwrap_or(false),
            health_check,
            seed_from,
            url,
            allow_forks: raw.allow_forks.unwrap_or(false),
            fork_label: raw.fork_label.filter(|l| !l.trim().is_empty()),
            run,
            teardown: own
                .teardown
                .or_else(|| app.teardown.clone())
                .unwrap_or_default(),
            expire_after: self.expire_after(key, raw.expire_after.as_deref(), temporary),
            max_environments: self.max_environments(key, raw.max_environments, temporary),
            hosts: self.hosts(key, raw.hosts, temporary),
            static_dir: self.static_dir(key, raw.static_dir),
        })
    }

    /// Exactly one of `branch`, `tag` and `pull_requests`, as a valid pattern.
    fn source(&mut self, key: &str, raw: &RawEnvironment) -> Option<RefSource> {
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
        match (&raw.branch, &raw.tag, &pull_requests) {
            (Some(b), None, None) => Some(RefSource::Branch(pattern(self, "branch", b)?)),
            (None, Some(t), None) => Some(RefSource::Tag(pattern(self, "tag", t)?)),
            (None, None, Some(p)) => {
                Some(RefSource::PullRequests(pattern(self, "pull_requests", p)?))
            }
            (None, None, None) => {
                self.problem(
                    key,
                    "nothing feeds this environment: set branch (or tag, or pull_requests)",
                );
                None
            }
            _ => {
                self.problem(key, "set one of branch, tag and pull_requests");
                None
            }
        }
    }

    /// `url` becomes a link on the dashboard and GitHub's `environment_url`: an
    /// http(s) URL once `{environment}` is filled in (never `javascript:`).
    fn environment_url(&mut self, key: &str, url: &str) -> bool {
        let filled = url.replace("{environment}", "preview-x");
        self.http_url_as(&format!("{key}.url"), url, &filled, true)
    }
}

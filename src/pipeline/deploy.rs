//! One deploy, start to end: the stages of the contract's pipeline for commit deploys
//! (fetch → checkout → link → build → switch → after_release → health → cleanup),
//! and the shorter paths of rollbacks and teardowns. Environments that `run` take the
//! blue/green stages of `blue_green.rs` after the build (start → health → switch →
//! after_release → retire), as do their rollbacks and restarts.
//!
//! Invariant: nothing before `switch` touches `current`; a failure there removes the
//! half-made release and leaves the environment as it was. The release id is stored
//! before its directory exists, so a crash leaves a record of what to remove.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::config::{AppConfig, Config, EnvironmentConfig, HealthCheck, HealthTarget, MirrorMode};
use crate::core::deploy::{Deploy, DeployStatus, Trigger};
use crate::core::event::GitRef;
use crate::core::ids::{CommitSha, EnvironmentName};
use crate::core::mask::{Masker, is_secret_name};
use crate::core::release::{
    SkipFacts, new_release_id, previous_release, releases_to_remove, replay_reason, skip_reason,
};
use crate::core::time::Clock;
use crate::logs::{DeployLog, LogEvent, LogHub, Source};
use crate::metrics::Metrics;
use crate::reload::LiveConfig;
use crate::report::{ReportEvent, Reporter};
use crate::store::{Store, StoreError};

use super::commands::{self, CommandSpec, Outcome, Stream};
use super::final_status::store_final_status;
use super::git::{Mirror, Remote};
use super::health;
use super::layout::EnvironmentDir;
use super::leftovers::ProcessRegistry;
use super::{partial, reaper, recycle, releases, sync};
use crate::supervisor::Supervisor;

mod blue_green;
mod teardown_hooks;

/// What every deploy needs from the process around it.
#[derive(Clone)]
pub struct Context {
    /// Each deploy takes a snapshot when it starts: a reload never changes it halfway.
    pub config: LiveConfig,
    pub store: Store,
    pub logs: Arc<LogHub>,
    pub clock: Clock,
    /// Becomes true when running deploys must stop (shutdown grace exhausted).
    pub cancel: watch::Receiver<bool>,
    /// stagehand's own environment, from which commands inherit only a safe few variables.
    pub process_env: Arc<HashMap<String, String>>,
    /// Threads writing a checkout.
    pub checkout_threads: usize,
    pub metrics: Arc<Metrics>,
    /// Where deploy starts and ends are reported (GitHub, notify URLs).
    pub reporter: Option<Reporter>,
    /// Runs the app processes of environments that `run`.
    pub supervisor: Supervisor,
}

/// Why a deploy stopped early: the status it ends with and the reason shown to people.
#[derive(Debug, Clone)]
struct Stop {
    status: DeployStatus,
    reason: String,
}

impl Stop {
    fn failed(reason: impl Into<String>) -> Stop {
        Stop {
            status: DeployStatus::Failed,
            reason: reason.into(),
        }
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        // StoreError's own text already says it is the database's.
        Stop::failed(e.to_string())
    }
}

type Result<T> = std::result::Result<T, Stop>;

/// Runs `deploy` (already `running` in the store) and records how it ended. Followers
/// hear the end only once it is stored (see `final_status`).
pub async fn execute(ctx: &Context, deploy: Deploy) -> Deploy {
    let id = deploy.id;
    let config = ctx.config.get();
    let (outcome, log) = match resolve(&config, &deploy) {
        Ok((app, env_config)) => {
            let env_dir = EnvironmentDir::new(&app.root, &deploy.environment);
            let max_log = app.max_log_size.unwrap_or(config.server.max_log_size);
            let log = ctx
                .logs
                .open(id, masker(ctx, &config, app, env_config), max_log);
            let run = Run {
                ctx,
                deploy: &deploy,
                app,
                env_config,
                env_dir,
                log,
                new_release: std::sync::Mutex::new(None),
                git_ref: std::sync::Mutex::new(deploy.git_ref.clone()),
            };
            let outcome = run.go().await;
            run.finish_log(&outcome);
            (outcome, Some(run.log))
        }
        Err(stop) => (Err(stop), None),
    };
    let (status, reason) = match outcome {
        Ok(None) => (DeployStatus::Succeeded, None),
        Ok(Some(Stop { status, reason })) | Err(Stop { status, reason }) => (status, Some(reason)),
    };
    let deploy = match store_final_status(ctx, id, status, reason).await {
        Some(stored) => {
            if let Some(log) = &log {
                log.event(LogEvent::Status {
                    status: stored.status,
                    reason: stored.reason.clone(),
                });
            }
            stored
        }
        None => deploy,
    };
    // Dropping the log ends the live feed; a follower then reads the store.
    drop(log);
    if let Some(reporter) = &ctx.reporter {
        reporter.send(ReportEvent::Finished(deploy.clone()));
    }
    deploy
}

fn resolve<'a>(
    config: &'a Config,
    deploy: &Deploy,
) -> Result<(&'a AppConfig, &'a EnvironmentConfig)> {
    let app = config
        .apps
        .get(&deploy.app)
        .ok_or_else(|| Stop::failed(format!("app `{}` is no longer in the config", deploy.app)))?;
    let env = app
        .environments
        .get(&deploy.base_environment)
        .ok_or_else(|| {
            Stop::failed(format!(
                "environment `{}` is no longer in the config",
                deploy.base_environment
            ))
        })?;
    Ok((app, env))
}

fn masker(ctx: &Context, config: &Config, app: &AppConfig, env: &EnvironmentConfig) -> Masker {
    let mut values = vec![app.secret.expose().to_owned()];
    values.extend(
        config
            .server
            .api_token
            .as_ref()
            .map(|t| t.expose().to_owned()),
    );
    values.extend(app.repo_token.as_ref().map(|t| t.expose().to_owned()));
    let secret_vars = env.env.iter().chain(ctx.process_env.iter());
    values.extend(
        secret_vars
            .filter(|(k, _)| is_secret_name(k))
            .map(|(_, v)| v.clone()),
    );
    Masker::new(values)
}

struct Run<'a> {
    ctx: &'a Context,
    deploy: &'a Deploy,
    app: &'a AppConfig,
    env_config: &'a EnvironmentConfig,
    env_dir: EnvironmentDir,
    log: DeployLog,
    /// Set once checkout starts: removed again if the deploy stops before `switch`.
    /// (A `Mutex` only because stages borrow the run shared while they go.)
    new_release: std::sync::Mutex<Option<String>>,
    /// The deploy's ref, made precise by fetch for manual deploys.
    git_ref: std::sync::Mutex<String>,
}

/// `Ok(None)`: succeeded. `Ok(Some(stop))`: ended after the switch with another status
/// (rolled back, skipped). `Err(stop)`: failed or cancelled.
type Outcome2 = Result<Option<Stop>>;

fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Run<'_> {
    fn git_ref(&self) -> String {
        locked(&self.git_ref).clone()
    }

    /// Reports the deploy as started, once its commit is known.
    fn report_started(&self, commit: &str) {
        if let Some(reporter) = &self.ctx.reporter {
            let mut deploy = self.deploy.clone();
            deploy.commit = Some(commit.to_owned());
            deploy.git_ref = self.git_ref();
            reporter.send(ReportEvent::Started(deploy));
        }
    }

    fn now(&self) -> crate::core::time::UnixMillis {
        (self.ctx.clock)()
    }

    fn info(&self, stage: &str, text: &str) {
        self.log.info(self.now(), stage, text);
    }

    async fn go(&self) -> Outcome2 {
        self.log.event(LogEvent::Status {
            status: DeployStatus::Running,
            reason: None,
        });
        // Rollbacks and syncs name no ref: say only what started them.
        let source = match self.deploy.git_ref.as_str() {
            "" => format!("{} trigger", self.deploy.trigger),
            git_ref => format!("{} trigger, {git_ref}", self.deploy.trigger),
        };
        self.info(
            "deploy",
            &format!(
                "deploy {} of {} to {} ({source})",
                self.deploy.id, self.app.name, self.deploy.environment,
            ),
        );
        if self.deploy.trigger == Trigger::Reconcile {
            self.info("deploy", crate::pipeline::reconcile::WHY);
        }
        let dir = self.env_dir.dir.clone();
        let _lock = blocking(move || lock_environment(&dir)).await?;
        let result = match self.deploy.trigger {
            Trigger::Push | Trigger::Manual | Trigger::Promote | Trigger::Reconcile => {
                self.release_commit().await
            }
            Trigger::Rollback => self.rollback().await,
            Trigger::Restart => self.restart().await,
            Trigger::Teardown | Trigger::Expire => self.teardown().await.map(|()| None),
            Trigger::Sync => self.sync().await.map(|()| None),
        };
        let half_made = locked(&self.new_release).take();
        if result.is_err()
            && let Some(release) = half_made
        {
            let (env, r) = (self.env_dir.clone(), release.clone());
            match blocking(move || {
                releases::remove_release(&env, &r).map_err(|e| Stop::failed(e.to_string()))
            })
            .await
            {
                Ok(()) => self.info(
                    "cleanup",
                    &format!("removed the half-made release {release}"),
                ),
                Err(e) => self.info(
                    "cleanup",
                    &format!(
                        "could not remove the half-made release {release}: {}",
                        e.reason
                    ),
                ),
            }
        }
        result
    }

    fn finish_log(&self, outcome: &Outcome2) {
        let (status, reason) = match outcome {
            Ok(None) => (DeployStatus::Succeeded, None),
            Ok(Some(stop)) | Err(stop) => (stop.status, Some(stop.reason.clone())),
        };
        let text = match &reason {
            Some(reason) => format!("{status}: {reason}"),
            None => format!("{status}"),
        };
        self.info("deploy", &text);
    }

    fn check_cancel(&self) -> Result<()> {
        if *self.ctx.cancel.borrow() {
            Err(Stop {
                status: DeployStatus::Cancelled,
                reason: "stagehand is shutting down and the grace period ran out".into(),
            })
        } else {
            Ok(())
        }
    }

    /// Runs `work` as stage `name`: recorded in the store and the log with its duration.
    async fn stage<T>(&self, name: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.check_cancel()?;
        let id = self.deploy.id;
        let now = self.now();
        let stage = name.to_owned();
        let seq = self
            .ctx
            .store
            .run(move |s| s.begin_stage(id, &stage, now))
            .await?;
        self.log.event(LogEvent::Stage {
            name: name.to_owned(),
            status: DeployStatus::Running,
            duration_ms: None,
        });
        let started = Instant::now();
        let result = work.await;
        let took = started.elapsed();
        self.ctx.metrics.stage(name, took);
        let ms = took.as_millis() as i64;
        let status = match &result {
            Ok(_) => DeployStatus::Succeeded,
            Err(stop) => stop.status,
        };
        self.info(name, &format!("{status} in {}", human_ms(ms)));
        let _ = self
            .ctx
            .store
            .run(move |s| s.end_stage(id, seq, status, ms))
            .await;
        self.log.event(LogEvent::Stage {
            name: name.to_owned(),
            status,
            duration_ms: Some(ms),
        });
        result
    }

    async fn release_commit(&self) -> Outcome2 {
        let mirror = Mirror::new(&self.ctx.config.get().server.state_dir, &self.app.name);
        let commit = self.stage("fetch", self.fetch(&mirror)).await?;
        self.skip_if_stale(&mirror, &commit).await?;
        self.report_started(&commit);
        let release = self
            .stage("checkout", self.checkout(&mirror, &commit))
            .await?;
        let release_dir = self.env_dir.releases().join(&release);
        if let Some(seed) = self.seed_source() {
            self.stage("seed", self.copy_data(seed, "seed")).await?;
        }
        // Shared data is linked before the build by default (builds often need `.env`);
        // `link_after_build` keeps live data out of builds (tests reading live config).
        let link_after_build = self.env_config.link_after_build;
        if !link_after_build {
            self.stage("link", self.link(&release_dir)).await?;
        }
        let env = self.command_env(&commit, &release, &release_dir);
        let cache = self.env_dir.cache();
        blocking(move || {
            std::fs::create_dir_all(&cache).map_err(|e| {
                Stop::failed(format!("creating the cache dir {}: {e}", cache.display()))
            })
        })
        .await?;
        self.stage(
            "build",
            self.commands("build", &self.env_config.build, &release_dir, &env),
        )
        .await?;
        if link_after_build {
            self.stage("link", self.link(&release_dir)).await?;
        }
        let previous = self.env_dir.live().map(|l| l.release);
        let mut after_env = env.clone();
        after_env.push((
            "STAGEHAND_PREVIOUS_RELEASE".into(),
            previous.clone().unwrap_or_default(),
        ));
        if self.env_config.run.is_some() {
            return self.go_live_running(&release, Some(after_env)).await;
        }
        self.stage("switch", self.switch(&release)).await?;
        // From here on the new release is live: it is no longer half-made.
        locked(&self.new_release).take();
        let after = self
            .stage(
                "after_release",
                self.commands(
                    "after_release",
                    &self.env_config.after_release,
                    &release_dir,
                    &after_env,
                ),
            )
            .await;
        if let Err(stop) = after {
            return self.switch_back(previous, stop).await;
        }
        if let Some(HealthCheck {
            target: HealthTarget::Url(url),
            timeout,
        }) = &self.env_config.health_check
        {
            let (url, timeout) = (url.clone(), *timeout);
            let healthy = self
                .stage("health", async move {
                    blocking(move || {
                        health::wait_healthy(&url, timeout)
                            .map_err(|e| Stop::failed(format!("health check failed: {e}")))
                    })
                    .await
                })
                .await;
            match healthy {
                Ok(code) => self.info("health", &format!("healthy (HTTP {code})")),
                Err(stop) => return self.switch_back(previous, stop).await,
            }
        }
        self.stage("cleanup", self.cleanup()).await.ok();
        Ok(None)
    }

    async fn fetch(&self, mirror: &Mirror) -> Result<String> {
        let remote = Remote::of(self.app);
        // A push names the ref to fetch: a branch, a tag, or a pull request's head ref
        // (`refs/pull/7/head`), which holds a fork's commits too.
        let pushed = self.deploy.trigger.is_push_like() && self.deploy.git_ref.starts_with("refs/");
        let refspecs = if pushed {
            vec![format!("+{0}:{0}", self.deploy.git_ref)]
        } else {
            vec![
                "+refs/heads/*:refs/heads/*".into(),
                "+refs/tags/*:refs/tags/*".into(),
            ]
        };
        self.info(
            "fetch",
            &format!("fetching {} from {}", refspecs.join(" "), remote.url),
        );
        mirror
            .fetch(&remote, refspecs, self.env_config.step_timeout)
            .await
            .map_err(|e| Stop::failed(e.to_string()))?;
        // A push names its commit (for a tag, possibly the tag object); a manual deploy
        // names a ref or a sha; a promote, the commit live in its source.
        let spec = match (&self.deploy.commit, self.deploy.trigger) {
            (Some(commit), _) => commit.clone(),
            (None, _) => self.deploy.git_ref.clone(),
        };
        let m = mirror.clone();
        let hint = missing_commit_hint(self.deploy.trigger, &self.deploy.git_ref);
        let (commit, found_as) = blocking(move || {
            m.resolve_commit(&spec)
                .map_err(|e| Stop::failed(format!("{e} ({hint})")))
        })
        .await?;
        // A manual `--ref develop` is recorded as the ref it named, so the build sees
        // STAGEHAND_BRANCH=develop; a push keeps the ref it was pushed to.
        if !self.deploy.trigger.is_push_like() && found_as.starts_with("refs/") {
            *locked(&self.git_ref) = found_as;
        }
        let (id, c, r) = (self.deploy.id, commit.clone(), self.git_ref());
        self.ctx
            .store
            .run(move |s| s.set_commit(id, &c, &r))
            .await?;
        let (m, c) = (mirror.clone(), commit.clone());
        let details = blocking(move || {
            m.commit_details(&c)
                .map_err(|e| Stop::failed(e.to_string()))
        })
        .await;
        // The message is for people reading the history: a commit libgit2 cannot
        // describe still deploys.
        if let Ok((message, author)) = details {
            self.info(
                "fetch",
                &format!(
                    "commit {} {message} ({author})",
                    &commit[..7.min(commit.len())]
                ),
            );
            self.ctx
                .store
                .run(move |s| s.set_commit_details(id, &message, &author))
                .await?;
        }
        Ok(commit)
    }

    async fn skip_if_stale(&self, mirror: &Mirror, commit: &str) -> Result<()> {
        if let Some(live_commit) = self.env_dir.live().and_then(|l| l.commit) {
            let is_live = live_commit == commit;
            let (m, c, l) = (mirror.clone(), commit.to_owned(), live_commit.clone());
            let is_ancestor_of_live = !is_live
                && blocking(move || {
                    m.is_ancestor(&c, &l)
                        .map_err(|e| Stop::failed(e.to_string()))
                })
                .await
                .unwrap_or(false);
            let facts = SkipFacts {
                is_live,
                is_ancestor_of_live,
                forced: self.deploy.forced,
                by_hand: !self.deploy.trigger.is_push_like(),
            };
            if let Some(reason) = skip_reason(facts) {
                return Err(Stop {
                    status: DeployStatus::Skipped,
                    reason: format!("{reason} ({})", &live_commit[..7.min(live_commit.len())]),
                });
            }
        }
        // Forced pushes pass the checks above, so a replayed one is caught only here.
        let git_ref = GitRef::from_full(&self.deploy.git_ref);
        let pushed = self.deploy.trigger.is_push_like() && !matches!(git_ref, GitRef::Other(_));
        if !pushed {
            return Ok(());
        }
        let (m, r) = (mirror.clone(), self.deploy.git_ref.clone());
        let head = blocking(move || {
            m.resolve_commit(&r)
                .map(|(head, _)| head)
                .map_err(|e| Stop::failed(e.to_string()))
        })
        .await
        .ok();
        match replay_reason(pushed, head.as_deref(), commit, git_ref.short()) {
            Some(reason) => Err(Stop {
                status: DeployStatus::Skipped,
                reason,
            }),
            None => Ok(()),
        }
    }

    async fn checkout(&self, mirror: &Mirror, commit: &str) -> Result<String> {
        let sha = CommitSha::parse(commit).map_err(|e| Stop::failed(e.to_string()))?;
        if self.app.mirror == MirrorMode::Treeless {
            let timeout = self.env_config.step_timeout;
            let got = partial::prefetch(mirror, &Remote::of(self.app), commit, timeout)
                .await
                .map_err(|e| Stop::failed(format!("checkout: {e}")))?;
            let fetched = match (got.walked, got.trees) {
                (true, _) => "fetched the commit's files and trees in one walk".to_owned(),
                (false, true) => format!("fetched {} files and the commit's trees", got.blobs),
                (false, false) => format!("fetched {} files", got.blobs),
            };
            self.info("checkout", &fetched);
        }
        let releases_dir = self.env_dir.releases();
        let dir = releases_dir.clone();
        let now = self.now();
        let release = blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Stop::failed(format!("creating {}: {e}", dir.display())))?;
            let existing = releases::list_in(&dir)
                .map_err(|e| Stop::failed(format!("listing releases: {e}")))?;
            Ok(new_release_id(now, &sha, &existing))
        })
        .await?;
        let (id, r, c) = (self.deploy.id, release.clone(), commit.to_owned());
        self.ctx
            .store
            .run(move |s| s.set_release(id, &r, Some(&c)))
            .await?;
        *locked(&self.new_release) = Some(release.clone());
        let release_dir = releases_dir.join(&release);
        self.info(
            "checkout",
            &format!("writing {} into releases/{release}", &commit[..7]),
        );
        let (repo, dest, c, threads) = (
            mirror.path.clone(),
            release_dir.clone(),
            commit.to_owned(),
            self.ctx.checkout_threads,
        );
        let written = blocking(move || {
            let _writing = reaper::busy();
            let written = recycle::checkout(&repo, &c, &dest, threads)
                .map_err(|e| Stop::failed(format!("checkout: {e}")))?;
            std::fs::write(dest.join("REVISION"), format!("{c}\n"))
                .map_err(|e| Stop::failed(format!("writing REVISION: {e}")))?;
            Ok(written)
        })
        .await?;
        for note in recycle::notes(&written) {
            self.info("checkout", &note);
        }
        let stats = written.stats;
        self.info(
            "checkout",
            &format!(
                "{} files, {} symlinks, {:.1} MB",
                stats.files,
                stats.symlinks,
                stats.bytes as f64 / 1e6
            ),
        );
        for path in &stats.submodules_skipped {
            self.info(
                "checkout",
                &format!("submodule {path} skipped: submodules are not checked out"),
            );
        }
        if !self.env_config.cache.is_empty()
            && let Some(live) = self.env_dir.live()
        {
            let live_dir = self.env_dir.releases().join(&live.release);
            let (paths, dest) = (self.env_config.cache.clone(), release_dir.clone());
            let notes = blocking(move || {
                releases::copy_cache(&live_dir, &dest, &paths)
                    .map_err(|e| Stop::failed(format!("cache: {e}")))
            })
            .await?;
            for note in notes {
                self.info("checkout", &note);
            }
        }
        Ok(release)
    }

    async fn link(&self, release_dir: &Path) -> Result<()> {
        let (env, dir, shared) = (
            self.env_dir.clone(),
            release_dir.to_owned(),
            self.env_config.shared.clone(),
        );
        let notes = blocking(move || {
            releases::link_shared(&env, &dir, &shared)
                .map_err(|e| Stop::failed(format!("linking shared data: {e}")))
        })
        .await?;
        for note in notes {
            self.info("link", &note);
        }
        Ok(())
    }

    fn command_env(
        &self,
        commit: &str,
        release: &str,
        release_dir: &Path,
    ) -> Vec<(String, String)> {
        let mut env = commands::base_env(&self.ctx.process_env);
        env.extend(
            self.env_config
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let git_ref = GitRef::from_full(&self.git_ref());
        let (branch, tag) = match &git_ref {
            GitRef::Branch(b) => (b.clone(), String::new()),
            GitRef::Tag(t) => (String::new(), t.clone()),
            GitRef::Other(_) => (String::new(), String::new()),
        };
        let vars = [
            ("STAGEHAND_APP", self.app.name.to_string()),
            ("STAGEHAND_ENVIRONMENT", self.deploy.environment.to_string()),
            (
                "STAGEHAND_BASE_ENVIRONMENT",
                self.deploy.base_environment.to_string(),
            ),
            ("STAGEHAND_BRANCH", branch),
            ("STAGEHAND_TAG", tag),
            ("STAGEHAND_REF", self.git_ref()),
            ("STAGEHAND_COMMIT", commit.to_owned()),
            ("STAGEHAND_RELEASE", release.to_owned()),
            ("STAGEHAND_RELEASE_DIR", release_dir.display().to_string()),
            (
                "STAGEHAND_SHARED_DIR",
                self.env_dir.shared().display().to_string(),
            ),
            (
                "STAGEHAND_CACHE_DIR",
                self.env_dir.cache().display().to_string(),
            ),
            ("STAGEHAND_DEPLOY_ID", self.deploy.id.to_string()),
            ("STAGEHAND_TRIGGER", self.deploy.trigger.to_string()),
        ];
        env.extend(vars.into_iter().map(|(k, v)| (k.to_owned(), v)));
        env
    }

    /// A temporary environment on its first deploy starts with a copy of its
    /// `seed_from` environment's data: the environment it names, whose shared data is
    /// still missing here.
    fn seed_source(&self) -> Option<EnvironmentName> {
        let seed = self.env_config.seed_from.clone()?;
        let is_new = self.deploy.environment != self.deploy.base_environment
            && !self.env_dir.shared().exists();
        is_new.then_some(seed)
    }

    /// Copies `from`'s shared directories into this environment's, then runs the app's
    /// `sync` commands. Shared *files* are skipped: by convention (`.env`) they hold an
    /// environment's own configuration, and production's credentials must not flow
    /// into staging.
    async fn copy_data(&self, from: EnvironmentName, stage: &str) -> Result<()> {
        let from_dir = EnvironmentDir::new(&self.app.root, &from);
        if !from_dir.shared().is_dir() && stage == "seed" {
            // A preview made before its seed ever deployed starts empty rather than failing.
            self.info(
                stage,
                &format!("`{from}` has no shared data yet: starting empty"),
            );
            return Ok(());
        }
        if !from_dir.shared().is_dir() {
            return Err(Stop::failed(format!(
                "`{from}` has no shared data yet ({} is missing)",
                from_dir.shared().display()
            )));
        }
        let source_config = self.source_config(&from).await?;
        let mut env = commands::base_env(&self.ctx.process_env);
        env.extend(
            self.env_config
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let vars = [
            ("STAGEHAND_APP", self.app.name.to_string()),
            ("STAGEHAND_DEPLOY_ID", self.deploy.id.to_string()),
            ("STAGEHAND_FROM_ENVIRONMENT", from.to_string()),
            (
                "STAGEHAND_FROM_SHARED",
                from_dir.shared().display().to_string(),
            ),
            (
                "STAGEHAND_TO_ENVIRONMENT",
                self.deploy.environment.to_string(),
            ),
            (
                "STAGEHAND_TO_SHARED",
                self.env_dir.shared().display().to_string(),
            ),
        ];
        env.extend(vars.into_iter().map(|(k, v)| (k.to_owned(), v)));
        // The source's own commands first, in its directory with its variables: a
        // consistent dump of a live database into shared/, which is then what is copied.
        if let Some(source) = &source_config
            && !source.before_sync.is_empty()
        {
            let mut source_env = commands::base_env(&self.ctx.process_env);
            source_env.extend(source.env.iter().map(|(k, v)| (k.clone(), v.clone())));
            source_env.extend(vars_of(&env));
            self.info(stage, &format!("before_sync in `{from}`"));
            self.commands(stage, &source.before_sync, &from_dir.dir, &source_env)
                .await?;
        }
        let exclude = match &source_config {
            Some(source) => source.sync_exclude.union(&self.env_config.sync_exclude),
            None => self.env_config.sync_exclude.clone(),
        };
        if !exclude.is_empty() {
            self.info(
                stage,
                &format!("left out: {}", exclude.patterns().join(", ")),
            );
        }
        let to_shared = self.env_dir.shared();
        for entry in &self.env_config.shared {
            if !entry.is_dir {
                self.info(
                    stage,
                    &format!(
                        "{}: a shared file (per-environment configuration), not copied",
                        entry.path
                    ),
                );
                continue;
            }
            let (source, target) = (
                from_dir.shared().join(&entry.path),
                to_shared.join(&entry.path),
            );
            if !source.is_dir() {
                self.info(
                    stage,
                    &format!("{}/: not in {from}, nothing to copy", entry.path),
                );
                continue;
            }
            let (rel, exclude) = (entry.path.clone(), exclude.clone());
            let stats = blocking(move || {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Stop::failed(e.to_string()))?;
                }
                sync::copy_tree(&source, &target, &rel, &exclude)
                    .map_err(|e| Stop::failed(format!("copying data: {e}")))
            })
            .await?;
            self.info(
                stage,
                &format!(
                    "{}/: {} copied ({:.1} MB), {} unchanged, {} symlinks, {} left out",
                    entry.path,
                    stats.copied,
                    stats.bytes as f64 / 1e6,
                    stats.unchanged,
                    stats.symlinks,
                    stats.excluded
                ),
            );
        }
        let dir = self.env_dir.dir.clone();
        self.commands(stage, &self.app.sync, &dir, &env).await
    }

    /// The configuration of the environment data is copied from: a configured one, or
    /// the pattern environment a temporary one was made from.
    async fn source_config(&self, from: &EnvironmentName) -> Result<Option<EnvironmentConfig>> {
        if let Some(config) = self.app.environments.get(from) {
            return Ok(Some(config.clone()));
        }
        let (app, name) = (self.app.name.clone(), from.clone());
        let temporary = self
            .ctx
            .store
            .run(move |s| s.temporary_environments(&app))
            .await?;
        Ok(temporary
            .into_iter()
            .find(|t| t.name == name)
            .and_then(|t| self.app.environments.get(&t.base).cloned()))
    }

    async fn sync(&self) -> Result<()> {
        let from = self
            .deploy
            .from_environment
            .clone()
            .ok_or_else(|| Stop::failed("a sync needs the environment to copy from"))?;
        if self.env_config.protected && !self.deploy.forced {
            return Err(Stop::failed(format!(
                "`{}` is protected: data flows into it only with --force",
                self.deploy.environment
            )));
        }
        self.stage("sync", self.copy_data(from, "sync")).await
    }

    async fn commands(
        &self,
        stage: &str,
        list: &[String],
        dir: &Path,
        env: &[(String, String)],
    ) -> Result<()> {
        if list.is_empty() {
            self.info(stage, "no commands configured");
        }
        for command in list {
            self.check_cancel()?;
            self.info(stage, &format!("$ {command}"));
            let spec = CommandSpec {
                command: command.clone(),
                dir: dir.to_owned(),
                env: env.to_vec(),
                timeout: self.env_config.step_timeout,
                kill_grace: std::time::Duration::from_secs(5),
                groups: Some(ProcessRegistry {
                    store: self.ctx.store.clone(),
                    deploy: self.deploy.id,
                }),
                secrets: self.log.masker().clone(),
            };
            let clock = self.ctx.clock.clone();
            let log = &self.log;
            let on_line = |stream: Stream, text: &str| {
                let source = match stream {
                    Stream::Stdout => Source::Stdout,
                    Stream::Stderr => Source::Stderr,
                };
                log.line(clock(), stage, source, text);
            };
            let outcome = commands::run(&spec, on_line, self.ctx.cancel.clone())
                .await
                .map_err(|e| Stop::failed(e.to_string()))?;
            match outcome {
                Outcome::Succeeded => {}
                Outcome::Cancelled => {
                    return Err(Stop {
                        status: DeployStatus::Cancelled,
                        reason: format!(
                            "{stage} command `{command}` cancelled: stagehand is shutting down"
                        ),
                    });
                }
                other => {
                    return Err(Stop::failed(format!(
                        "{stage} command `{command}` failed: {}",
                        other.describe()
                    )));
                }
            }
        }
        Ok(())
    }

    async fn switch(&self, release: &str) -> Result<()> {
        let (env, r) = (self.env_dir.clone(), release.to_owned());
        blocking(move || {
            releases::switch(&env, &r).map_err(|e| Stop::failed(format!("switching current: {e}")))
        })
        .await?;
        self.info("switch", &format!("current → releases/{release}"));
        Ok(())
    }

    /// After a failure past the switch: back to `previous` and `rolled_back`, or, with
    /// nothing to go back to, `failed` with the new release left live. `after_release`
    /// runs again for `previous`, exactly as a manual rollback runs it: whatever it
    /// does (reloading a server) must happen for the release that is live again.
    async fn switch_back(&self, previous: Option<String>, stop: Stop) -> Outcome2 {
        if stop.status == DeployStatus::Cancelled {
            return Err(stop);
        }
        let Some(previous) = previous else {
            return Err(Stop::failed(format!(
                "{}; there is no previous release to go back to, so the new one stays live",
                stop.reason
            )));
        };
        let failed_release = self.env_dir.live().map(|l| l.release);
        self.stage("switch", self.switch(&previous)).await?;
        let previous_dir = self.env_dir.releases().join(&previous);
        let commit = std::fs::read_to_string(previous_dir.join("REVISION"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let mut env = self.command_env(&commit, &previous, &previous_dir);
        env.push((
            "STAGEHAND_PREVIOUS_RELEASE".into(),
            failed_release.unwrap_or_default(),
        ));
        let again = self
            .stage(
                "after_release",
                self.commands(
                    "after_release",
                    &self.env_config.after_release,
                    &previous_dir,
                    &env,
                ),
            )
            .await;
        let also = match again {
            Ok(()) => String::new(),
            Err(e) => format!("; after_release for {previous} failed too: {}", e.reason),
        };
        Ok(Some(Stop {
            status: DeployStatus::RolledBack,
            reason: format!("{}; switched back to {previous}{also}", stop.reason),
        }))
    }

    async fn cleanup(&self) -> Result<()> {
        let env = self.env_dir.clone();
        let keep = self.env_config.keep_releases;
        // A release a recorded process runs from is never removed under it.
        let (app, name) = (self.app.name.clone(), self.deploy.environment.clone());
        let in_use = self
            .ctx
            .store
            .run(move |s| {
                Ok(s.processes_of(&app, &name)?
                    .into_iter()
                    .map(|p| p.release)
                    .collect::<Vec<_>>())
            })
            .await?;
        let removed = blocking(move || {
            let all = releases::list(&env).map_err(|e| Stop::failed(e.to_string()))?;
            let live = env.live().map(|l| l.release);
            let mut doomed = releases_to_remove(&all, live.as_deref(), keep);
            doomed.retain(|r| !in_use.contains(r));
            for release in &doomed {
                releases::retire_release(&env, release)
                    .map_err(|e| Stop::failed(format!("removing {release}: {e}")))?;
            }
            // Their files (and any a crash left) go in the background: see reaper.rs.
            reaper::sweep(&env.releases())
                .map_err(|e| Stop::failed(format!("queueing removed releases: {e}")))?;
            Ok(doomed)
        })
        .await;
        match &removed {
            Ok(list) if list.is_empty() => self.info(
                "cleanup",
                &format!("keeping every release (keep_releases = {keep})"),
            ),
            Ok(list) => self.info("cleanup", &format!("removed {}", list.join(", "))),
            Err(stop) => self.info(
                "cleanup",
                &format!("cleanup failed (the deploy stands): {}", stop.reason),
            ),
        }
        removed.map(drop)
    }

    async fn rollback(&self) -> Outcome2 {
        let env = self.env_dir.clone();
        let requested = self.deploy.release.clone();
        let (target, live) = blocking(move || {
            let all = releases::list(&env).map_err(|e| Stop::failed(e.to_string()))?;
            let live = env.live().map(|l| l.release);
            let target = match requested {
                Some(r) if all.contains(&r) => r,
                Some(r) => {
                    return Err(Stop::failed(format!(
                        "release {r} does not exist (see `stagehand releases`)"
                    )));
                }
                None => live
                    .as_deref()
                    .and_then(|l| previous_release(&all, l))
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        Stop::failed("there is no release before the live one to roll back to")
                    })?,
            };
            Ok((target, live))
        })
        .await?;
        if live.as_deref() == Some(target.as_str()) {
            return Err(Stop {
                status: DeployStatus::Skipped,
                reason: format!("{target} is already live"),
            });
        }
        let revision =
            std::fs::read_to_string(self.env_dir.releases().join(&target).join("REVISION"))
                .map(|s| s.trim().to_owned())
                .ok();
        let (id, r, c) = (self.deploy.id, target.clone(), revision.clone());
        self.ctx
            .store
            .run(move |s| s.set_release(id, &r, c.as_deref()))
            .await?;
        if let Some(commit) = &revision {
            self.report_started(commit);
        }
        let release_dir = self.env_dir.releases().join(&target);
        let mut env = self.command_env(
            revision.as_deref().unwrap_or_default(),
            &target,
            &release_dir,
        );
        env.push((
            "STAGEHAND_PREVIOUS_RELEASE".into(),
            live.unwrap_or_default(),
        ));
        if self.env_config.run.is_some() {
            return self.go_live_running(&target, Some(env)).await;
        }
        self.stage("switch", self.switch(&target)).await?;
        self.stage(
            "after_release",
            self.commands(
                "after_release",
                &self.env_config.after_release,
                &release_dir,
                &env,
            ),
        )
        .await?;
        Ok(None)
    }

    async fn teardown(&self) -> Result<()> {
        if self.env_config.protected {
            return Err(Stop::failed(format!(
                "`{}` is protected: never torn down",
                self.deploy.environment
            )));
        }
        if self.deploy.environment == self.deploy.base_environment {
            return Err(Stop::failed("only temporary environments are torn down"));
        }
        let dir = self.env_dir.dir.clone();
        self.stage("teardown", async {
            self.teardown_commands().await;
            // The process goes before its directory: never an app serving from a
            // deleted release.
            let stopped = self
                .ctx
                .supervisor
                .stop_environment(&self.app.name, &self.deploy.environment)
                .await
                .map_err(|e| Stop::failed(format!("stopping the app process: {e}")))?;
            if stopped > 0 {
                self.info("teardown", &format!("stopped {stopped} app process(es)"));
            }
            let path = dir.clone();
            blocking(move || {
                releases::remove_tree(&path)
                    .map_err(|e| Stop::failed(format!("removing {}: {e}", path.display())))
            })
            .await?;
            self.info("teardown", &format!("removed {}", dir.display()));
            Ok(())
        })
        .await?;
        let (app, name) = (self.app.name.clone(), self.deploy.environment.clone());
        self.ctx
            .store
            .run(move |s| s.remove_temporary_environment(&app, &name))
            .await?;
        Ok(())
    }
}

fn human_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// Runs blocking work (git, the filesystem) on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Stop::failed(format!("internal task failed: {e}")))?
}

/// Holds `<env>/.stagehand.lock` with `flock` for the deploy's length, so a second
/// stagehand on the same `root` cannot deploy into the environment at the same time.
/// The kernel drops the lock with the process: a crash never leaves it locked.
fn lock_environment(dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Stop::failed(format!("creating {}: {e}", dir.display())))?;
    let path: PathBuf = dir.join(".stagehand.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Stop::failed(format!("opening {}: {e}", path.display())))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|e| {
        Stop::failed(format!(
            "{} is locked by another process ({e}): is a second stagehand deploying to the same root?",
            path.display()
        ))
    })?;
    Ok(file)
}

/// The `STAGEHAND_*` variables of a command environment.
fn vars_of(env: &[(String, String)]) -> Vec<(String, String)> {
    env.iter()
        .filter(|(k, _)| k.starts_with("STAGEHAND_"))
        .cloned()
        .collect()
}

/// Why a commit the deploy names may be missing from the freshly fetched mirror, worded
/// for what named it: a pushed branch may have been rewritten, a pushed tag moved, a
/// hand-typed ref mistyped.
fn missing_commit_hint(trigger: Trigger, git_ref: &str) -> &'static str {
    match (trigger, git_ref) {
        (Trigger::Push, r) if r.starts_with("refs/tags/") => {
            "was the tag deleted or moved before the deploy started?"
        }
        (Trigger::Push, _) => "was the branch force-pushed or deleted before the deploy started?",
        (Trigger::Promote, _) => "the source environment's commit is no longer in the repository",
        _ => "no branch, tag or commit of that name is in the repository",
    }
}

#[cfg(test)]
mod tests {
    use super::lock_environment;

    #[test]
    fn an_environment_lock_is_exclusive_and_dies_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("staging");
        let held = lock_environment(&env).unwrap();
        let second = lock_environment(&env).unwrap_err();
        assert!(
            second.reason.contains("is locked by another process"),
            "{}",
            second.reason
        );
        drop(held);
        assert!(lock_environment(&env).is_ok());
    }
}

//! One deploy, start to end: the stages of the contract's pipeline for commit deploys
//! (fetch → checkout → link → build → switch → after_release → health → cleanup),
//! and the shorter paths of rollbacks and teardowns. Environments that `run` take the
//! blue/green stages of `blue_green.rs` after the build (start → health → switch →
//! after_release → retire), as do their rollbacks and restarts.
//!
//! This file is the run itself: the stage sequence each trigger takes, recording each
//! stage (store, log, metrics), running a stage's commands, and how the deploy ends.
//! The kinds of work are beside it: `release.rs` (a commit's stages), `rollback.rs`,
//! `data.rs` (seed and sync), `teardown.rs` and `blue_green.rs`. Commands get their
//! environment from `commands::env`, the one place it is made.
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

use crate::config::{AppConfig, Config, EnvironmentConfig};
use crate::core::deploy::{Deploy, DeployStatus, Trigger};
use crate::core::duration::format_elapsed;
use crate::core::ids::CommitSha;
use crate::core::mask::{Masker, is_secret_name};
use crate::core::stage::StageName;
use crate::core::time::Clock;
use crate::logs::{DeployLog, LogEvent, LogHub, Source};
use crate::metrics::Metrics;
use crate::reload::LiveConfig;
use crate::report::{ReportEvent, Reporter};
use crate::store::{Store, StoreError};
use crate::supervisor::Supervisor;

use super::commands::{self, CommandSpec, Outcome, Stream};
use super::final_status::store_final_status;
use super::leftovers::ProcessRegistry;
use super::releases;
use crate::command_env::{CommandEnv, DeployVars, ReleaseVars};
use crate::layout::EnvironmentDir;

mod blue_green;
mod data;
mod release;
mod rollback;
mod teardown;

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
    let (outcome, log, after_end) = match resolve(&config, &deploy) {
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
                after_end: std::sync::Mutex::new(Vec::new()),
            };
            let outcome = run.go().await;
            run.finish_log(&outcome);
            let after_end = std::mem::take(&mut *locked(&run.after_end));
            (outcome, Some(run.log), after_end)
        }
        Err(stop) => (Err(stop), None, Vec::new()),
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
    // Once the deploy's end is stored: its duration does not include them.
    for work in after_end {
        work.spawn();
    }
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
    /// Background work for after the deploy's end (see [`AfterEnd`]).
    after_end: std::sync::Mutex<Vec<AfterEnd>>,
}

/// Work a deploy leaves for the background once its end is stored: none of it is
/// needed for this deploy, and all of it makes the next one faster.
enum AfterEnd {
    /// The history a shallow first fetch left out (`git.rs`, "The first fetch").
    Deepen(super::partial::Deepen),
    /// A spare tree for the next checkout to recycle (`recycle/ahead.rs`).
    Spare(super::recycle::SpareAhead),
}

impl AfterEnd {
    fn spawn(self) {
        match self {
            AfterEnd::Deepen(deepen) => deepen.spawn(),
            AfterEnd::Spare(spare) => spare.spawn(),
        }
    }
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
    fn report_started(&self, commit: &CommitSha) {
        if let Some(reporter) = &self.ctx.reporter {
            let mut deploy = self.deploy.clone();
            deploy.commit = Some(commit.to_string());
            deploy.git_ref = self.git_ref();
            reporter.send(ReportEvent::Started(deploy));
        }
    }

    fn now(&self) -> crate::core::time::UnixMillis {
        (self.ctx.clock)()
    }

    fn info(&self, stage: StageName, text: &str) {
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
            StageName::Deploy,
            &format!(
                "deploy {} of {} to {} ({source})",
                self.deploy.id, self.app.name, self.deploy.environment,
            ),
        );
        if self.deploy.trigger == Trigger::Reconcile {
            self.info(StageName::Deploy, crate::pipeline::reconcile::WHY);
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
                    StageName::Cleanup,
                    &format!("removed the half-made release {release}"),
                ),
                Err(e) => self.info(
                    StageName::Cleanup,
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
        self.info(StageName::Deploy, &text);
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
    async fn stage<T>(&self, name: StageName, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.check_cancel()?;
        let id = self.deploy.id;
        let now = self.now();
        let seq = self
            .ctx
            .store
            .run(move |s| s.begin_stage(id, name, now))
            .await?;
        self.log.event(LogEvent::Stage {
            name,
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
        self.info(name, &format!("{status} in {}", format_elapsed(ms)));
        let _ = self
            .ctx
            .store
            .run(move |s| s.end_stage(id, seq, status, ms))
            .await;
        self.log.event(LogEvent::Stage {
            name,
            status,
            duration_ms: Some(ms),
        });
        result
    }

    /// The environment of this deploy's commands that run in `release`: build,
    /// `after_release` (add [`CommandEnv::with_previous_release`]), teardown hooks.
    fn command_env(&self, commit: Option<&CommitSha>, release: &str) -> CommandEnv {
        let git_ref = self.git_ref();
        CommandEnv::new(&self.ctx.process_env, &self.env_config.env)
            .with_release(&ReleaseVars {
                app: &self.app.name,
                environment: &self.deploy.environment,
                base_environment: &self.deploy.base_environment,
                env_dir: &self.env_dir,
                release,
                commit,
            })
            .with_deploy(
                &self.env_dir,
                &DeployVars {
                    id: self.deploy.id,
                    trigger: self.deploy.trigger,
                    git_ref: &git_ref,
                },
            )
    }

    async fn commands(
        &self,
        stage: StageName,
        list: &[String],
        dir: &Path,
        env: &CommandEnv,
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
                env: env.vars().to_vec(),
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

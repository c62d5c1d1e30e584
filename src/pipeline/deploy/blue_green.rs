//! The stages of an environment that `run`s: the new release's process is started
//! beside the old one, health-checked on its own port, and only then switched to
//! (`current` and the route together); after `after_release` the old process is
//! retired. Deploys, rollbacks and restarts all go through [`Run::go_live_running`].
//!
//! Invariant: switch only to a release that answered. A failure before the switch
//! stops the new process and leaves the old one serving (`failed`); a failure in
//! `after_release` switches back to the old process, still running (`rolled_back`).

use std::time::Instant;

use crate::core::deploy::DeployStatus;
use crate::core::stage::StageName;
use crate::store::ProcessRecord;
use crate::supervisor::{Supervisor, SupervisorError};

use super::{Outcome2, Run, Stop, locked};
use crate::command_env::CommandEnv;

fn stop_from(e: SupervisorError) -> Stop {
    Stop::failed(e.to_string())
}

impl Run<'_> {
    /// start → health → switch → after_release (when `after_env` is given) → retire →
    /// cleanup, for `target`, a release already on disk.
    pub(super) async fn go_live_running(
        &self,
        target: &str,
        after_env: Option<CommandEnv>,
    ) -> Outcome2 {
        let supervisor = &self.ctx.supervisor;
        let (app, environment) = (&self.app.name, &self.deploy.environment);
        let old = supervisor.live(app, environment).await.map_err(stop_from)?;
        let previous_release = self.env_dir.live().map(|l| l.release);
        let candidate = self
            .stage(StageName::Start, async {
                let record = supervisor
                    .start(app, environment, &self.deploy.base_environment, target)
                    .await
                    .map_err(stop_from)?;
                self.info(
                    StageName::Start,
                    &format!(
                        "releases/{target}: pid {} on port {} (output: stagehand logs {app}/{environment} --app)",
                        record.pid.unwrap_or(0),
                        record.port
                    ),
                );
                Ok(record)
            })
            .await?;
        let healthy = self
            .stage(StageName::Health, async {
                let seen = supervisor
                    .wait_healthy(&candidate, self.env_config.health_check.as_ref())
                    .await
                    .map_err(|e| Stop::failed(format!("health check failed: {e}")))?;
                self.info(StageName::Health, &format!("healthy: {seen}"));
                Ok(())
            })
            .await;
        if let Err(stop) = healthy {
            self.discard(&candidate).await;
            return Err(stop);
        }
        let switched = self
            .stage(StageName::Switch, async {
                self.switch(target).await?;
                supervisor.make_live(&candidate).await.map_err(stop_from)?;
                self.info(
                    StageName::Switch,
                    &format!("route → 127.0.0.1:{}", candidate.port),
                );
                Ok(())
            })
            .await;
        if let Err(stop) = switched {
            if let Some(previous) = &previous_release {
                let _ = self.switch(previous).await;
            }
            if let Some(old) = &old {
                let _ = supervisor.make_live(old).await;
            }
            self.discard(&candidate).await;
            return Err(stop);
        }
        let switched_at = Instant::now();
        // From here on the target is live: it is no longer half-made.
        locked(&self.new_release).take();
        if let Some(after_env) = after_env {
            let after = self
                .stage(
                    StageName::AfterRelease,
                    self.commands(
                        StageName::AfterRelease,
                        &self.env_config.after_release,
                        &self.env_dir.releases().join(target),
                        &after_env,
                    ),
                )
                .await;
            if let Err(stop) = after {
                return self
                    .switch_back_running(previous_release, old, candidate, stop)
                    .await;
            }
        }
        if let Some(old) = &old {
            self.retire(old, switched_at).await;
        }
        self.stage(StageName::Cleanup, self.cleanup()).await.ok();
        Ok(None)
    }

    /// After `after_release` failed: back to the old process, which never stopped.
    async fn switch_back_running(
        &self,
        previous_release: Option<String>,
        old: Option<ProcessRecord>,
        candidate: ProcessRecord,
        stop: Stop,
    ) -> Outcome2 {
        if stop.status == DeployStatus::Cancelled {
            return Err(stop);
        }
        let old = old.filter(Supervisor::is_running);
        let (Some(previous), Some(old)) = (previous_release, old) else {
            return Err(Stop::failed(format!(
                "{}; there is no running previous process to go back to, so the new one stays live",
                stop.reason
            )));
        };
        self.stage(StageName::Switch, async {
            self.switch(&previous).await?;
            self.ctx
                .supervisor
                .make_live(&old)
                .await
                .map_err(stop_from)?;
            self.info(
                StageName::Switch,
                &format!("route → 127.0.0.1:{}", old.port),
            );
            Ok(())
        })
        .await?;
        self.retire(&candidate, Instant::now()).await;
        Ok(Some(Stop {
            status: DeployStatus::RolledBack,
            reason: format!("{}; switched back to {previous}", stop.reason),
        }))
    }

    /// The `retire` stage: the drain (`Supervisor::drain`: until the front door has
    /// nothing in flight to it, at most `drain_timeout`), then `stop_signal`, then
    /// SIGKILL after `stop_timeout`. A process that will not stop does not fail the
    /// deploy: the route already left it.
    async fn retire(&self, record: &ProcessRecord, switched_at: Instant) {
        let _ = self
            .stage(StageName::Retire, async {
                let drained = self
                    .ctx
                    .supervisor
                    .drain(record, switched_at, &|line| {
                        self.info(StageName::Retire, line)
                    })
                    .await;
                self.info(StageName::Retire, &drained.to_string());
                self.info(
                    StageName::Retire,
                    &format!(
                        "stopping pid {} (releases/{}, port {})",
                        record.pid.unwrap_or(0),
                        record.release,
                        record.port
                    ),
                );
                self.ctx
                    .supervisor
                    .stop_and_forget(record)
                    .await
                    .map_err(stop_from)
            })
            .await;
    }

    /// Stops a candidate nobody routes to (it failed, or the deploy stopped).
    async fn discard(&self, candidate: &ProcessRecord) {
        match self.ctx.supervisor.stop_and_forget(candidate).await {
            Ok(()) => self.info(
                StageName::Start,
                &format!(
                    "stopped the new process (pid {})",
                    candidate.pid.unwrap_or(0)
                ),
            ),
            Err(e) => self.info(
                StageName::Start,
                &format!(
                    "could not stop the new process (pid {}): {e}",
                    candidate.pid.unwrap_or(0)
                ),
            ),
        }
    }

    /// `stagehand restart` (and `start`): the live release's process again, blue/green.
    pub(super) async fn restart(&self) -> Outcome2 {
        if self.env_config.run.is_none() {
            return Err(Stop::failed(format!(
                "`{}` has no `run`: there is no process to restart",
                self.deploy.environment
            )));
        }
        let Some(live) = self.env_dir.live() else {
            return Err(Stop::failed("nothing is live yet: deploy first"));
        };
        let (id, r, c) = (self.deploy.id, live.release.clone(), live.commit.clone());
        self.ctx
            .store
            .run(move |s| s.set_release(id, &r, c.as_deref()))
            .await?;
        self.go_live_running(&live.release, None).await
    }
}

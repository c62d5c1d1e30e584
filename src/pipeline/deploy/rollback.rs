//! A rollback: `current` back to a release still on disk (the one asked for, else the
//! one before the live one), then `after_release` for it.

use crate::core::deploy::DeployStatus;
use crate::core::ids::CommitSha;
use crate::core::release::previous_release;
use crate::core::stage::StageName;
use crate::pipeline::releases;

use super::{Outcome2, Run, Stop, blocking};

impl Run<'_> {
    pub(super) async fn rollback(&self) -> Outcome2 {
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
        let revision = self.env_dir.revision(&target);
        let (id, r, c) = (self.deploy.id, target.clone(), revision.clone());
        self.ctx
            .store
            .run(move |s| s.set_release(id, &r, c.as_ref().map(CommitSha::as_str)))
            .await?;
        if let Some(commit) = &revision {
            self.report_started(commit);
        }
        let release_dir = self.env_dir.releases().join(&target);
        let env = self
            .command_env(revision.as_ref(), &target)
            .with_previous_release(live.as_deref());
        if self.env_config.run.is_some() {
            return self.go_live_running(&target, Some(env)).await;
        }
        self.stage(StageName::Switch, self.switch(&target)).await?;
        self.stage(
            StageName::AfterRelease,
            self.commands(
                StageName::AfterRelease,
                &self.env_config.after_release,
                &release_dir,
                &env,
            ),
        )
        .await?;
        Ok(None)
    }
}

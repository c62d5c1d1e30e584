//! A temporary environment's end: its `teardown = [commands]` (drop its database,
//! remove its DNS record) run in the live release with the usual `STAGEHAND_*`
//! variables, their output in the teardown deploy's log; then its processes stop and
//! its directory goes. A failing command is logged and the teardown goes on: a preview
//! that cannot clean up after itself must still not linger. Protected and configured
//! environments are never torn down.

use crate::core::ids::CommitSha;
use crate::core::stage::StageName;
use crate::pipeline::releases;

use super::{Result, Run, Stop, blocking};

impl Run<'_> {
    pub(super) async fn teardown(&self) -> Result<()> {
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
        self.stage(StageName::Teardown, async {
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
                self.info(
                    StageName::Teardown,
                    &format!("stopped {stopped} app process(es)"),
                );
            }
            let path = dir.clone();
            let spares = self.env_dir.releases();
            blocking(move || {
                // Nothing may write into the directory while it goes.
                crate::pipeline::recycle::stop_spare(&spares);
                releases::remove_tree(&path)
                    .map_err(|e| Stop::failed(format!("removing {}: {e}", path.display())))
            })
            .await?;
            self.info(StageName::Teardown, &format!("removed {}", dir.display()));
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

    async fn teardown_commands(&self) {
        let list = &self.env_config.teardown;
        if list.is_empty() {
            return;
        }
        let env_dir = self.env_dir.clone();
        let live = tokio::task::spawn_blocking(move || env_dir.live())
            .await
            .ok()
            .flatten();
        let Some(live) = live else {
            self.info(
                StageName::Teardown,
                "nothing is live: teardown commands skipped",
            );
            return;
        };
        let dir = self.env_dir.releases().join(&live.release);
        let commit = live
            .commit
            .as_deref()
            .and_then(|c| CommitSha::parse(c).ok());
        let env = self.command_env(commit.as_ref(), &live.release);
        for command in list {
            if let Err(stop) = self
                .commands(
                    StageName::Teardown,
                    std::slice::from_ref(command),
                    &dir,
                    &env,
                )
                .await
            {
                self.info(
                    StageName::Teardown,
                    &format!("{}; the teardown goes on", stop.reason),
                );
            }
        }
    }
}

//! `teardown = [commands]`: what a temporary environment runs on its way out (drop its
//! database, remove its DNS record), before its process stops and its directory goes.
//! They run in the live release with the usual `STAGEHAND_*` variables, their output
//! in the teardown deploy's log. A failing command is logged and the teardown goes on:
//! a preview that cannot clean up after itself must still not linger.

use super::Run;

impl Run<'_> {
    pub(super) async fn teardown_commands(&self) {
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
            self.info("teardown", "nothing is live: teardown commands skipped");
            return;
        };
        let dir = self.env_dir.releases().join(&live.release);
        let env = self.command_env(
            live.commit.as_deref().unwrap_or_default(),
            &live.release,
            &dir,
        );
        for command in list {
            if let Err(stop) = self
                .commands("teardown", std::slice::from_ref(command), &dir, &env)
                .await
            {
                self.info(
                    "teardown",
                    &format!("{}; the teardown goes on", stop.reason),
                );
            }
        }
    }
}

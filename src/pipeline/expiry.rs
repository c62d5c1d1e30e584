//! The expiry loop: every few seconds, each branch-pattern environment with
//! `expire_after` has its previews checked (`core::lifecycle::to_expire`) and the due
//! ones get an `expire` teardown queued, like a branch deletion would. Teardowns run
//! through the runner as any other deploy (teardown commands, process stop, directory).

use std::time::Duration;

use tokio::sync::watch;

use crate::core::lifecycle::to_expire;
use crate::core::time::Clock;
use crate::reload::LiveConfig;
use crate::store::Store;

use super::runner::Runner;

/// How often previews are checked: expiry is measured in hours or days, but a short
/// `expire_after` (tests, demos) should not wait long either.
const CHECK: Duration = Duration::from_secs(2);

pub async fn run(
    config: LiveConfig,
    store: Store,
    runner: Runner,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) {
    // Runs whether or not any environment expires now: a reload may add `expire_after`.
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK) => {}
            _ = shutdown.changed() => return,
        }
        // The config as of this check: a reload applies from the next one.
        let (config, store, now) = (config.get(), store.clone(), clock());
        let queued = store
            .run(move |store| {
                let mut queued = 0;
                for app in config.apps.values() {
                    for env in app.environments.values() {
                        let Some(after) = env.expire_after else { continue };
                        let previews = store.previews(&app.name, &env.name)?;
                        for name in to_expire(&previews, now, after) {
                            if let Some(deploy) = store.expire(&app.name, &name, now)? {
                                tracing::info!(app = %app.name, environment = %name, deploy = %deploy.id, "expired: teardown queued");
                                queued += 1;
                            }
                        }
                    }
                }
                Ok(queued)
            })
            .await;
        match queued {
            Ok(0) => {}
            Ok(_) => runner.wake(),
            Err(e) => tracing::warn!(error = %e, "checking previews for expiry"),
        }
    }
}

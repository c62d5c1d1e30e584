//! The expiry loop: every few seconds, each branch-pattern environment with
//! `expire_after` has its previews checked (`core::lifecycle::to_expire`) and the due
//! ones get an `expire` teardown queued, like a branch deletion would. Teardowns run
//! through the runner as any other deploy (teardown commands, process stop, directory).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::core::lifecycle::to_expire;
use crate::core::time::Clock;
use crate::store::Store;

use super::runner::Runner;

/// How often previews are checked: expiry is measured in hours or days, but a short
/// `expire_after` (tests, demos) should not wait long either.
const CHECK: Duration = Duration::from_secs(2);

pub async fn run(
    config: Arc<Config>,
    store: Store,
    runner: Runner,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) {
    let any = config
        .apps
        .values()
        .any(|a| a.environments.values().any(|e| e.expire_after.is_some()));
    if !any {
        return;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK) => {}
            _ = shutdown.changed() => return,
        }
        let (config, store, now) = (config.clone(), store.clone(), clock());
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

//! Pins: a pinned preview never expires (`expire_after`). Only temporary environments
//! are pinned: fixed ones never expire anyway (a conflict).

use super::{Ops, OpsError, addressed};
use crate::store::StoreError;

/// Pins or unpins a temporary environment.
pub async fn set_pin(ops: &Ops, app: String, env: String, pinned: bool) -> Result<(), OpsError> {
    let config = ops.config.get();
    let now = (ops.clock)();
    let changed = ops
        .store
        .run(move |store| {
            Ok::<_, StoreError>(
                addressed(store, &config, &app, &env)
                    .map(|a| store.set_pinned(&a.app.name, a.name(), pinned, now)),
            )
        })
        .await???;
    if !changed {
        return Err(OpsError::Conflict(
            "only temporary environments are pinned: fixed ones never expire".into(),
        ));
    }
    Ok(())
}

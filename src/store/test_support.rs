//! What the store's unit tests share: a store in a temporary directory, a delivery,
//! a push intent, a recorded deploy.

use super::{Intent, NewDelivery, NewDeploy, Recorded, Store, Target};
use crate::core::deploy::Trigger;
use crate::core::ids::{AppName, DeployId, EnvironmentName};
use crate::core::time::UnixMillis;

pub(super) fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("stagehand.db")).unwrap();
    (dir, store)
}

pub(super) fn delivery(id: &str, at: i64) -> NewDelivery {
    NewDelivery {
        app: AppName::parse("shop").unwrap(),
        delivery_id: id.into(),
        hook_id: "1".into(),
        event: "push".into(),
        received_at: UnixMillis(at),
    }
}

pub(super) fn push(env: &str) -> Intent {
    let target = Target::Fixed(EnvironmentName::parse(env).unwrap());
    Intent::Deploy(NewDeploy::queued(
        target,
        Trigger::Push,
        "refs/heads/develop".into(),
    ))
}

/// A push to `env` recorded from delivery `id`: the new deploy's id.
pub(super) fn pushed(store: &Store, id: &str, at: i64, env: &str) -> DeployId {
    match store.record_delivery(&delivery(id, at), push(env)).unwrap() {
        Recorded::Deploy { deploy, .. } => deploy.id,
        other => panic!("{other:?}"),
    }
}

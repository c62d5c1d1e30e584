//! The queue as the runner sees it: every queued deploy, moving one to `running` while
//! superseding the older ones it coalesced, and at start-up the deploys a previous
//! process left running (now `interrupted`). The rule choosing which deploy runs is
//! `core::deploy::next_to_run`; the loop is `pipeline::runner`.

use rusqlite::{TransactionBehavior, params};

use crate::core::deploy::{Deploy, Trigger};
use crate::core::ids::{AppName, DeployId, EnvironmentName};
use crate::core::time::UnixMillis;

use super::{Store, StoreError, deploys, stages};

/// A deploy the runner may start: its id, environment and trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedDeploy {
    pub id: DeployId,
    pub app: AppName,
    pub environment: EnvironmentName,
    pub trigger: Trigger,
}

impl Store {
    /// Every queued deploy, oldest first.
    pub fn queued(&self) -> Result<Vec<QueuedDeploy>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, app, environment, trigger FROM deploys WHERE status = 'queued' ORDER BY id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>("id")?,
                    r.get::<_, String>("app")?,
                    r.get::<_, String>("environment")?,
                    r.get::<_, String>("trigger")?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, app, environment, trigger)| {
                Ok(QueuedDeploy {
                    id: DeployId(id),
                    app: AppName::parse(&app)?,
                    environment: EnvironmentName::parse(&environment)?,
                    trigger: Trigger::parse(&trigger)
                        .ok_or_else(|| StoreError::Corrupt(format!("trigger {trigger:?}")))?,
                })
            })
            .collect()
    }

    /// Moves `id` from queued to running and marks `superseded` as superseded by it, in
    /// one transaction. `None` when `id` was no longer queued.
    pub fn start(
        &self,
        id: DeployId,
        superseded: &[DeployId],
        now: UnixMillis,
    ) -> Result<Option<Deploy>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let started = tx.prepare_cached("UPDATE deploys SET status = 'running', started_at = ?2 WHERE id = ?1 AND status = 'queued'")?.execute(params![id.0, now.0],
        )?;
        if started == 0 {
            return Ok(None);
        }
        for older in superseded {
            tx.prepare_cached(
                "UPDATE deploys SET status = 'superseded', reason = ?2, finished_at = ?3
                 WHERE id = ?1 AND status = 'queued'",
            )?
            .execute(params![
                older.0,
                format!("superseded by deploy {id}, a newer push to the same environment"),
                now.0
            ])?;
        }
        let deploy = deploys::load_deploy(&tx, id)?;
        tx.commit()?;
        Ok(deploy)
    }

    /// At start-up: deploys left `running` by a previous process become `interrupted`
    /// (and their open stages too). Returns them, so their half-made releases can go.
    pub fn interrupt_running(&self, now: UnixMillis) -> Result<Vec<Deploy>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids: Vec<DeployId> = tx
            .prepare("SELECT id FROM deploys WHERE status = 'running' ORDER BY id")?
            .query_map([], |r| r.get("id").map(DeployId))?
            .collect::<Result<_, _>>()?;
        stages::interrupt_open_stages(&tx)?;
        tx.prepare_cached(
            "UPDATE deploys SET status = 'interrupted', finished_at = ?1,
                    reason = 'the server stopped during this deploy' WHERE status = 'running'",
        )?
        .execute([now.0])?;
        let deploys = deploys::load_deploys(
            &tx,
            "WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id",
            [deploys::json_ids(&ids)],
        )?;
        tx.commit()?;
        Ok(deploys)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{pushed, store};
    use super::*;
    use crate::core::deploy::DeployStatus;
    use crate::core::stage::StageName;

    #[test]
    fn start_supersedes_and_interrupt_running_recovers() {
        let (_dir, store) = store();
        let ids: Vec<DeployId> = (0..3)
            .map(|i| pushed(&store, &format!("d{i}"), i, "staging"))
            .collect();
        let started = store
            .start(ids[2], &ids[..2], UnixMillis(10))
            .unwrap()
            .unwrap();
        assert_eq!(started.status, DeployStatus::Running);
        assert!(
            store.start(ids[2], &[], UnixMillis(11)).unwrap().is_none(),
            "not queued any more"
        );
        for older in &ids[..2] {
            let d = store.deploy(*older).unwrap().unwrap();
            assert_eq!(d.status, DeployStatus::Superseded);
            assert!(d.reason.unwrap().contains(&ids[2].to_string()));
        }
        assert!(store.queued().unwrap().is_empty());
        store
            .begin_stage(ids[2], StageName::Build, UnixMillis(12))
            .unwrap();
        let interrupted = store.interrupt_running(UnixMillis(20)).unwrap();
        assert_eq!(interrupted.len(), 1);
        assert_eq!(interrupted[0].status, DeployStatus::Interrupted);
        assert_eq!(interrupted[0].stages.len(), 1);
        assert_eq!(interrupted[0].stages[0].status, DeployStatus::Interrupted);
        assert!(store.interrupt_running(UnixMillis(21)).unwrap().is_empty());
    }
}

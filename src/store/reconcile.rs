//! What reconciliation (`pipeline::reconcile`) reads and writes: which environments
//! have work queued or running, what became of earlier deploys of a commit, the
//! refs the previous round saw, and queuing its deploys and teardowns.
//!
//! Queuing checks "nothing queued or running here" and inserts in one `BEGIN
//! IMMEDIATE` transaction, the same kind a delivery is recorded in: a push arriving
//! during a round either lands first (and the round leaves the environment alone) or
//! after (and coalesces with the round's deploy, newest wins).

use std::collections::{BTreeMap, HashSet};

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::deploys::{COMMIT_TRIGGERS, insert_deploy};
use super::temporary_environments::{name_of_branch, teardown};
use super::{NewDeploy, Recorded, Store, StoreError, Target};
use crate::core::deploy::{Deploy, DeployStatus};
use crate::core::ids::{AppName, EnvironmentName};
use crate::core::time::UnixMillis;

impl Store {
    /// Environments of `app` with a deploy queued or running.
    pub fn busy_environments(&self, app: &AppName) -> Result<HashSet<EnvironmentName>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT environment FROM deploys
             WHERE app = ?1 AND status IN ('queued', 'waiting', 'running')",
        )?;
        let names = stmt
            .query_map([app.as_str()], |r| r.get::<_, String>("environment"))?
            .collect::<Result<Vec<_>, _>>()?;
        names
            .iter()
            .map(|n| Ok(EnvironmentName::parse(n)?))
            .collect()
    }

    /// The status of the newest deploy of `commit` into `environment`, if there was one.
    pub fn last_outcome_of_commit(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
        commit: &str,
    ) -> Result<Option<DeployStatus>, StoreError> {
        let status: Option<String> = self
            .lock()
            .prepare_cached(&format!(
                "SELECT status FROM deploys WHERE app = ?1 AND environment = ?2 AND commit_sha = ?3
                   AND trigger IN ({})
                 ORDER BY id DESC LIMIT 1",
                *COMMIT_TRIGGERS
            ))?
            .query_row(params![app.as_str(), environment.as_str(), commit], |r| {
                r.get("status")
            })
            .optional()?;
        status
            .map(|s| {
                DeployStatus::parse(&s)
                    .ok_or_else(|| StoreError::Corrupt(format!("deploy status {s:?}")))
            })
            .transpose()
    }

    /// Queues `new` unless its environment already has a deploy queued or running
    /// (then `None`). A `Target::Temporary` whose branch has no environment yet gets
    /// one, as its first push would.
    pub fn queue_unless_busy(
        &self,
        app: &AppName,
        new: NewDeploy,
        now: UnixMillis,
    ) -> Result<Option<Deploy>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let environment = match &new.target {
            Target::Fixed(name) => Some(name.to_string()),
            Target::Instance { name, .. } => {
                // Torn down since the round listed it: a deploy now would bring back a
                // directory no listing shows.
                if !temporary_exists(&tx, app, name)? {
                    return Ok(None);
                }
                Some(name.to_string())
            }
            Target::Temporary { branch, .. } => name_of_branch(&tx, app, branch)?,
        };
        if let Some(environment) = environment
            && is_busy(&tx, app, &environment)?
        {
            return Ok(None);
        }
        // `max_environments` holds for previews reconciliation finds as for pushed ones.
        if let Some(reason) = super::lifecycle::over_limit(&tx, app, &new.target)? {
            tracing::info!(%app, %reason, "reconciliation made no new preview");
            return Ok(None);
        }
        let deploy = insert_deploy(&tx, app, new, now)?;
        tx.commit()?;
        Ok(Some(deploy))
    }

    /// Queues the teardown of `branch`'s temporary environment, as a deletion would,
    /// unless that environment has a deploy (or teardown) queued or running.
    pub fn queue_teardown_unless_busy(
        &self,
        app: &AppName,
        base: &EnvironmentName,
        branch: &str,
        now: UnixMillis,
    ) -> Result<Option<Deploy>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        match name_of_branch(&tx, app, branch)? {
            None => return Ok(None),
            Some(name) if is_busy(&tx, app, &name)? => return Ok(None),
            Some(_) => {}
        }
        let git_ref = format!("refs/heads/{branch}");
        let recorded = teardown(&tx, app, base, branch, git_ref, now)?;
        tx.commit()?;
        Ok(match recorded {
            Recorded::Deploy { deploy, .. } => Some(*deploy),
            Recorded::Ping { .. } | Recorded::Ignored { .. } => None,
        })
    }

    /// The refs (full ref → commit) `app`'s previous round remembered; `None` before
    /// its first round.
    pub fn seen_refs(&self, app: &AppName) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        let conn = self.lock();
        let had_round = conn
            .prepare_cached("SELECT 1 FROM reconcile_rounds WHERE app = ?1")?
            .exists([app.as_str()])?;
        if !had_round {
            return Ok(None);
        }
        let mut stmt =
            conn.prepare_cached("SELECT ref, commit_sha FROM reconcile_refs WHERE app = ?1")?;
        let rows = stmt
            .query_map([app.as_str()], |r| {
                Ok((r.get("ref")?, r.get("commit_sha")?))
            })?
            .collect::<Result<BTreeMap<String, String>, _>>()?;
        Ok(Some(rows))
    }

    /// Replaces what [`Store::seen_refs`] returns for `app`.
    pub fn record_round(
        &self,
        app: &AppName,
        refs: &BTreeMap<String, String>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached("DELETE FROM reconcile_refs WHERE app = ?1")?
            .execute([app.as_str()])?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO reconcile_refs (app, ref, commit_sha) VALUES (?1, ?2, ?3)",
            )?;
            for (git_ref, commit) in refs {
                insert.execute(params![app.as_str(), git_ref, commit])?;
            }
        }
        tx.prepare_cached(
            "INSERT INTO reconcile_rounds (app, recorded_at) VALUES (?1, ?2)
             ON CONFLICT (app) DO UPDATE SET recorded_at = excluded.recorded_at",
        )?
        .execute(params![app.as_str(), now.0])?;
        tx.commit()?;
        Ok(())
    }
}

fn temporary_exists(
    tx: &Transaction<'_>,
    app: &AppName,
    name: &EnvironmentName,
) -> Result<bool, StoreError> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM temporary_environments WHERE app = ?1 AND name = ?2")?
        .exists(params![app.as_str(), name.as_str()])?)
}

fn is_busy(tx: &Transaction<'_>, app: &AppName, environment: &str) -> Result<bool, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT 1 FROM deploys WHERE app = ?1 AND environment = ?2
               AND status IN ('queued', 'waiting', 'running')",
        )?
        .exists(params![app.as_str(), environment])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::deploy::Trigger;

    fn env(name: &str) -> EnvironmentName {
        EnvironmentName::parse(name).unwrap()
    }

    #[test]
    fn queues_only_where_nothing_waits_and_remembers_rounds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("stagehand.db")).unwrap();
        let app = AppName::parse("shop").unwrap();
        let reconcile = |target: Target| NewDeploy {
            commit: Some("a".repeat(40)),
            ..NewDeploy::queued(target, Trigger::Reconcile, "refs/heads/develop".into())
        };
        let first = store
            .queue_unless_busy(
                &app,
                reconcile(Target::Fixed(env("staging"))),
                UnixMillis(1),
            )
            .unwrap();
        assert!(first.is_some());
        assert!(
            store
                .queue_unless_busy(
                    &app,
                    reconcile(Target::Fixed(env("staging"))),
                    UnixMillis(2)
                )
                .unwrap()
                .is_none(),
            "a queued deploy makes the environment busy"
        );
        assert_eq!(
            store.busy_environments(&app).unwrap(),
            HashSet::from([env("staging")])
        );
        assert_eq!(
            store
                .last_outcome_of_commit(&app, &env("staging"), &"a".repeat(40))
                .unwrap(),
            Some(DeployStatus::Queued)
        );
        assert_eq!(
            store
                .last_outcome_of_commit(&app, &env("staging"), &"b".repeat(40))
                .unwrap(),
            None
        );

        let temporary = Target::Temporary {
            base: env("preview"),
            branch: "feature/a".into(),
            reserved: vec![],
            limit: None,
        };
        let made = store
            .queue_unless_busy(&app, reconcile(temporary), UnixMillis(3))
            .unwrap()
            .unwrap();
        assert_eq!(made.environment.as_str(), "preview-feature-a");
        assert!(
            store
                .queue_teardown_unless_busy(&app, &env("preview"), "feature/a", UnixMillis(4))
                .unwrap()
                .is_none(),
            "no teardown while its deploy waits"
        );
        assert!(
            store
                .queue_teardown_unless_busy(&app, &env("preview"), "feature/none", UnixMillis(4))
                .unwrap()
                .is_none()
        );
        let gone = Target::Instance {
            name: env("preview-feature-gone"),
            base: env("preview"),
        };
        assert!(
            store
                .queue_unless_busy(&app, reconcile(gone), UnixMillis(4))
                .unwrap()
                .is_none(),
            "a temporary environment torn down meanwhile gets no deploy"
        );

        assert_eq!(store.seen_refs(&app).unwrap(), None);
        let seen = BTreeMap::from([("refs/heads/feature/a".to_string(), "a".repeat(40))]);
        store.record_round(&app, &seen, UnixMillis(5)).unwrap();
        assert_eq!(store.seen_refs(&app).unwrap(), Some(seen));
        store
            .record_round(&app, &BTreeMap::new(), UnixMillis(6))
            .unwrap();
        assert_eq!(store.seen_refs(&app).unwrap(), Some(BTreeMap::new()));
    }
}

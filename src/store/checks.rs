//! `require_checks`: the check results forges reported per commit, and the moves of a
//! deploy through `waiting` (held, released back to the queue, ended). The rule that
//! decides between them is `core::checks`; the loop that applies it is
//! `pipeline::checks_gate`.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::core::checks::{CheckResult, CheckState};
use crate::core::deploy::{Deploy, DeployStatus, ReasonCode};
use crate::core::ids::{AppName, DeployId, EnvironmentName};
use crate::core::time::UnixMillis;

use super::deploys::{self, COMMIT_TRIGGERS, load_deploy};
use super::{Store, StoreError};

impl Store {
    /// Keeps the latest state per (commit, name); a re-run replaces the earlier result.
    pub fn record_check_results(
        &self,
        app: &AppName,
        results: &[CheckResult],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for r in results {
            tx.prepare_cached(
                "INSERT INTO check_results (app, commit_sha, name, state, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (app, commit_sha, name) DO UPDATE SET state = ?4, updated_at = ?5",
            )?
            .execute(params![
                app.as_str(),
                r.commit,
                r.name,
                r.state.as_str(),
                now.0
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// One commit's results, oldest report first.
    pub fn check_results(
        &self,
        app: &AppName,
        commit: &str,
    ) -> Result<Vec<CheckResult>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT name, state FROM check_results WHERE app = ?1 AND commit_sha = ?2
             ORDER BY updated_at, rowid",
        )?;
        let rows = stmt
            .query_map(params![app.as_str(), commit], |r| {
                Ok((r.get::<_, String>("name")?, r.get::<_, String>("state")?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(name, state)| {
                Ok(CheckResult {
                    commit: commit.to_owned(),
                    name,
                    state: CheckState::parse(&state)
                        .ok_or_else(|| StoreError::Corrupt(format!("check state {state:?}")))?,
                })
            })
            .collect()
    }

    /// A queued deploy's base environment and whether its checks already passed.
    pub fn checks_facts(
        &self,
        id: DeployId,
    ) -> Result<Option<(EnvironmentName, bool)>, StoreError> {
        let conn = self.lock();
        let row = conn
            .prepare_cached("SELECT base_environment, checks_passed FROM deploys WHERE id = ?1")?
            .query_row([id.0], |r| {
                Ok((
                    r.get::<_, String>("base_environment")?,
                    r.get::<_, i64>("checks_passed")?,
                ))
            })
            .optional()?;
        row.map(|(base, passed)| Ok((EnvironmentName::parse(&base)?, passed != 0)))
            .transpose()
    }

    /// Moves `id` from queued to waiting, superseding `superseded` (older queued ones
    /// the runner coalesced into it) and older deploys of the same environment already
    /// waiting: a newer push makes them pointless. `None` when `id` was no longer queued.
    pub fn hold_for_checks(
        &self,
        id: DeployId,
        superseded: &[DeployId],
        now: UnixMillis,
    ) -> Result<Option<Deploy>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let held = tx
            .prepare_cached(
                "UPDATE deploys SET status = 'waiting' WHERE id = ?1 AND status = 'queued'",
            )?
            .execute([id.0])?;
        if held == 0 {
            return Ok(None);
        }
        let reason = format!("superseded by deploy {id}, a newer push to the same environment");
        for older in superseded {
            tx.prepare_cached(
                "UPDATE deploys SET status = 'superseded', reason = ?2, finished_at = ?3
                 WHERE id = ?1 AND status = 'queued'",
            )?
            .execute(params![older.0, reason, now.0])?;
        }
        tx.prepare_cached(
            "UPDATE deploys SET status = 'superseded', reason = ?2, finished_at = ?3
             WHERE status = 'waiting' AND id < ?1
               AND (app, environment) = (SELECT app, environment FROM deploys WHERE id = ?1)",
        )?
        .execute(params![id.0, reason, now.0])?;
        let deploy = load_deploy(&tx, id)?;
        tx.commit()?;
        Ok(deploy)
    }

    /// Every waiting deploy, oldest first.
    pub fn waiting(&self) -> Result<Vec<Deploy>, StoreError> {
        deploys::load_deploys(&self.lock(), "WHERE status = 'waiting' ORDER BY id", [])
    }

    /// Its checks passed: back to the queue, marked so the runner starts it. If a newer
    /// deploy of a commit came for the environment meanwhile (a manual one, say), this
    /// one is superseded instead. The new status, `None` when it was no longer waiting.
    pub fn release_checked(
        &self,
        id: DeployId,
        now: UnixMillis,
    ) -> Result<Option<DeployStatus>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let newer: Option<i64> = tx
            .prepare_cached(&format!(
                "SELECT n.id FROM deploys n JOIN deploys d ON d.id = ?1
                 WHERE n.app = d.app AND n.environment = d.environment AND n.id > d.id
                   AND n.trigger IN ({})
                 ORDER BY n.id LIMIT 1",
                *COMMIT_TRIGGERS
            ))?
            .query_row([id.0], |r| r.get("id"))
            .optional()?;
        let (status, changed) = match newer {
            Some(newer) => (
                DeployStatus::Superseded,
                tx.prepare_cached(
                    "UPDATE deploys SET status = 'superseded', reason = ?2, finished_at = ?3
                     WHERE id = ?1 AND status = 'waiting'",
                )?
                .execute(params![
                    id.0,
                    format!("superseded by deploy {newer}, a newer deploy of the same environment"),
                    now.0
                ])?,
            ),
            None => (
                DeployStatus::Queued,
                tx.prepare_cached(
                    "UPDATE deploys SET status = 'queued', checks_passed = 1
                     WHERE id = ?1 AND status = 'waiting'",
                )?
                .execute([id.0])?,
            ),
        };
        tx.commit()?;
        Ok((changed > 0).then_some(status))
    }

    /// Ends a deploy that has not started (`queued` or `waiting`): skipped by the gate,
    /// or cancelled by a person. The deploy as it is afterwards (`None`: unknown id);
    /// one that had started already is returned unchanged.
    pub fn end_unstarted(
        &self,
        id: DeployId,
        status: DeployStatus,
        reason: &str,
        reason_code: Option<ReasonCode>,
        now: UnixMillis,
    ) -> Result<Option<Deploy>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(
            "UPDATE deploys SET status = ?2, reason = ?3, finished_at = ?4, reason_code = ?5
             WHERE id = ?1 AND status IN ('queued', 'waiting')",
        )?
        .execute(params![
            id.0,
            status.as_str(),
            reason,
            now.0,
            reason_code.map(ReasonCode::as_str)
        ])?;
        let deploy = load_deploy(&tx, id)?;
        tx.commit()?;
        Ok(deploy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::deploy::Trigger;
    use crate::store::{NewDeploy, Target};

    fn deploy(store: &Store, trigger: Trigger) -> DeployId {
        let target = Target::Fixed(EnvironmentName::parse("staging").unwrap());
        let mut new = NewDeploy::queued(target, trigger, "refs/heads/develop".into());
        new.commit = Some("c".repeat(40));
        let app = AppName::parse("shop").unwrap();
        store.create_deploy(&app, new, UnixMillis(1)).unwrap().id
    }

    fn status(store: &Store, id: DeployId) -> DeployStatus {
        store.deploy(id).unwrap().unwrap().status
    }

    #[test]
    fn waiting_moves() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("stagehand.db")).unwrap();
        let now = UnixMillis(2);

        // Held: older queued ones it coalesced and older waiting ones are superseded.
        let (a, b) = (deploy(&store, Trigger::Push), deploy(&store, Trigger::Push));
        assert!(store.hold_for_checks(a, &[], now).unwrap().is_some());
        let c = deploy(&store, Trigger::Push);
        assert!(store.hold_for_checks(c, &[b], now).unwrap().is_some());
        assert_eq!(
            [status(&store, a), status(&store, b), status(&store, c)],
            [
                DeployStatus::Superseded,
                DeployStatus::Superseded,
                DeployStatus::Waiting
            ]
        );
        assert_eq!(store.checks_facts(c).unwrap().map(|(_, p)| p), Some(false));
        assert!(
            store.hold_for_checks(a, &[], now).unwrap().is_none(),
            "not queued"
        );

        // Released: queued again, marked passed, so the runner does not hold it twice.
        assert_eq!(
            store.release_checked(c, now).unwrap(),
            Some(DeployStatus::Queued)
        );
        assert_eq!(store.checks_facts(c).unwrap().map(|(_, p)| p), Some(true));
        assert_eq!(
            store.release_checked(c, now).unwrap(),
            None,
            "no longer waiting"
        );

        // A manual deploy queued while one waits: the waiting one is superseded on release.
        let d = deploy(&store, Trigger::Push);
        assert!(store.hold_for_checks(d, &[], now).unwrap().is_some());
        deploy(&store, Trigger::Manual);
        assert_eq!(
            store.release_checked(d, now).unwrap(),
            Some(DeployStatus::Superseded)
        );

        // Ended before it started; a running one is left alone.
        let e = deploy(&store, Trigger::Push);
        store.hold_for_checks(e, &[], now).unwrap();
        let ended = store
            .end_unstarted(
                e,
                DeployStatus::Skipped,
                "required check `ci` failed",
                None,
                now,
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            (ended.status, ended.reason.as_deref()),
            (DeployStatus::Skipped, Some("required check `ci` failed"))
        );
        let f = deploy(&store, Trigger::Manual);
        store.start(f, &[], now).unwrap();
        let after = store
            .end_unstarted(f, DeployStatus::Cancelled, "x", None, now)
            .unwrap()
            .unwrap();
        assert_eq!(after.status, DeployStatus::Running);
    }

    #[test]
    fn the_latest_result_per_name_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("stagehand.db")).unwrap();
        let app = AppName::parse("shop").unwrap();
        let result = |name: &str, state| CheckResult {
            commit: "abc".into(),
            name: name.into(),
            state,
        };
        store
            .record_check_results(
                &app,
                &[
                    result("ci", CheckState::Failure),
                    result("lint", CheckState::Success),
                ],
                UnixMillis(1),
            )
            .unwrap();
        store
            .record_check_results(&app, &[result("ci", CheckState::Success)], UnixMillis(2))
            .unwrap();
        let seen = store.check_results(&app, "abc").unwrap();
        assert_eq!(
            seen,
            [
                result("lint", CheckState::Success),
                result("ci", CheckState::Success)
            ]
        );
        assert!(store.check_results(&app, "other").unwrap().is_empty());
    }
}

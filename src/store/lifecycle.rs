//! Previews' lifecycle in the store: pins (`pinned_environments`), what the expiry
//! needs to know of each temporary environment, and queueing an `expire` teardown.

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use crate::core::deploy::{Deploy, Trigger};
use crate::core::ids::{AppName, EnvironmentName};
use crate::core::lifecycle::{Preview, limit_reached};
use crate::core::time::UnixMillis;

use super::deploys::insert_deploy;
use super::temporary_environments::name_of_branch;
use super::{NewDeploy, Store, StoreError, Target};

impl Store {
    /// Pins (or unpins) an environment; `false` when `environment` is no temporary
    /// environment of `app` (only those expire, so only those are pinned).
    pub fn set_pinned(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
        pinned: bool,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let conn = self.lock();
        let exists = conn
            .prepare_cached("SELECT 1 FROM temporary_environments WHERE app = ?1 AND name = ?2")?
            .exists(params![app.as_str(), environment.as_str()])?;
        if !exists {
            return Ok(false);
        }
        if pinned {
            conn.execute(
                "INSERT OR IGNORE INTO pinned_environments (app, environment, pinned_at) VALUES (?1, ?2, ?3)",
                params![app.as_str(), environment.as_str(), now.0],
            )?;
        } else {
            conn.execute(
                "DELETE FROM pinned_environments WHERE app = ?1 AND environment = ?2",
                params![app.as_str(), environment.as_str()],
            )?;
        }
        Ok(true)
    }

    pub fn is_pinned(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
    ) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .prepare_cached(
                "SELECT 1 FROM pinned_environments WHERE app = ?1 AND environment = ?2",
            )?
            .exists(params![app.as_str(), environment.as_str()])?)
    }

    /// The temporary environments made from `base`, as the expiry sees them.
    pub fn previews(
        &self,
        app: &AppName,
        base: &EnvironmentName,
    ) -> Result<Vec<Preview>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT t.name AS name,
                    COALESCE((SELECT MAX(d.created_at) FROM deploys d
                              WHERE d.app = t.app AND d.environment = t.name), t.created_at)
                      AS last_activity,
                    EXISTS (SELECT 1 FROM pinned_environments p
                            WHERE p.app = t.app AND p.environment = t.name) AS pinned,
                    EXISTS (SELECT 1 FROM deploys d WHERE d.app = t.app AND d.environment = t.name
                            AND d.status IN ('queued', 'running')) AS busy
               FROM temporary_environments t WHERE t.app = ?1 AND t.base = ?2 ORDER BY t.name",
        )?;
        let rows = stmt.query_map(params![app.as_str(), base.as_str()], |r| {
            Ok((
                r.get::<_, String>("name")?,
                r.get::<_, i64>("last_activity")?,
                r.get::<_, bool>("pinned")?,
                r.get::<_, bool>("busy")?,
            ))
        })?;
        let mut previews = Vec::new();
        for row in rows {
            let (name, last, pinned, busy) = row?;
            previews.push(Preview {
                name: EnvironmentName::parse(&name)?,
                last_activity: UnixMillis(last),
                pinned,
                busy,
            });
        }
        Ok(previews)
    }

    /// Queues the `expire` teardown of a temporary environment, checking again inside
    /// the transaction that it still exists, is not pinned and has nothing queued or
    /// running (a push may have come in since the expiry looked).
    pub fn expire(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
        now: UnixMillis,
    ) -> Result<Option<Deploy>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row: Option<(String, String)> = tx
            .prepare_cached(
                "SELECT t.base AS base, t.branch AS branch FROM temporary_environments t
                  WHERE t.app = ?1 AND t.name = ?2
                    AND NOT EXISTS (SELECT 1 FROM pinned_environments p
                                    WHERE p.app = t.app AND p.environment = t.name)
                    AND NOT EXISTS (SELECT 1 FROM deploys d WHERE d.app = t.app AND d.environment = t.name
                                    AND d.status IN ('queued', 'running'))",
            )?
            .query_row(params![app.as_str(), environment.as_str()], |r| {
                Ok((r.get("base")?, r.get("branch")?))
            })
            .optional()?;
        let Some((base, branch)) = row else {
            return Ok(None);
        };
        let target = Target::Instance {
            name: environment.clone(),
            base: EnvironmentName::parse(&base)?,
        };
        let new = NewDeploy::queued(target, Trigger::Expire, format!("refs/heads/{branch}"));
        let deploy = insert_deploy(&tx, app, new, now)?;
        tx.execute(
            "DELETE FROM pinned_environments WHERE app = ?1 AND environment = ?2",
            params![app.as_str(), environment.as_str()],
        )?;
        tx.commit()?;
        Ok(Some(deploy))
    }
}

/// Why a push must not make a new preview (`max_environments` reached), checked in the
/// delivery's own transaction so two pushes cannot both take the last place.
pub(super) fn over_limit(
    tx: &Transaction<'_>,
    app: &AppName,
    target: &Target,
) -> Result<Option<String>, StoreError> {
    let Target::Temporary {
        base,
        branch,
        limit: Some(limit),
        ..
    } = target
    else {
        return Ok(None);
    };
    if name_of_branch(tx, app, branch)?.is_some() {
        return Ok(None);
    }
    let count: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) AS n FROM temporary_environments WHERE app = ?1 AND base = ?2",
        )?
        .query_row(params![app.as_str(), base.as_str()], |r| r.get("n"))?;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    Ok(limit_reached(count, *limit).then(|| {
        format!(
            "limit of {limit} previews reached for `{base}` (max_environments): branch {branch:?} gets none until one is torn down or expires"
        )
    }))
}

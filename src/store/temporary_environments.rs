//! Temporary environments: one per branch of a pattern environment, made on the
//! branch's first push (named by `core::routing::new_temporary_name`), listed, torn down
//! by a `teardown` deploy and then forgotten. Pins and expiry are `lifecycle.rs`.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::core::deploy::Trigger;
use crate::core::ids::{AppName, EnvironmentName};
use crate::core::routing::new_temporary_name;
use crate::core::time::UnixMillis;

use super::{NewDeploy, Recorded, Store, StoreError, Target, deploys};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporaryEnvironment {
    pub name: EnvironmentName,
    pub base: EnvironmentName,
    pub branch: String,
}

impl Store {
    pub fn temporary_environments(
        &self,
        app: &AppName,
    ) -> Result<Vec<TemporaryEnvironment>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT name, base, branch FROM temporary_environments WHERE app = ?1 ORDER BY name",
        )?;
        let rows = stmt
            .query_map([app.as_str()], |r| {
                Ok((
                    r.get::<_, String>("name")?,
                    r.get::<_, String>("base")?,
                    r.get::<_, String>("branch")?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(name, base, branch)| {
                Ok(TemporaryEnvironment {
                    name: EnvironmentName::parse(&name)?,
                    base: EnvironmentName::parse(&base)?,
                    branch,
                })
            })
            .collect()
    }

    /// Forgets a torn-down temporary environment (its deploys stay as history).
    pub fn remove_temporary_environment(
        &self,
        app: &AppName,
        name: &EnvironmentName,
    ) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "DELETE FROM temporary_environments WHERE app = ?1 AND name = ?2",
            params![app.as_str(), name.as_str()],
        )?;
        // A branch made again later is a new preview: it does not inherit the pin.
        conn.execute(
            "DELETE FROM pinned_environments WHERE app = ?1 AND environment = ?2",
            params![app.as_str(), name.as_str()],
        )?;
        Ok(())
    }
}

/// The name of `branch`'s temporary environment, if it has one.
pub(super) fn name_of_branch(
    conn: &Connection,
    app: &AppName,
    branch: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT name FROM temporary_environments WHERE app = ?1 AND branch = ?2")?
        .query_row(params![app.as_str(), branch], |r| r.get("name"))
        .optional()?)
}

/// The temporary environment of `branch`, made on its first push.
pub(super) fn find_or_make(
    tx: &Transaction<'_>,
    app: &AppName,
    base: &EnvironmentName,
    branch: &str,
    reserved: &[String],
    now: UnixMillis,
) -> Result<EnvironmentName, StoreError> {
    if let Some(name) = name_of_branch(tx, app, branch)? {
        return Ok(EnvironmentName::parse(&name)?);
    }
    let mut taken =
        tx.prepare_cached("SELECT 1 FROM temporary_environments WHERE app = ?1 AND name = ?2")?;
    let name = new_temporary_name(base, branch, |candidate| {
        reserved.iter().any(|r| r == candidate)
            || taken
                .exists(params![app.as_str(), candidate])
                .unwrap_or(true)
    })?;
    tx.prepare_cached("INSERT INTO temporary_environments (app, name, base, branch, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![app.as_str(), name.as_str(), base.as_str(), branch, now.0],
    )?;
    Ok(name)
}

/// A teardown for `branch`'s temporary environment; one already waiting or running is
/// reused, so the `push` (deleted) and `delete` events of one deletion tear down once.
pub(super) fn teardown(
    tx: &Transaction<'_>,
    app: &AppName,
    base: &EnvironmentName,
    branch: &str,
    git_ref: String,
    now: UnixMillis,
) -> Result<Recorded, StoreError> {
    let Some(name) = name_of_branch(tx, app, branch)? else {
        return Ok(Recorded::Ignored {
            reason: format!(
                "branch {branch:?} has no temporary environment (never deployed, or already torn down)"
            ),
            duplicate: false,
        });
    };
    let mut pending = deploys::load_deploys(
        tx,
        "WHERE app = ?1 AND environment = ?2 AND trigger = ?3
           AND status IN ('queued', 'running') ORDER BY id LIMIT 1",
        params![app.as_str(), name, Trigger::Teardown.as_str()],
    )?;
    if let Some(deploy) = pending.pop() {
        return Ok(Recorded::Deploy {
            deploy: Box::new(deploy),
            duplicate: false,
        });
    }
    let target = Target::Instance {
        name: EnvironmentName::parse(&name)?,
        base: base.clone(),
    };
    let new = NewDeploy::queued(target, Trigger::Teardown, git_ref);
    let deploy = deploys::insert_deploy(tx, app, new, now)?;
    Ok(Recorded::Deploy {
        deploy: Box::new(deploy),
        duplicate: false,
    })
}

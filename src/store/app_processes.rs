//! The `processes` table: every app process stagehand started and has not finished
//! stopping, with what identifies it across restarts of stagehand (pid + start time),
//! its port, release, role and state. The supervisor is its only writer.
//!
//! Invariant: at most one `live` row per environment (a partial unique index), and a
//! switch moves the roles of the old and new rows in one transaction, so the route a
//! reader finds is always one process.

use rusqlite::{OptionalExtension, Row, params};

use crate::core::app_process::{ProcessState, Role};
use crate::core::ids::{AppName, EnvironmentName};
use crate::core::time::UnixMillis;

use super::{Store, StoreError};

/// One recorded process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRecord {
    pub id: i64,
    pub app: AppName,
    pub environment: EnvironmentName,
    /// The configured environment (`preview` for `preview-feature-x`).
    pub base_environment: EnvironmentName,
    pub role: Role,
    pub state: ProcessState,
    pub release: String,
    /// `None` while stopped or between a crash and its restart.
    pub pid: Option<i32>,
    pub start_ticks: Option<u64>,
    pub port: u16,
    pub restarts: u32,
    pub started_at: Option<UnixMillis>,
}

/// A process just spawned for a deploy, rollback or restart: recorded as a candidate.
#[derive(Debug, Clone)]
pub struct NewProcess {
    pub app: AppName,
    pub environment: EnvironmentName,
    pub base_environment: EnvironmentName,
    pub release: String,
    pub pid: i32,
    pub start_ticks: u64,
    pub port: u16,
    pub started_at: UnixMillis,
}

/// A live process started again by the supervisor.
#[derive(Debug, Clone, Copy)]
pub struct Respawned {
    pub pid: i32,
    pub start_ticks: u64,
    pub port: u16,
    /// The new total for the record.
    pub restarts: u32,
    pub at: UnixMillis,
}

const COLUMNS: &str = "id, app, environment, base_environment, role, state, release, pid, start_ticks, port, restarts, started_at";

fn record(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        id: row.get("id")?,
        app: row.get("app")?,
        environment: row.get("environment")?,
        base_environment: row.get("base_environment")?,
        role: row.get("role")?,
        state: row.get("state")?,
        release: row.get("release")?,
        pid: row.get("pid")?,
        start_ticks: row.get("start_ticks")?,
        port: row.get("port")?,
        restarts: row.get("restarts")?,
        started_at: row.get("started_at")?,
    })
}

struct RawRecord {
    id: i64,
    app: String,
    environment: String,
    base_environment: String,
    role: String,
    state: String,
    release: String,
    pid: Option<i32>,
    start_ticks: Option<i64>,
    port: i64,
    restarts: i64,
    started_at: Option<i64>,
}

impl RawRecord {
    fn parse(self) -> Result<ProcessRecord, StoreError> {
        let corrupt = |what: &str, value: &str| {
            StoreError::Corrupt(format!("process {}: {what} {value:?}", self.id))
        };
        Ok(ProcessRecord {
            id: self.id,
            app: AppName::parse(&self.app)?,
            environment: EnvironmentName::parse(&self.environment)?,
            base_environment: EnvironmentName::parse(&self.base_environment)?,
            role: Role::parse(&self.role).ok_or_else(|| corrupt("role", &self.role))?,
            state: ProcessState::parse(&self.state).ok_or_else(|| corrupt("state", &self.state))?,
            release: self.release.clone(),
            pid: self.pid,
            start_ticks: self.start_ticks.map(|t| t as u64),
            port: u16::try_from(self.port).map_err(|_| corrupt("port", &self.port.to_string()))?,
            restarts: u32::try_from(self.restarts).unwrap_or(u32::MAX),
            started_at: self.started_at.map(UnixMillis),
        })
    }
}

impl Store {
    fn query_processes(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<ProcessRecord>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM processes {filter} ORDER BY id"
        ))?;
        let rows = stmt
            .query_map(args, record)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(RawRecord::parse).collect()
    }

    /// Every recorded process, oldest first.
    pub fn processes(&self) -> Result<Vec<ProcessRecord>, StoreError> {
        self.query_processes("", &[])
    }

    /// An environment's processes (live, candidates, retiring).
    pub fn processes_of(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
    ) -> Result<Vec<ProcessRecord>, StoreError> {
        self.query_processes(
            "WHERE app = ?1 AND environment = ?2",
            &[&app.as_str(), &environment.as_str()],
        )
    }

    pub fn live_process(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
    ) -> Result<Option<ProcessRecord>, StoreError> {
        Ok(self
            .query_processes(
                "WHERE app = ?1 AND environment = ?2 AND role = 'live'",
                &[&app.as_str(), &environment.as_str()],
            )?
            .pop())
    }

    pub fn process(&self, id: i64) -> Result<Option<ProcessRecord>, StoreError> {
        Ok(self.query_processes("WHERE id = ?1", &[&id])?.pop())
    }

    /// Records a spawned process as a `starting` candidate; returns its record.
    pub fn insert_process(&self, new: &NewProcess) -> Result<ProcessRecord, StoreError> {
        let id = {
            let conn = self.lock();
            conn.execute(
                "INSERT INTO processes (app, environment, base_environment, role, state, release, pid, start_ticks, port, restarts, started_at)
                 VALUES (?1, ?2, ?3, 'candidate', 'starting', ?4, ?5, ?6, ?7, 0, ?8)",
                params![
                    new.app.as_str(),
                    new.environment.as_str(),
                    new.base_environment.as_str(),
                    new.release,
                    new.pid,
                    new.start_ticks as i64,
                    i64::from(new.port),
                    new.started_at.0
                ],
            )?;
            conn.last_insert_rowid()
        };
        self.process(id)?
            .ok_or_else(|| StoreError::Corrupt(format!("process {id} vanished")))
    }

    pub fn set_process_state(&self, id: i64, state: ProcessState) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE processes SET state = ?2 WHERE id = ?1",
            params![id, state.as_str()],
        )?;
        Ok(())
    }

    /// Makes `id` the environment's live process; the one live before (if any) becomes
    /// `retiring`. One transaction: there is never a moment with two or with none
    /// because of the switch itself.
    pub fn make_live(&self, id: i64) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let (app, environment): (String, String) = tx
            .query_row(
                "SELECT app, environment FROM processes WHERE id = ?1",
                [id],
                |r| Ok((r.get("app")?, r.get("environment")?)),
            )
            .optional()?
            .ok_or_else(|| StoreError::Corrupt(format!("process {id} is not recorded")))?;
        tx.execute(
            "UPDATE processes SET role = 'retiring' WHERE app = ?1 AND environment = ?2 AND role = 'live'",
            params![app, environment],
        )?;
        tx.execute(
            "UPDATE processes SET role = 'live', state = CASE WHEN state = 'starting' THEN 'running' ELSE state END WHERE id = ?1",
            [id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The supervisor's restart of a process that exited: the new pid replaces the old
    /// one only if the row still holds `old_pid` (a deploy may have switched meanwhile).
    pub fn replace_process(
        &self,
        id: i64,
        old_pid: Option<i32>,
        new: &Respawned,
    ) -> Result<bool, StoreError> {
        let Respawned {
            pid,
            start_ticks,
            port,
            restarts,
            at: now,
        } = *new;
        let changed = self.lock().execute(
            "UPDATE processes SET pid = ?3, start_ticks = ?4, port = ?5, restarts = ?6, started_at = ?7, state = 'running'
             WHERE id = ?1 AND pid IS ?2 AND role = 'live' AND state IN ('running', 'starting', 'restarting', 'crashed')",
            params![id, old_pid, pid, start_ticks as i64, i64::from(port), i64::from(restarts), now.0],
        )?;
        Ok(changed == 1)
    }

    /// The live process `pid` exited on its own: `restarting`, unless the row changed
    /// meanwhile (stopped on purpose, switched away from, restarted). Returns whether
    /// it was this call that saw the exit.
    pub fn mark_exited(&self, id: i64, pid: i32) -> Result<bool, StoreError> {
        let changed = self.lock().execute(
            "UPDATE processes SET pid = NULL, start_ticks = NULL, state = 'restarting'
             WHERE id = ?1 AND pid = ?2 AND role = 'live' AND state IN ('running', 'starting')",
            params![id, pid],
        )?;
        Ok(changed == 1)
    }

    /// The process is gone (exited, or stopped on purpose): no pid until it runs again.
    pub fn clear_process_pid(&self, id: i64, state: ProcessState) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE processes SET pid = NULL, start_ticks = NULL, state = ?2 WHERE id = ?1",
            params![id, state.as_str()],
        )?;
        Ok(())
    }

    pub fn delete_process(&self, id: i64) -> Result<(), StoreError> {
        self.lock()
            .execute("DELETE FROM processes WHERE id = ?1", [id])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(env: &str, release: &str, pid: i32) -> NewProcess {
        NewProcess {
            app: AppName::parse("shop").unwrap(),
            environment: EnvironmentName::parse(env).unwrap(),
            base_environment: EnvironmentName::parse(env).unwrap(),
            release: release.into(),
            pid,
            start_ticks: 77,
            port: 20001,
            started_at: UnixMillis(5),
        }
    }

    #[test]
    fn a_switch_moves_both_roles_at_once_and_keeps_one_live() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let (app, env) = (
            AppName::parse("shop").unwrap(),
            EnvironmentName::parse("staging").unwrap(),
        );
        let first = store.insert_process(&new("staging", "r1", 10)).unwrap();
        assert_eq!(
            (first.role, first.state),
            (Role::Candidate, ProcessState::Starting)
        );
        assert_eq!(store.live_process(&app, &env).unwrap(), None);
        store.make_live(first.id).unwrap();
        let second = store.insert_process(&new("staging", "r2", 11)).unwrap();
        store.make_live(second.id).unwrap();
        let live = store.live_process(&app, &env).unwrap().unwrap();
        assert_eq!((live.id, live.state), (second.id, ProcessState::Running));
        let old = store.process(first.id).unwrap().unwrap();
        assert_eq!(old.role, Role::Retiring);
        // Switching back is the same move the other way.
        store.make_live(first.id).unwrap();
        assert_eq!(
            store.live_process(&app, &env).unwrap().unwrap().id,
            first.id
        );
        assert_eq!(store.processes_of(&app, &env).unwrap().len(), 2);
    }

    #[test]
    fn a_restart_replaces_the_pid_only_if_nothing_changed_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let p = store.insert_process(&new("staging", "r1", 10)).unwrap();
        let again = Respawned {
            pid: 12,
            start_ticks: 1,
            port: 20002,
            restarts: 1,
            at: UnixMillis(9),
        };
        // Not live: a candidate is never restarted by the supervisor.
        assert!(!store.replace_process(p.id, Some(10), &again).unwrap());
        store.make_live(p.id).unwrap();
        assert!(!store.replace_process(p.id, Some(99), &again).unwrap());
        store
            .clear_process_pid(p.id, ProcessState::Restarting)
            .unwrap();
        assert!(store.replace_process(p.id, None, &again).unwrap());
        let now = store.process(p.id).unwrap().unwrap();
        assert_eq!(
            (now.pid, now.port, now.restarts, now.state),
            (Some(12), 20002, 1, ProcessState::Running)
        );
        store.delete_process(p.id).unwrap();
        assert!(store.processes().unwrap().is_empty());
    }
}

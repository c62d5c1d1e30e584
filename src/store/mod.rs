//! The embedded SQLite store at `<state_dir>/stagehand.db`. Every SQL statement of
//! stagehand lives under this module, one file per aggregate (lldap's layout), each
//! with its own `impl Store` block:
//!
//! - `deliveries.rs`: verified deliveries and what each recorded; pinged hooks
//! - `deploys.rs`: deploy rows (insert, read by id / page / environment / release,
//!   the commit and release a run records, its end); `stages.rs`: their stages
//! - `queue.rs`: what the runner starts (queued → running, superseding) and the
//!   start-up sweep of deploys a previous process left running
//! - `temporary_environments.rs`: a branch's environment, found or made; teardowns
//! - `writer.rs`: the thread that group-commits webhook deliveries
//! - `lifecycle.rs`, `checks.rs`, `reconcile.rs`, `processes.rs`, `app_processes.rs`,
//!   `counts.rs`, `health.rs`, `migrations.rs`: see each file
//!
//! This file keeps what they share: the [`Store`] handle, opening and migrating, the
//! connection and the gate in front of it.
//!
//! One connection behind a `std::sync::Mutex`: SQLite serialises writers anyway, and
//! a statement here takes microseconds. The methods are blocking; async callers go
//! through [`Store::run`], which moves the work to tokio's blocking pool so the HTTP
//! workers never wait on the disk. Webhook deliveries, the one write that comes in
//! bursts, go to the writer thread instead ([`Store::record_delivery_grouped`]), which
//! takes the same lock once per batch of them.
//!
//! Durability: WAL with `synchronous = NORMAL`. A committed row survives a crash of
//! the process (what a 202 promises); a power cut may lose the last commits.

mod app_processes;
mod checks;
mod counts;
mod deliveries;
mod deploys;
mod health;
mod lifecycle;
mod migrations;
mod processes;
mod queue;
mod reconcile;
mod stages;
mod temporary_environments;
#[cfg(test)]
mod test_support;
mod writer;

pub use app_processes::{NewProcess, ProcessRecord, Respawned};
pub use deliveries::{Intent, NewDelivery, Recorded};
pub use deploys::{DeployFilter, NewDeploy, Target};
pub use processes::RecordedGroup;
pub use queue::QueuedDeploy;
pub use temporary_environments::TemporaryEnvironment;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

use crate::core::ids::IdError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database holds a value stagehand cannot read: {0}")]
    Corrupt(String),
    #[error(
        "the database is newer (schema {found}) than this stagehand (schema {known}): upgrade stagehand"
    )]
    TooNew { found: i64, known: i64 },
    #[error("database task failed: {0}")]
    Task(String),
    #[error(
        "the database {} is damaged ({detail}): restore it from a backup (README: Backups), or move it aside to start with an empty history",
        .path.display()
    )]
    Damaged { path: PathBuf, detail: String },
    #[error("the database {} cannot be read: {detail}", .path.display())]
    Unhealthy { path: PathBuf, detail: String },
}

impl From<IdError> for StoreError {
    fn from(e: IdError) -> StoreError {
        StoreError::Corrupt(e.to_string())
    }
}

#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    gate: Arc<tokio::sync::Semaphore>,
    /// Read-only, for `/metrics`: WAL readers neither wait for the writer nor hold it up.
    reader: Arc<tokio::sync::Mutex<Connection>>,
    path: Arc<PathBuf>,
    /// Webhook deliveries, group-committed on their own thread (`writer.rs`).
    writer: Arc<writer::Writer>,
}

impl Store {
    /// Opens (creating if needed) `<state_dir>/stagehand.db` and migrates it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
        )
        .map_err(|e| health::damaged(path, e).unwrap_or_else(open_err))?;
        health::check_integrity(&conn, path)?;
        Store::migrate(conn, path)
    }

    fn migrate(mut conn: Connection, path: &Path) -> Result<Store, StoreError> {
        let known = migrations::MIGRATIONS.len() as i64;
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get("user_version"))?;
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        for (i, step) in migrations::MIGRATIONS
            .iter()
            .enumerate()
            .skip(found as usize)
        {
            let tx = conn.transaction()?;
            tx.execute_batch(step)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        let reader = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        let conn = Arc::new(Mutex::new(conn));
        let writer = writer::Writer::start(conn.clone()).map_err(|e| {
            StoreError::Task(format!("cannot start the store's writer thread: {e}"))
        })?;
        Ok(Store {
            conn,
            writer: Arc::new(writer),
            gate: Arc::new(tokio::sync::Semaphore::new(1)),
            reader: Arc::new(tokio::sync::Mutex::new(reader)),
            path: Arc::new(path.to_owned()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        lock_connection(&self.conn)
    }

    /// Runs blocking store work on tokio's blocking pool.
    ///
    /// Callers queue for a single permit first, asynchronously: with one connection
    /// only one thread can work at a time anyway, and without the gate a burst of
    /// deliveries parked one blocking thread per request on the mutex (measured: 150
    /// threads and a tail of task switches under 64 concurrent deliveries).
    pub async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let permit = self
            .gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let result = work(&store);
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

fn lock_connection(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave SQLite half-written (transactions
    // roll back on drop), so a poisoned lock is safe to keep using.
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::test_support::store;
    use super::*;

    #[test]
    fn migrations_are_idempotent_and_a_newer_schema_is_refused() {
        let (dir, store) = store();
        drop(store);
        let path = dir.path().join("stagehand.db");
        assert!(
            Store::open(&path).is_ok(),
            "reopening migrates nothing twice"
        );
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }
}

//! The embedded SQLite store at `<state_dir>/stagehand.db`: deliveries, deploys and
//! their stages, pinged hooks, temporary environments, app processes (`app_processes.rs`). Every SQL statement of
//! stagehand lives in this module.
//!
//! One connection behind a `std::sync::Mutex`: SQLite serialises writers anyway, and
//! a statement here takes microseconds. The methods are blocking; async callers go
//! through [`Store::run`], which moves the work to tokio's blocking pool so the HTTP
//! workers never wait on the disk.
//!
//! Durability: WAL with `synchronous = NORMAL`. A committed row survives a crash of
//! the process (what a 202 promises); a power cut may lose the last commits.

mod app_processes;
mod checks;
mod counts;
mod health;
mod lifecycle;
mod migrations;
mod processes;
mod reconcile;

pub use processes::RecordedGroup;

pub use app_processes::{NewProcess, ProcessRecord, Respawned};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use crate::core::deploy::{Deploy, DeployStatus, ReasonCode, Stage, Trigger};
use crate::core::ids::{AppName, DeployId, EnvironmentName, IdError};
use crate::core::routing::new_temporary_name;
use crate::core::stage::StageName;
use crate::core::time::UnixMillis;

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
}

/// A delivery that passed its signature check.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub app: AppName,
    pub delivery_id: String,
    /// Empty when GitHub did not send `X-GitHub-Hook-ID`.
    pub hook_id: String,
    pub event: String,
    pub received_at: UnixMillis,
}

/// Which environment a new deploy goes to.
#[derive(Debug, Clone)]
pub enum Target {
    Fixed(EnvironmentName),
    /// An existing temporary environment (`name`) made from pattern environment `base`.
    Instance {
        name: EnvironmentName,
        base: EnvironmentName,
    },
    /// A branch of a pattern environment: its temporary environment is found, or made.
    Temporary {
        base: EnvironmentName,
        branch: String,
        /// Configured environment names the new temporary name must not take.
        reserved: Vec<String>,
        /// `max_environments`: a branch that would make one more is ignored.
        limit: Option<usize>,
    },
}

#[derive(Debug, Clone)]
pub struct NewDeploy {
    pub target: Target,
    pub git_ref: String,
    pub commit: Option<String>,
    pub trigger: Trigger,
    pub forced: bool,
    /// `Queued`, or `Skipped` with a reason when the delivery says not to deploy.
    pub status: DeployStatus,
    pub reason: Option<String>,
    pub reason_code: Option<ReasonCode>,
    pub from_environment: Option<EnvironmentName>,
    /// For a rollback: the release asked for (else the one before the live one).
    pub release: Option<String>,
    /// The commit's message (first line) and author, when the delivery says.
    pub message: Option<String>,
    pub author: Option<String>,
}

impl NewDeploy {
    /// A queued deploy with nothing special about it; callers set what differs.
    pub fn queued(target: Target, trigger: Trigger, git_ref: String) -> NewDeploy {
        NewDeploy {
            target,
            git_ref,
            commit: None,
            trigger,
            forced: false,
            status: DeployStatus::Queued,
            reason: None,
            reason_code: None,
            from_environment: None,
            release: None,
            message: None,
            author: None,
        }
    }
}

/// What a verified delivery asks of the store.
#[derive(Debug, Clone)]
pub enum Intent {
    Ping,
    Ignore {
        reason: String,
    },
    Deploy(NewDeploy),
    /// Tear down the temporary environment of `branch`, if it has one.
    Teardown {
        base: EnvironmentName,
        branch: String,
        git_ref: String,
    },
}

#[derive(Debug, Clone)]
pub enum Recorded {
    Ping {
        duplicate: bool,
    },
    Ignored {
        reason: String,
        duplicate: bool,
    },
    Deploy {
        deploy: Box<Deploy>,
        duplicate: bool,
    },
}

#[derive(Debug, Clone, Default)]
pub struct DeployFilter {
    pub app: Option<String>,
    pub environment: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporaryEnvironment {
    pub name: EnvironmentName,
    pub base: EnvironmentName,
    pub branch: String,
}

const DEPLOY_COLUMNS: &str = "id, app, environment, ref, commit_sha, trigger, status, reason, release, forced, created_at, started_at, finished_at, base_environment, from_environment, message, author, reason_code";

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
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
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
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            gate: Arc::new(tokio::sync::Semaphore::new(1)),
            reader: Arc::new(tokio::sync::Mutex::new(reader)),
            path: Arc::new(path.to_owned()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions
        // roll back on drop), so a poisoned lock is safe to keep using.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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

    /// Records a delivery and what it asks for in one transaction: a redelivery (same
    /// app, hook id and delivery id) returns what the first one recorded and does nothing.
    pub fn record_delivery(
        &self,
        delivery: &NewDelivery,
        intent: Intent,
    ) -> Result<Recorded, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing = tx.prepare_cached("SELECT outcome, detail, deploy_id FROM deliveries WHERE app = ?1 AND hook_id = ?2 AND delivery_id = ?3")?.query_row(params![delivery.app.as_str(), delivery.hook_id, delivery.delivery_id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, Option<i64>>(2)?)),
            )
            .optional()?;
        if let Some((outcome, detail, deploy_id)) = existing {
            return match (outcome.as_str(), deploy_id) {
                ("deploy", Some(id)) => Ok(Recorded::Deploy {
                    deploy: Box::new(load_deploy(&tx, DeployId(id))?.ok_or_else(|| {
                        StoreError::Corrupt(format!("delivery points at missing deploy {id}"))
                    })?),
                    duplicate: true,
                }),
                ("ping", _) => Ok(Recorded::Ping { duplicate: true }),
                _ => Ok(Recorded::Ignored {
                    reason: detail.unwrap_or_default(),
                    duplicate: true,
                }),
            };
        }
        let recorded = match intent {
            Intent::Ping => {
                tx.prepare_cached(
                    "INSERT INTO hooks (app, hook_id, last_ping_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (app, hook_id) DO UPDATE SET last_ping_at = excluded.last_ping_at",
                )?
                .execute(params![
                    delivery.app.as_str(),
                    delivery.hook_id,
                    delivery.received_at.0
                ])?;
                Recorded::Ping { duplicate: false }
            }
            Intent::Ignore { reason } => Recorded::Ignored {
                reason,
                duplicate: false,
            },
            Intent::Deploy(new)
                if let Some(reason) = lifecycle::over_limit(&tx, &delivery.app, &new.target)? =>
            {
                Recorded::Ignored {
                    reason,
                    duplicate: false,
                }
            }
            Intent::Deploy(new) => {
                let deploy = insert_deploy(&tx, &delivery.app, new, delivery.received_at)?;
                Recorded::Deploy {
                    deploy: Box::new(deploy),
                    duplicate: false,
                }
            }
            Intent::Teardown {
                base,
                branch,
                git_ref,
            } => teardown(
                &tx,
                &delivery.app,
                &base,
                &branch,
                git_ref,
                delivery.received_at,
            )?,
        };
        let (outcome, detail, deploy_id) = match &recorded {
            Recorded::Ping { .. } => ("ping", None, None),
            Recorded::Ignored { reason, .. } => ("ignored", Some(reason.as_str()), None),
            Recorded::Deploy { deploy, .. } => ("deploy", None, Some(deploy.id.0)),
        };
        tx.prepare_cached("INSERT INTO deliveries (app, delivery_id, hook_id, event, outcome, detail, deploy_id, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?.execute(params![
                delivery.app.as_str(),
                delivery.delivery_id,
                delivery.hook_id,
                delivery.event,
                outcome,
                detail,
                deploy_id,
                delivery.received_at.0
            ],
        )?;
        tx.commit()?;
        Ok(recorded)
    }

    /// A deploy not tied to a delivery (manual, rollback, promote, sync).
    pub fn create_deploy(
        &self,
        app: &AppName,
        new: NewDeploy,
        now: UnixMillis,
    ) -> Result<Deploy, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let deploy = insert_deploy(&tx, app, new, now)?;
        tx.commit()?;
        Ok(deploy)
    }

    pub fn deploy(&self, id: DeployId) -> Result<Option<Deploy>, StoreError> {
        load_deploy(&self.lock(), id)
    }

    /// Newest first.
    pub fn deploys(&self, filter: &DeployFilter) -> Result<Vec<Deploy>, StoreError> {
        let conn = self.lock();
        // One statement per filter shape: `(?1 IS NULL OR app = ?1)` can use no index and
        // walked the history newest first until LIMIT rows matched (all of it for an
        // environment deployed long ago); an exact `app = ?1 AND environment = ?2` is a
        // range of `deploys_by_environment`.
        let filter_sql = match (&filter.app, &filter.environment) {
            (Some(_), Some(_)) => "app = ?1 AND environment = ?2",
            (Some(_), None) => "app = ?1 AND ?2 IS NULL",
            (None, Some(_)) => "?1 IS NULL AND environment = ?2",
            (None, None) => "?1 IS NULL AND ?2 IS NULL",
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {DEPLOY_COLUMNS} FROM deploys WHERE {filter_sql} ORDER BY id DESC LIMIT ?3"
        ))?;
        let rows = stmt
            .query_map(
                params![filter.app, filter.environment, filter.limit as i64],
                deploy_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(|row| row.finish(&conn)).collect()
    }

    /// The environment's newest deploy. Its own query, not [`Store::deploys`] with a
    /// filter: the `(?1 IS NULL OR app = ?1)` form cannot use an index, and walked the
    /// history newest first until it met the environment (all of it, for one deployed
    /// long ago); this one is a lookup in `deploys_by_environment`.
    pub fn last_deploy(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
    ) -> Result<Option<Deploy>, StoreError> {
        let conn = self.lock();
        let row = conn
            .prepare_cached(&format!(
                "SELECT {DEPLOY_COLUMNS} FROM deploys WHERE app = ?1 AND environment = ?2
                 ORDER BY id DESC LIMIT 1"
            ))?
            .query_row(params![app.as_str(), environment.as_str()], deploy_row)
            .optional()?;
        row.map(|r| r.finish(&conn)).transpose()
    }

    /// The deploy that built `release` of an environment: the newest deploy of a
    /// commit (push, manual, promote) that recorded it, whatever its outcome.
    pub fn release_deploy(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
        release: &str,
    ) -> Result<Option<Deploy>, StoreError> {
        let conn = self.lock();
        let row = conn
            .prepare_cached(&format!(
                "SELECT {DEPLOY_COLUMNS} FROM deploys
                 WHERE app = ?1 AND environment = ?2 AND release = ?3
                   AND trigger IN ('push', 'manual', 'promote')
                 ORDER BY id DESC LIMIT 1"
            ))?
            .query_row(
                params![app.as_str(), environment.as_str(), release],
                deploy_row,
            )
            .optional()?;
        row.map(|r| r.finish(&conn)).transpose()
    }

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
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
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

    pub fn hook_ids(&self, app: &AppName) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare_cached("SELECT hook_id FROM hooks WHERE app = ?1 ORDER BY hook_id")?;
        let rows = stmt
            .query_map([app.as_str()], |r| r.get(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

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
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
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
        let deploy = load_deploy(&tx, id)?;
        tx.commit()?;
        Ok(deploy)
    }

    /// Records the release (and the resolved commit) before its directory is made, so a
    /// crash leaves a record of what to clean up.
    pub fn set_release(
        &self,
        id: DeployId,
        release: &str,
        commit: Option<&str>,
    ) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE deploys SET release = ?2, commit_sha = COALESCE(?3, commit_sha) WHERE id = ?1",
            params![id.0, release, commit],
        )?;
        Ok(())
    }

    /// The message (first line) and author of the commit a deploy resolved to.
    pub fn set_commit_details(
        &self,
        id: DeployId,
        message: &str,
        author: &str,
    ) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE deploys SET message = ?2, author = ?3 WHERE id = ?1",
            params![id.0, message, author],
        )?;
        Ok(())
    }

    /// The commit a deploy resolved to, and the full ref it was found under.
    pub fn set_commit(&self, id: DeployId, commit: &str, git_ref: &str) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE deploys SET commit_sha = ?2, ref = ?3 WHERE id = ?1",
            params![id.0, commit, git_ref],
        )?;
        Ok(())
    }

    /// Opens a stage row; returns its sequence number.
    pub fn begin_stage(
        &self,
        id: DeployId,
        name: StageName,
        now: UnixMillis,
    ) -> Result<i64, StoreError> {
        let conn = self.lock();
        let seq: i64 = conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM stages WHERE deploy_id = ?1",
            [id.0],
            |r| r.get(0),
        )?;
        conn.execute(
            "INSERT INTO stages (deploy_id, seq, name, status, started_at) VALUES (?1, ?2, ?3, 'running', ?4)",
            params![id.0, seq, name.as_str(), now.0],
        )?;
        Ok(seq)
    }

    pub fn end_stage(
        &self,
        id: DeployId,
        seq: i64,
        status: DeployStatus,
        duration_ms: i64,
    ) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE stages SET status = ?3, duration_ms = ?4 WHERE deploy_id = ?1 AND seq = ?2",
            params![id.0, seq, status.as_str(), duration_ms],
        )?;
        Ok(())
    }

    /// Ends a running deploy. Returns the deploy as stored.
    pub fn finish(
        &self,
        id: DeployId,
        status: DeployStatus,
        reason: Option<&str>,
        now: UnixMillis,
    ) -> Result<Option<Deploy>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ended = tx.execute(
            "UPDATE deploys SET status = ?2, reason = ?3, finished_at = ?4 WHERE id = ?1 AND status IN ('queued', 'running')",
            params![id.0, status.as_str(), reason, now.0],
        )?;
        // A stage whose own end was not stored (its write failed) ends with its deploy:
        // a finished deploy never lists a stage as still running.
        if ended > 0 {
            tx.execute(
                "UPDATE stages SET status = ?2 WHERE deploy_id = ?1 AND status = 'running'",
                params![id.0, status.as_str()],
            )?;
        }
        let deploy = load_deploy(&tx, id)?;
        tx.commit()?;
        Ok(deploy)
    }

    /// At start-up: deploys left `running` by a previous process become `interrupted`
    /// (and their open stages too). Returns them, so their half-made releases can go.
    pub fn interrupt_running(&self, now: UnixMillis) -> Result<Vec<Deploy>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids: Vec<i64> = tx
            .prepare("SELECT id FROM deploys WHERE status = 'running' ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        tx.prepare_cached("UPDATE stages SET status = 'interrupted' WHERE status = 'running' AND deploy_id IN (SELECT id FROM deploys WHERE status = 'running')")?.execute([],
        )?;
        tx.prepare_cached(
            "UPDATE deploys SET status = 'interrupted', finished_at = ?1,
                    reason = 'the server stopped during this deploy' WHERE status = 'running'",
        )?
        .execute([now.0])?;
        let deploys = ids
            .into_iter()
            .filter_map(|id| load_deploy(&tx, DeployId(id)).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        Ok(deploys)
    }

    /// The newest deploy that put `release` live in an environment.
    pub fn deploy_with_release(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
        release: &str,
    ) -> Result<Option<Deploy>, StoreError> {
        let conn = self.lock();
        let id: Option<i64> = conn
            .query_row(
                "SELECT id FROM deploys WHERE app = ?1 AND environment = ?2 AND release = ?3
                   AND status = 'succeeded' AND trigger IN ('push', 'manual', 'promote', 'reconcile') ORDER BY id DESC LIMIT 1",
                params![app.as_str(), environment.as_str(), release],
                |r| r.get(0),
            )
            .optional()?;
        id.map(|id| load_deploy(&conn, DeployId(id)))
            .transpose()
            .map(Option::flatten)
    }

    /// Deletes delivery records received before `before`; returns how many.
    pub fn prune_deliveries(&self, before: UnixMillis) -> Result<usize, StoreError> {
        Ok(self
            .lock()
            .execute("DELETE FROM deliveries WHERE received_at < ?1", [before.0])?)
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

fn insert_deploy(
    tx: &Transaction<'_>,
    app: &AppName,
    new: NewDeploy,
    now: UnixMillis,
) -> Result<Deploy, StoreError> {
    let (environment, base) = match new.target {
        Target::Fixed(env) => (env.clone(), env),
        Target::Instance { name, base } => (name, base),
        Target::Temporary {
            base,
            branch,
            reserved,
            ..
        } => (
            temporary_environment(tx, app, &base, &branch, &reserved, now)?,
            base,
        ),
    };
    tx.prepare_cached("INSERT INTO deploys (app, environment, base_environment, ref, commit_sha, trigger, status, reason, forced,
                              from_environment, created_at, finished_at, release, message, author, reason_code)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)")?.execute(params![
            app.as_str(),
            environment.as_str(),
            base.as_str(),
            new.git_ref,
            new.commit,
            new.trigger.as_str(),
            new.status.as_str(),
            new.reason,
            new.forced,
            new.from_environment.as_ref().map(EnvironmentName::as_str),
            now.0,
            new.status.is_terminal().then_some(now.0),
            new.release,
            new.message,
            new.author,
            new.reason_code.map(ReasonCode::as_str),
        ],
    )?;
    let id = DeployId(tx.last_insert_rowid());
    load_deploy(tx, id)?
        .ok_or_else(|| StoreError::Corrupt(format!("deploy {id} vanished after insert")))
}

/// The temporary environment of `branch`, made on its first push.
fn temporary_environment(
    tx: &Transaction<'_>,
    app: &AppName,
    base: &EnvironmentName,
    branch: &str,
    reserved: &[String],
    now: UnixMillis,
) -> Result<EnvironmentName, StoreError> {
    let existing: Option<String> = tx
        .prepare_cached("SELECT name FROM temporary_environments WHERE app = ?1 AND branch = ?2")?
        .query_row(params![app.as_str(), branch], |r| r.get(0))
        .optional()?;
    if let Some(name) = existing {
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
fn teardown(
    tx: &Transaction<'_>,
    app: &AppName,
    base: &EnvironmentName,
    branch: &str,
    git_ref: String,
    now: UnixMillis,
) -> Result<Recorded, StoreError> {
    let name: Option<String> = tx
        .prepare_cached("SELECT name FROM temporary_environments WHERE app = ?1 AND branch = ?2")?
        .query_row(params![app.as_str(), branch], |r| r.get(0))
        .optional()?;
    let Some(name) = name else {
        return Ok(Recorded::Ignored {
            reason: format!(
                "branch {branch:?} has no temporary environment (never deployed, or already torn down)"
            ),
            duplicate: false,
        });
    };
    let pending: Option<i64> = tx
        .prepare_cached(
            "SELECT id FROM deploys WHERE app = ?1 AND environment = ?2 AND trigger = 'teardown'
               AND status IN ('queued', 'running') ORDER BY id LIMIT 1",
        )?
        .query_row(params![app.as_str(), name], |r| r.get(0))
        .optional()?;
    if let Some(id) = pending {
        let deploy = load_deploy(tx, DeployId(id))?
            .ok_or_else(|| StoreError::Corrupt(format!("teardown {id} vanished")))?;
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
    let deploy = insert_deploy(tx, app, new, now)?;
    Ok(Recorded::Deploy {
        deploy: Box::new(deploy),
        duplicate: false,
    })
}

/// A deploy row before its stages are attached.
struct DeployRow(Deploy);

impl DeployRow {
    fn finish(mut self, conn: &Connection) -> Result<Deploy, StoreError> {
        self.0.stages = load_stages(conn, self.0.id)?;
        Ok(self.0)
    }
}

fn deploy_row(r: &Row<'_>) -> rusqlite::Result<DeployRow> {
    let text = |i: usize| r.get::<_, String>(i);
    let bad = |i: usize, what: &str, value: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("bad {what} {value:?}").into(),
        )
    };
    let app = text(1)?;
    let environment = text(2)?;
    let base = text(13)?;
    let from: Option<String> = r.get(14)?;
    let trigger = text(5)?;
    let status = text(6)?;
    Ok(DeployRow(Deploy {
        id: DeployId(r.get(0)?),
        app: AppName::parse(&app).map_err(|_| bad(1, "app", &app))?,
        environment: EnvironmentName::parse(&environment)
            .map_err(|_| bad(2, "environment", &environment))?,
        base_environment: EnvironmentName::parse(&base)
            .map_err(|_| bad(13, "environment", &base))?,
        from_environment: from
            .map(|f| EnvironmentName::parse(&f).map_err(|_| bad(14, "environment", &f)))
            .transpose()?,
        git_ref: text(3)?,
        commit: r.get(4)?,
        trigger: Trigger::parse(&trigger).ok_or_else(|| bad(5, "trigger", &trigger))?,
        status: DeployStatus::parse(&status).ok_or_else(|| bad(6, "status", &status))?,
        reason: r.get(7)?,
        // An unknown code (from a newer binary) only loses what depends on it.
        reason_code: r
            .get::<_, Option<String>>(17)?
            .and_then(|c| ReasonCode::parse(&c)),
        release: r.get(8)?,
        forced: r.get(9)?,
        message: r.get(15)?,
        author: r.get(16)?,
        created_at: UnixMillis(r.get(10)?),
        started_at: r.get::<_, Option<i64>>(11)?.map(UnixMillis),
        finished_at: r.get::<_, Option<i64>>(12)?.map(UnixMillis),
        stages: Vec::new(),
    }))
}

fn load_deploy(conn: &Connection, id: DeployId) -> Result<Option<Deploy>, StoreError> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {DEPLOY_COLUMNS} FROM deploys WHERE id = ?1"
        ))?
        .query_row([id.0], deploy_row)
        .optional()?;
    row.map(|r| r.finish(conn)).transpose()
}

fn load_stages(conn: &Connection, id: DeployId) -> Result<Vec<Stage>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, status, duration_ms FROM stages WHERE deploy_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt
        .query_map([id.0], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(name, status, duration_ms)| {
            let status = DeployStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("stage status {status:?}")))?;
            let name = StageName::parse(&name)
                .ok_or_else(|| StoreError::Corrupt(format!("stage name {name:?}")))?;
            Ok(Stage {
                name,
                status,
                duration_ms,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("stagehand.db")).unwrap();
        (dir, store)
    }

    fn delivery(id: &str, at: i64) -> NewDelivery {
        NewDelivery {
            app: AppName::parse("shop").unwrap(),
            delivery_id: id.into(),
            hook_id: "1".into(),
            event: "push".into(),
            received_at: UnixMillis(at),
        }
    }

    fn push(env: &str) -> Intent {
        let target = Target::Fixed(EnvironmentName::parse(env).unwrap());
        Intent::Deploy(NewDeploy::queued(
            target,
            Trigger::Push,
            "refs/heads/develop".into(),
        ))
    }

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

    #[test]
    fn redeliveries_find_the_first_record_until_it_is_pruned() {
        let (_dir, store) = store();
        let first = store
            .record_delivery(&delivery("d1", 1_000), push("staging"))
            .unwrap();
        let Recorded::Deploy {
            deploy,
            duplicate: false,
        } = first
        else {
            panic!("{first:?}")
        };
        let again = store
            .record_delivery(&delivery("d1", 2_000), push("staging"))
            .unwrap();
        assert!(
            matches!(&again, Recorded::Deploy { deploy: d, duplicate: true } if d.id == deploy.id)
        );
        assert_eq!(store.prune_deliveries(UnixMillis(1_000)).unwrap(), 0);
        assert_eq!(store.prune_deliveries(UnixMillis(1_001)).unwrap(), 1);
        let after = store
            .record_delivery(&delivery("d1", 3_000), push("staging"))
            .unwrap();
        assert!(matches!(
            after,
            Recorded::Deploy {
                duplicate: false,
                ..
            }
        ));
        // Deploy history survives the pruning of deliveries.
        assert!(store.deploy(deploy.id).unwrap().is_some());
    }

    #[test]
    fn start_supersedes_and_interrupt_running_recovers() {
        let (_dir, store) = store();
        let ids: Vec<DeployId> = (0..3)
            .map(|i| {
                match store
                    .record_delivery(&delivery(&format!("d{i}"), i), push("staging"))
                    .unwrap()
                {
                    Recorded::Deploy { deploy, .. } => deploy.id,
                    other => panic!("{other:?}"),
                }
            })
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
        let interrupted = store.interrupt_running(UnixMillis(20)).unwrap();
        assert_eq!(interrupted.len(), 1);
        assert_eq!(interrupted[0].status, DeployStatus::Interrupted);
        assert!(store.interrupt_running(UnixMillis(21)).unwrap().is_empty());
    }

    #[test]
    fn finishing_a_deploy_closes_a_stage_whose_end_was_not_stored() {
        let (_dir, store) = store();
        let id = match store
            .record_delivery(&delivery("d", 1), push("staging"))
            .unwrap()
        {
            Recorded::Deploy { deploy, .. } => deploy.id,
            other => panic!("{other:?}"),
        };
        store.start(id, &[], UnixMillis(2)).unwrap().unwrap();
        store
            .begin_stage(id, StageName::Build, UnixMillis(3))
            .unwrap();
        let done = store
            .finish(id, DeployStatus::Failed, Some("disk full"), UnixMillis(4))
            .unwrap()
            .unwrap();
        assert_eq!(done.status, DeployStatus::Failed);
        assert_eq!(done.stages.len(), 1);
        assert_eq!(done.stages[0].status, DeployStatus::Failed);
    }
}

//! The supervisor: runs, checks, switches the route to, stops and watches the app
//! processes of environments that `run`. Deploys, rollbacks and restarts
//! (`pipeline::deploy::blue_green`) call it stage by stage; the HTTP API calls it for
//! `stop`; its own [`Supervisor::watch`] loop restarts processes that exit on their own.
//!
//! - `spawn.rs` starts a process detached from stagehand (own process group, output
//!   to a file), `procfs.rs` looks at and signals it by pid + start time,
//!   `ports.rs` picks its port, `app_log.rs` keeps its log, `routes.rs` writes
//!   `<state_dir>/routes.json`.
//! - After a switch, [`Supervisor::drain`] waits (reading the front doors' reports,
//!   `front_door::in_flight`) until nothing is in flight to the old process, at most
//!   its `drain_timeout`, before the deploy stops it.
//! - `drain.rs` holds that wait; `watch.rs` adoption at start-up and restarts.
//! - Every process is recorded in the store (`store/app_processes.rs`) before anyone can
//!   route to it, so a restarted stagehand finds it again ([`Supervisor::recover`]).
//! - Decisions (backoff, states, what to do at start-up) are in `core::app_process`.
//!
//! Invariants: an app process is never killed by crash recovery: at start-up a live
//! environment's process is adopted (or restarted if it died), and only a deploy's
//! leftover candidate or retiring process is stopped. A process is signalled only after
//! checking that its pid still has the recorded start time.

pub(crate) mod app_log;
mod drain;
mod ports;
pub mod procfs;
mod spawn;
mod watch;

pub use drain::Drained;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::command_env::{CommandEnv, ReleaseVars};
use crate::config::{AppConfig, EnvironmentConfig, HealthCheck, HealthTarget, RunConfig};
use crate::core::app_process::{
    AtStart, Liveness, ProcessState, Role, StopSignal, at_start, liveness, restart_delay,
    restarts_in_a_row,
};
use crate::core::duration::format_limit;
use crate::core::ids::{AppName, EnvironmentName};
use crate::core::time::{Clock, UnixMillis};
use crate::front_door::in_flight::{self, DrainState};
use crate::health::get_status;
use crate::layout::EnvironmentDir;
use crate::metrics::Metrics;
use crate::reload::LiveConfig;
use crate::store::{NewProcess, ProcessRecord, Respawned, Store, StoreError};

pub use spawn::SpawnError;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("no free port in {first}-{last} ([server] ports): widen the range or stop something")]
    NoPort { first: u16, last: u16 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{app}/{environment} has no `run` in the config")]
    NotRunning { app: String, environment: String },
    #[error(
        "the new process exited before it answered (see the app log: stagehand logs {app}/{environment} --app)"
    )]
    Exited { app: String, environment: String },
    #[error("{0}")]
    Unhealthy(String),
    #[error("internal task failed: {0}")]
    Task(String),
}

/// A handle to the supervisor; cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    /// Read at each use: a reload changes what the next start or restart does.
    config: LiveConfig,
    store: Store,
    clock: Clock,
    process_env: Arc<HashMap<String, String>>,
    metrics: Arc<Metrics>,
    /// Per record: quick exits in a row (for the backoff) and when it may start again.
    backoff: Mutex<HashMap<i64, (u32, Instant)>>,
}

/// How often the watch loop looks at every live process.
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// How often app logs are checked for rotation, in watch rounds.
const ROTATE_EVERY_ROUNDS: u64 = 20;
/// How often a health check asks while a new process starts.
const HEALTH_POLL: Duration = Duration::from_millis(100);
/// How often a drain reads the front doors' reports.
const DRAIN_POLL: Duration = Duration::from_millis(100);
/// Without a front door, how long a process that was switched away from keeps running
/// before it is asked to stop: a client that read `routes.json` just before the switch
/// still gets its answer (many servers, Python's http.server among them, drop requests
/// in flight on SIGTERM). Measured by bench/zero_downtime.sh: without it, about one
/// request in 30,000 was cut off.
const GRACE_WITHOUT_FRONT_DOOR: Duration = Duration::from_secs(1);
/// Without a `health_check`, how long a new process gets to accept connections.
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

impl Supervisor {
    pub fn new(
        config: LiveConfig,
        store: Store,
        clock: Clock,
        process_env: Arc<HashMap<String, String>>,
        metrics: Arc<Metrics>,
    ) -> Supervisor {
        Supervisor {
            inner: Arc::new(Inner {
                config,
                store,
                clock,
                process_env,
                metrics,
                backoff: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.inner.config.get().server.state_dir.clone()
    }

    /// `<state_dir>/app-logs/<app>/<environment>.log`.
    pub fn app_log(&self, app: &AppName, environment: &EnvironmentName) -> PathBuf {
        app_log::path(&self.state_dir(), app.as_str(), environment.as_str())
    }

    fn configured(
        &self,
        app: &AppName,
        base: &EnvironmentName,
    ) -> Option<(AppConfig, EnvironmentConfig, RunConfig)> {
        let config = self.inner.config.get();
        let app = config.apps.get(app)?;
        let env = app.environments.get(base)?;
        let run = env.run.as_ref()?;
        Some((app.clone(), env.clone(), run.clone()))
    }

    /// Starts `release`'s process on a free port and records it as a `starting`
    /// candidate (nothing routes to it yet).
    pub async fn start(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
        base: &EnvironmentName,
        release: &str,
    ) -> Result<ProcessRecord, SupervisorError> {
        let this = self.clone();
        let (app, environment, base, release) = (
            app.clone(),
            environment.clone(),
            base.clone(),
            release.to_owned(),
        );
        blocking(move || {
            let taken = this.taken_ports()?;
            let seed = ports::seed((this.inner.clock)().0);
            let range = this.inner.config.get().server.ports;
            let port = ports::pick_free(range, seed, &taken).ok_or(SupervisorError::NoPort {
                first: range.first,
                last: range.last,
            })?;
            let spawned = this.spawn_blocking(&app, &environment, &base, &release, port)?;
            let record = this.inner.store.insert_process(&NewProcess {
                app,
                environment,
                base_environment: base,
                release,
                pid: spawned.pid,
                start_ticks: spawned.start_ticks,
                port,
                started_at: (this.inner.clock)(),
            })?;
            Ok(record)
        })
        .await
    }

    fn taken_ports(&self) -> Result<Vec<u16>, StoreError> {
        Ok(self
            .inner
            .store
            .processes()?
            .iter()
            .map(|p| p.port)
            .collect())
    }

    fn spawn_blocking(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
        base: &EnvironmentName,
        release: &str,
        port: u16,
    ) -> Result<spawn::Spawned, SupervisorError> {
        let (app_config, env_config, run) =
            self.configured(app, base)
                .ok_or_else(|| SupervisorError::NotRunning {
                    app: app.to_string(),
                    environment: environment.to_string(),
                })?;
        let env_dir = EnvironmentDir::new(&app_config.root, environment);
        let release_dir = env_dir.releases().join(release);
        let commit = env_dir.revision(release);
        let vars = CommandEnv::new(&self.inner.process_env, &env_config.env)
            .with_port(port)
            .with_release(&ReleaseVars {
                app,
                environment,
                base_environment: base,
                env_dir: &env_dir,
                release,
                commit: commit.as_ref(),
            });
        let log = self.app_log(app, environment);
        app_log::note(
            &log,
            &format!("starting release {release} on port {port}: {}", run.command),
        );
        let spawned = spawn::spawn(&run.command, &release_dir, vars.vars(), &log)?;
        app_log::note(&log, &format!("pid {} started", spawned.pid));
        Ok(spawned)
    }

    /// Waits until the new process answers its health check on its own port (a 2xx
    /// for a `path`; without a check, accepting a connection). Its exit, or the time
    /// running out, is a failure. Returns what it saw, for the deploy log.
    pub async fn wait_healthy(
        &self,
        record: &ProcessRecord,
        check: Option<&HealthCheck>,
    ) -> Result<String, SupervisorError> {
        let (pid, ticks) = match (record.pid, record.start_ticks) {
            (Some(pid), Some(ticks)) => (pid, ticks),
            _ => {
                return Err(SupervisorError::Exited {
                    app: record.app.to_string(),
                    environment: record.environment.to_string(),
                });
            }
        };
        let port = record.port;
        let (path, timeout) = match check {
            Some(HealthCheck {
                target: HealthTarget::Path(path),
                timeout,
            }) => (Some(path.clone()), *timeout),
            Some(HealthCheck { timeout, .. }) => (None, *timeout),
            None => (None, DEFAULT_HEALTH_TIMEOUT),
        };
        let (app, environment) = (record.app.to_string(), record.environment.to_string());
        blocking(move || {
            let deadline = Instant::now() + timeout;
            loop {
                if !procfs::is_same(pid, ticks) {
                    return Err(SupervisorError::Exited { app, environment });
                }
                let ask =
                    Duration::from_secs(2).min(deadline.saturating_duration_since(Instant::now()));
                let last = match &path {
                    Some(path) => {
                        let url = format!("http://127.0.0.1:{port}{path}");
                        match get_status(&url, ask) {
                            Ok(code) if (200..300).contains(&code) => {
                                return Ok(format!("{url} answered {code}"));
                            }
                            Ok(code) => format!("{url} answered {code}"),
                            Err(e) => format!("{url}: {e}"),
                        }
                    }
                    None => {
                        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                        match std::net::TcpStream::connect_timeout(
                            &address,
                            ask.max(Duration::from_millis(50)),
                        ) {
                            Ok(_) => return Ok(format!("127.0.0.1:{port} accepts connections")),
                            Err(e) => format!("127.0.0.1:{port}: {e}"),
                        }
                    }
                };
                if Instant::now() >= deadline {
                    return Err(SupervisorError::Unhealthy(format!(
                        "not healthy after {}: {last}",
                        format_limit(timeout)
                    )));
                }
                std::thread::sleep(HEALTH_POLL);
            }
        })
        .await
    }

    /// Routes the environment to `record` (the store's live row and `routes.json`);
    /// the environment's previous live process becomes `retiring`.
    pub async fn make_live(&self, record: &ProcessRecord) -> Result<(), SupervisorError> {
        let this = self.clone();
        let id = record.id;
        blocking(move || {
            this.inner.store.make_live(id)?;
            this.write_routes();
            Ok(())
        })
        .await
    }

    fn write_routes(&self) {
        let state_dir = self.state_dir();
        match self.inner.store.processes() {
            Ok(all) => {
                if let Err(e) = crate::front_door::routes_file::write(&state_dir, &all) {
                    tracing::warn!(error = %e, "cannot write routes.json");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read processes for routes.json"),
        }
    }

    /// Stops a candidate or retiring process (`stop_signal`, SIGKILL after
    /// `stop_timeout`) and forgets it.
    /// The record is read again first: the watch loop may have restarted the process
    /// (new pid) since the caller read it.
    pub async fn stop_and_forget(&self, record: &ProcessRecord) -> Result<(), SupervisorError> {
        let this = self.clone();
        let id = record.id;
        blocking(move || {
            let Some(record) = this.inner.store.process(id)? else {
                return Ok(());
            };
            if record.role == Role::Live {
                // Switched back to meanwhile: never stop what the route points at.
                return Ok(());
            }
            this.stop_blocking(&record, "stopping");
            this.inner.store.delete_process(record.id)?;
            this.write_routes();
            Ok(())
        })
        .await
    }

    /// `stagehand stop`: stops the environment's live process and keeps it stopped
    /// (not restarted) until `start` or the next deploy. Returns whether one was running.
    pub async fn stop_live(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
    ) -> Result<bool, SupervisorError> {
        let this = self.clone();
        let (app, environment) = (app.clone(), environment.clone());
        blocking(move || {
            let Some(live) = this.inner.store.live_process(&app, &environment)? else {
                return Ok(false);
            };
            // Stopped first, so the watch loop does not take the exit for a crash.
            this.inner
                .store
                .set_process_state(live.id, ProcessState::Stopped)?;
            let was_running = live.pid.is_some();
            this.stop_blocking(&live, "stopping on request");
            this.inner
                .store
                .clear_process_pid(live.id, ProcessState::Stopped)?;
            this.write_routes();
            Ok(was_running)
        })
        .await
    }

    /// Teardown: every process of the environment stopped and forgotten.
    pub async fn stop_environment(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
    ) -> Result<usize, SupervisorError> {
        let this = self.clone();
        let (app, environment) = (app.clone(), environment.clone());
        blocking(move || {
            let all = this.inner.store.processes_of(&app, &environment)?;
            for p in &all {
                this.inner
                    .store
                    .set_process_state(p.id, ProcessState::Stopped)?;
                this.stop_blocking(p, "tearing down");
                this.inner.store.delete_process(p.id)?;
            }
            this.write_routes();
            Ok(all.len())
        })
        .await
    }

    fn stop_config(&self, record: &ProcessRecord) -> (StopSignal, Duration) {
        match self.configured(&record.app, &record.base_environment) {
            Some((_, _, run)) => (run.stop_signal, run.stop_timeout),
            None => (StopSignal::Term, Duration::from_secs(30)),
        }
    }

    /// Blocking: signal, wait up to `stop_timeout`, SIGKILL, wait a little more.
    fn stop_blocking(&self, record: &ProcessRecord, why: &str) {
        let (Some(pid), Some(ticks)) = (record.pid, record.start_ticks) else {
            return;
        };
        let log = self.app_log(&record.app, &record.environment);
        let (signal, timeout) = self.stop_config(record);
        if !procfs::signal_group(pid, ticks, signal) {
            return;
        }
        app_log::note(
            &log,
            &format!("{why} pid {pid} (release {}) with {signal}", record.release),
        );
        if wait_gone(pid, ticks, timeout) {
            return;
        }
        app_log::note(
            &log,
            &format!(
                "pid {pid} still running after {}: SIGKILL",
                format_limit(timeout)
            ),
        );
        procfs::signal_group(pid, ticks, StopSignal::Kill);
        wait_gone(pid, ticks, Duration::from_secs(5));
    }

    pub async fn live(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
    ) -> Result<Option<ProcessRecord>, SupervisorError> {
        let this = self.clone();
        let (app, environment) = (app.clone(), environment.clone());
        blocking(move || Ok(this.inner.store.live_process(&app, &environment)?)).await
    }

    /// Whether the record's process is running now (pid + start time as recorded).
    pub fn is_running(record: &ProcessRecord) -> bool {
        match (record.pid, record.start_ticks) {
            (Some(pid), Some(ticks)) => procfs::is_same(pid, ticks),
            _ => false,
        }
    }

    /// The environment's processes, for the API.
    pub fn processes_of(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
    ) -> Result<Vec<ProcessRecord>, StoreError> {
        self.inner.store.processes_of(app, environment)
    }

    /// Whether `release` of the environment is in use by a recorded process: cleanup
    /// never removes it.
    pub fn releases_in_use(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .inner
            .store
            .processes_of(app, environment)?
            .into_iter()
            .map(|p| p.release)
            .collect())
    }

    pub fn now(&self) -> UnixMillis {
        (self.inner.clock)()
    }
}

/// Polls until `pid` is no longer the recorded process, or `timeout`. True when gone.
fn wait_gone(pid: i32, ticks: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !procfs::is_same(pid, ticks) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SupervisorError> + Send + 'static,
) -> Result<T, SupervisorError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SupervisorError::Task(e.to_string()))?
}

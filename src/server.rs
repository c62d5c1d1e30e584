//! Wiring: locks the state dir, opens the store and the logs, recovers from a previous
//! crash (deploys, then app processes), starts the HTTP server, the runner, the
//! supervisor and reconciliation, and stops them in order. Stopping never stops app
//! processes: they outlive stagehand. `stagehand serve` and the
//! end-to-end tests both start stagehand through [`start`], on a listener they bound.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use anyhow::Context as _;
use tokio::sync::watch;

use crate::config::Config;
use crate::core::time::{Clock, UnixMillis};
use crate::http::{self, AppState};
use crate::logs::LogHub;
use crate::metrics::Metrics;
use crate::pipeline::deploy::Context;
use crate::pipeline::runner::Runner;
use crate::reload::LiveConfig;
use crate::state_lock::StateLock;
use crate::store::Store;
use crate::supervisor::Supervisor;

/// A running stagehand.
pub struct Running {
    pub url: String,
    pub state: AppState,
    pub runner: Runner,
    http: ServerHandle,
    http_task: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
    runner_task: actix_web::rt::task::JoinHandle<()>,
    reconcile_task: Option<actix_web::rt::task::JoinHandle<()>>,
    checks_task: actix_web::rt::task::JoinHandle<()>,
    shutdown: watch::Sender<bool>,
    /// Released last, when everything else has stopped.
    _state_lock: StateLock,
}

/// Starts everything on `listener`. Must run inside an actix system (`actix_web::rt`).
pub async fn start(
    config: Config,
    listener: TcpListener,
    process_env: HashMap<String, String>,
    clock: Clock,
) -> anyhow::Result<Running> {
    // Every object in a mirror was hashed when its pack was received and indexed;
    // libgit2 re-hashing each one again on every read (with its collision-detecting
    // SHA-1) was 28% of checkout time here. The git CLI does not re-check on read either.
    git2::opts::strict_hash_verification(false);
    let state_dir = config.server.state_dir.clone();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating state_dir {}", state_dir.display()))?;
    let url = format!("http://{}", listener.local_addr()?);
    // First, before the store is opened or recovery repairs anything another server
    // may be in the middle of.
    let state_lock = StateLock::acquire(&state_dir, &url)?;
    let store = Store::open(&state_dir.join("stagehand.db"))?;
    let logs = Arc::new(
        LogHub::new(&state_dir.join("logs")).with_context(|| "creating the logs directory")?,
    );
    let retention = config.server.log_retention;
    let config = LiveConfig::new(config, process_env.clone());
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    // Always running: a reload may add reporting to an app that had none.
    let reporter = Some(crate::report::start(config.clone()));
    let process_env = Arc::new(process_env);
    let supervisor = Supervisor::new(
        config.clone(),
        store.clone(),
        clock.clone(),
        process_env.clone(),
        metrics.clone(),
    );
    let ctx = Context {
        config: config.clone(),
        store: store.clone(),
        logs: logs.clone(),
        clock: clock.clone(),
        cancel: cancel_rx,
        process_env,
        checkout_threads: 2,
        metrics: metrics.clone(),
        reporter,
        supervisor: supervisor.clone(),
    };
    let runner = Runner::new(ctx.clone(), cancel_tx);
    let interrupted = runner.recover().await?;
    if interrupted > 0 {
        tracing::warn!(interrupted, "deploys were interrupted by the last stop");
    }
    // After the deploys' recovery, before anything deploys: adopt the app processes
    // the last run left serving, restart the dead ones, stop interrupted candidates.
    supervisor.recover().await?;
    let state = AppState {
        config: config.clone(),
        store,
        metrics,
        clock,
        logs: logs.clone(),
        runner: Some(runner.clone()),
        intake: Arc::default(),
        supervisor: Some(supervisor.clone()),
    };
    let server = http::server(listener, state.clone(), 2)?;
    let http = server.handle();
    let http_task = actix_web::rt::spawn(server);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let checks_task = actix_web::rt::spawn(crate::pipeline::checks_gate::run(
        ctx.clone(),
        runner.clone(),
        shutdown_rx.clone(),
    ));
    // After recovery, so the first round sees what recovery left queued as busy.
    let reconcile_task = config.get().server.reconcile_interval.map(|interval| {
        let (runner, shutdown_rx) = (runner.clone(), shutdown_rx.clone());
        actix_web::rt::spawn(crate::pipeline::reconcile::run(
            ctx,
            runner,
            interval,
            shutdown_rx,
        ))
    });
    actix_web::rt::spawn(supervisor.clone().watch(shutdown_rx.clone()));
    let shutdown_rx_expiry = shutdown_rx.clone();
    let runner_task = {
        let runner = runner.clone();
        actix_web::rt::spawn(async move { runner.run(shutdown_rx).await })
    };
    actix_web::rt::spawn(crate::pipeline::expiry::run(
        config.clone(),
        state.store.clone(),
        runner.clone(),
        state.clock.clone(),
        shutdown_rx_expiry,
    ));
    actix_web::rt::spawn(prune_old(
        logs,
        state.store.clone(),
        retention,
        state.clock.clone(),
    ));
    Ok(Running {
        url,
        state,
        runner,
        http,
        http_task,
        runner_task,
        reconcile_task,
        checks_task,
        shutdown,
        _state_lock: state_lock,
    })
}

impl Running {
    /// Stops taking deliveries, lets running deploys finish within `shutdown_grace`,
    /// cancels the rest, and returns when all is down.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.http.stop(true).await;
        let _ = self.shutdown.send(true);
        if let Some(task) = self.reconcile_task {
            task.await.context("reconcile task")?;
        }
        self.runner_task.await.context("runner task")?;
        self.checks_task.await.context("checks gate task")?;
        self.http_task.await.context("HTTP server task")??;
        Ok(())
    }
}

/// The system clock, as a [`Clock`].
pub fn system_clock() -> Clock {
    Arc::new(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        UnixMillis(now)
    })
}

/// Every few hours: deletes deploy logs older than `log_retention`, and delivery
/// records as old (they only serve to recognise redeliveries, which GitHub offers for
/// days, not months). Deploy history itself is kept.
async fn prune_old(logs: Arc<LogHub>, store: Store, retention: Duration, clock: Clock) {
    loop {
        let logs2 = logs.clone();
        if let Some(cutoff) = std::time::SystemTime::now().checked_sub(retention) {
            match tokio::task::spawn_blocking(move || logs2.prune(cutoff)).await {
                Ok(Ok(n)) if n > 0 => tracing::info!(removed = n, "pruned old deploy logs"),
                Ok(Err(e)) => tracing::warn!(error = %e, "pruning deploy logs failed"),
                _ => {}
            }
        }
        let before = UnixMillis(clock().0 - retention.as_millis() as i64);
        match store.run(move |s| s.prune_deliveries(before)).await {
            Ok(n) if n > 0 => tracing::info!(removed = n, "pruned old delivery records"),
            Err(e) => tracing::warn!(error = %e, "pruning delivery records failed"),
            _ => {}
        }
        tokio::time::sleep(Duration::from_secs(6 * 3600)).await;
    }
}

/// `stagehand serve`: runs until SIGINT or SIGTERM.
pub async fn serve(config: Config, process_env: HashMap<String, String>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.server.listen)
        .with_context(|| format!("binding server.listen {}", config.server.listen))?;
    if config.server.api_token.is_none() {
        tracing::warn!(
            "{} is not set: the API refuses every request",
            config.server.api_token_env
        );
    }
    let running = start(config, listener, process_env, system_clock()).await?;
    if let Some(hangups) = crate::reload::catch_hangup() {
        actix_web::rt::spawn(crate::reload::on_hangup(
            running.state.config.clone(),
            hangups,
        ));
    }
    // On stdout, so scripts (and tests) can find the port when `listen` ends in `:0`.
    println!("stagehand listening on {}", running.url);
    shutdown_signal().await;
    tracing::info!("shutting down: no new deliveries; running deploys get the grace period");
    running.stop().await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}

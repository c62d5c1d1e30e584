//! The actix-web edge of `stagehand serve`. Handlers parse requests, authenticate them
//! ([`auth`]), call the store (hooks) or an operation ([`crate::ops`], which knows no
//! HTTP), and map every error through one table ([`error`]). Each routes module owns
//! its routes; none imports another's handlers. The front door (`front_door/`) is the
//! other HTTP server, a process of its own; elsewhere actix appears as the runtime
//! (`server.rs`, the CLI) and awc as the outgoing client.
//!
//! | route                                  | module          | auth                            |
//! |----------------------------------------|-----------------|---------------------------------|
//! | `POST /hooks/{app}`                    | [`hooks`]       | the app forge's signature/token |
//! | `/api/…` (apps, deploys, requests)     | [`api`]         | bearer token or session cookie¹ |
//! | `/api/deploys/{id}/{log,events}`       | [`stream`]      | as `/api`                       |
//! | `POST /api/deploys/{id}/cancel`        | [`cancel`]      | as `/api`                       |
//! | `/api/…/{restart,start,stop,app-log}`  | [`processes`]   | as `/api`                       |
//! | `POST /api/…/{pin,unpin}`              | [`lifecycle`]   | as `/api`                       |
//! | `/` and the other pages                | [`dashboard`]   | session cookie¹                 |
//! | `GET /healthz`                         | here            | none                            |
//! | `GET /metrics`                         | here            | none                            |
//!
//! ¹ Writes authenticated by the cookie also need the CSRF token (see [`auth`]).

pub(crate) mod api;
pub(crate) mod auth;
pub(crate) mod cancel;
pub(crate) mod dashboard;
pub(crate) mod error;
pub(crate) mod hooks;
pub mod intake_limits;
pub(crate) mod lifecycle;
pub(crate) mod processes;
pub(crate) mod stream;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};

use crate::core::time::Clock;
use crate::logs::LogHub;
use crate::metrics::Metrics;
use crate::pipeline::runner::Runner;
use crate::reload::LiveConfig;
use crate::store::Store;
use error::HttpError;
use intake_limits::IntakeLimits;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Read with `config.get()`: a snapshot, so a reload never changes a request halfway.
    pub config: LiveConfig,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    pub logs: Arc<LogHub>,
    /// Nudged after a deploy is recorded; `None` when only the HTTP side runs (tests).
    pub runner: Option<Runner>,
    /// Bounds on webhook bodies read before their signature is checked.
    pub intake: Arc<IntakeLimits>,
    /// App processes of environments that `run`; `None` when only the HTTP side runs.
    pub supervisor: Option<crate::supervisor::Supervisor>,
}

impl AppState {
    /// What the operations (`crate::ops`) need of the state, shared, not copied.
    pub fn ops(&self) -> crate::ops::Ops {
        crate::ops::Ops {
            config: self.config.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
            runner: self.runner.clone(),
        }
    }

    pub fn wake_runner(&self) {
        if let Some(runner) = &self.runner {
            runner.wake();
        }
    }
}

/// Builds the HTTP server on an already-bound listener (tests bind `127.0.0.1:0`).
/// Signals are left to the caller, which owns shutdown.
pub fn server(listener: TcpListener, state: AppState, workers: usize) -> std::io::Result<Server> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| HttpError::NotFound(e.to_string()).into()),
            )
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| HttpError::BadRequest(e.to_string()).into()),
            )
            .route("/healthz", web::get().to(healthz))
            .route("/metrics", web::get().to(metrics))
            .route("/hooks/{app}", web::post().to(hooks::receive))
            .service(api::scope())
            .configure(dashboard::routes)
            .default_service(web::to(not_found))
    })
    .workers(workers.max(1))
    // A request's head must arrive within 5 s (actix's default, stated because the hook
    // body deadline in `intake_limits` starts where this one ends); a connection that
    // is being closed gets 1 s to go.
    .client_request_timeout(Duration::from_secs(5))
    .client_disconnect_timeout(Duration::from_secs(1))
    // Per worker. Each open connection holds read buffers; past this, new connections
    // wait in the kernel's backlog instead of each taking memory (actix's default is
    // 25,000, which trickling clients can fill).
    .max_connections(2048)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    Ok(server)
}

/// `200 ok`, or `503` with why when the database file is gone, unreadable or replaced.
async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    state
        .store
        .health()
        .await
        .map_err(|e| HttpError::Unhealthy(e.to_string()))?;
    Ok(HttpResponse::Ok().content_type("text/plain").body("ok"))
}

async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let counts = state.store.deploy_counts().await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(&counts)))
}

async fn not_found() -> Result<HttpResponse, HttpError> {
    Err(HttpError::NotFound(
        "no such route: see the HTTP API in README.md".into(),
    ))
}

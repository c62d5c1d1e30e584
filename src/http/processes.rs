//! `/api/apps/<app>/environments/<env>/{restart,start,stop,app-log}`: operating an
//! environment's app process, and the `process` object `/api/apps` shows. The
//! dashboard's Restart button calls [`request_restart`], the same as the API.
//!
//! `restart` and `start` are queued like deploys (trigger `restart`): they take the
//! environment's turn, so they never race a deploy, and they are blue/green (the new
//! process answers before the old one is stopped). `stop` acts at once.

use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::json;

use maud::{Markup, html};

use super::AppState;
use super::api::{addressed, create};
use super::auth::Authorized;
use super::error::HttpError;
use crate::core::deploy::{Deploy, Trigger};
use crate::core::time::UnixMillis;
use crate::store::{NewDeploy, ProcessRecord, StoreError};
use crate::supervisor::app_log;

/// How often a following reader looks for new app output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/apps/{app}/environments/{env}/restart",
        web::post().to(restart),
    )
    .route(
        "/apps/{app}/environments/{env}/start",
        web::post().to(restart),
    )
    .route("/apps/{app}/environments/{env}/stop", web::post().to(stop))
    .route(
        "/apps/{app}/environments/{env}/app-log",
        web::get().to(app_log_route),
    );
}

/// `process` in `/api/apps`: the environment's live app process.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessView {
    pub state: String,
    pub pid: Option<i32>,
    pub port: u16,
    pub release: String,
    pub started_at: Option<String>,
    pub restarts: u32,
}

impl ProcessView {
    pub fn of(record: &ProcessRecord) -> ProcessView {
        ProcessView {
            state: record.state.to_string(),
            pid: record.pid,
            port: record.port,
            release: record.release.clone(),
            started_at: record.started_at.map(UnixMillis::rfc3339),
            restarts: record.restarts,
        }
    }
}

async fn restart(
    _: Authorized,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (app, env) = path.into_inner();
    let created = request_restart(&state, app, env).await?;
    Ok(HttpResponse::Accepted().json(json!({ "deploy": created })))
}

/// Queues a blue/green restart of the environment's live release (409 without `run`).
pub async fn request_restart(
    state: &AppState,
    app: String,
    env: String,
) -> Result<Deploy, HttpError> {
    create(state, app, env, move |_, a| {
        let runs = a
            .app
            .environments
            .get(&a.base)
            .is_some_and(|e| e.run.is_some());
        if !runs {
            return Err(HttpError::Conflict(format!(
                "`{}` has no `run`: there is no process to restart",
                a.base
            )));
        }
        Ok(NewDeploy::queued(
            a.target.clone(),
            Trigger::Restart,
            String::new(),
        ))
    })
    .await
}

async fn stop(
    _: Authorized,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (app, env) = path.into_inner();
    let supervisor = state
        .supervisor
        .clone()
        .ok_or_else(|| HttpError::Conflict("this server runs no app processes".into()))?;
    let state2 = state.get_ref().clone();
    let (app_name, env_name) = state
        .store
        .run(move |store| {
            Ok::<_, StoreError>(
                addressed(store, &state2, &app, &env)
                    .map(|a| (a.app.name.clone(), a.name().clone())),
            )
        })
        .await??;
    let stopped = supervisor
        .stop_live(&app_name, &env_name)
        .await
        .map_err(|e| HttpError::Conflict(e.to_string()))?;
    let process = supervisor
        .live(&app_name, &env_name)
        .await
        .map_err(|e| HttpError::Conflict(e.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({
        "stopped": stopped,
        "process": process.as_ref().map(ProcessView::of),
    })))
}

#[derive(serde::Deserialize)]
struct AppLogQuery {
    follow: Option<String>,
}

async fn app_log_route(
    _: Authorized,
    path: web::Path<(String, String)>,
    query: web::Query<AppLogQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (app, env) = path.into_inner();
    let state2 = state.get_ref().clone();
    let (app_name, env_name) = state
        .store
        .run(move |store| {
            Ok::<_, StoreError>(
                addressed(store, &state2, &app, &env)
                    .map(|a| (a.app.name.clone(), a.name().clone())),
            )
        })
        .await??;
    let path = app_log::path(
        &state.config.get().server.state_dir,
        app_name.as_str(),
        env_name.as_str(),
    );
    let follow = query
        .follow
        .as_deref()
        .is_some_and(|f| !matches!(f, "0" | "false" | ""));
    let read_path = path.clone();
    let (bytes, offset) = web::block(move || app_log::tail(&read_path))
        .await
        .map_err(|e| HttpError::BadRequest(e.to_string()))?
        .map_err(|e| HttpError::NotFound(format!("cannot read the app log: {e}")))?;
    let response = HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(("X-Accel-Buffering", "no"))
        .take();
    if !follow {
        let mut response = response;
        return Ok(response.body(bytes));
    }
    // The file is polled, not pushed: the app writes it directly (see app_log.rs).
    let first =
        futures_util::stream::once(async move { Ok::<_, actix_web::Error>(Bytes::from(bytes)) });
    let rest = futures_util::stream::unfold((path, offset), |(path, offset)| async move {
        loop {
            tokio::time::sleep(FOLLOW_POLL).await;
            let p = path.clone();
            let read = tokio::task::spawn_blocking(move || app_log::read_from(&p, offset)).await;
            match read {
                Ok(Ok((bytes, next))) if !bytes.is_empty() => {
                    return Some((Ok(Bytes::from(bytes)), (path, next)));
                }
                Ok(Ok((_, next))) if next < offset => {
                    // Rotated and still empty: continue from the top.
                    return Some((Ok(Bytes::new()), (path, next)));
                }
                Ok(Ok(_)) => {}
                _ => return None,
            }
        }
    });
    use futures_util::StreamExt;
    let mut response = response;
    Ok(response.streaming(first.chain(rest)))
}

/// The dashboard's process tag beside the live release: state, port, restarts.
pub(super) fn badge(process: &ProcessView) -> Markup {
    let title = format!(
        "app process: pid {}, port {}, {} restart(s)",
        process
            .pid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "none".into()),
        process.port,
        process.restarts
    );
    html! {
        span.tag data-process-state=(process.state) title=(title) {
            (process.state) " :" (process.port)
            @if process.restarts > 0 { " ↻" (process.restarts) }
        }
    }
}

/// The dashboard's Restart button (the same request as `POST …/restart`).
pub(super) fn restart_form(base: &str, csrf: &str) -> Markup {
    html! {
        form.inline method="post" action={ (base) "/restart" } {
            input type="hidden" name="csrf" value=(csrf);
            button.secondary type="submit"
                title="Start the live release's process again: the new one answers before the old one stops" { "Restart" }
        }
    }
}

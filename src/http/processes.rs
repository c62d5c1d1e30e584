//! `/api/apps/<app>/environments/<env>/{restart,start,stop,app-log}`: operating an
//! environment's app process. The dashboard's Restart button calls the same
//! [`crate::ops::deploys::request_restart`] as the API; its form and the process badge
//! are here.
//!
//! `restart` and `start` are queued like deploys (trigger `restart`): they take the
//! environment's turn, so they never race a deploy, and they are blue/green (the new
//! process answers before the old one is stopped). `stop` acts at once.

use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};

use maud::{Markup, html};

use super::AppState;
use super::auth::Authorized;
use super::error::HttpError;
use crate::api_types::{DeployAnswer, ProcessView, StopAnswer};
use crate::ops::{self, deploys, overview::process_view};
use crate::supervisor::app_log;

/// How often a following reader looks for new app output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Under `/api`.
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

async fn restart(
    _: Authorized,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (app, env) = path.into_inner();
    let created = deploys::request_restart(&state.ops(), app, env).await?;
    Ok(HttpResponse::Accepted().json(DeployAnswer {
        deploy: created.into(),
    }))
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
    let (app_name, env_name) = ops::environment(&state.ops(), app, env).await?;
    let stopped = supervisor
        .stop_live(&app_name, &env_name)
        .await
        .map_err(|e| HttpError::Conflict(e.to_string()))?;
    let process = supervisor
        .live(&app_name, &env_name)
        .await
        .map_err(|e| HttpError::Conflict(e.to_string()))?;
    Ok(HttpResponse::Ok().json(StopAnswer {
        stopped,
        process: process.as_ref().map(process_view),
    }))
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
    let (app_name, env_name) = ops::environment(&state.ops(), app, env).await?;
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
        .await?
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

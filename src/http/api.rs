//! `/api`: the read API (apps, environments, deploys, releases) and the requests a
//! person makes (deploy, rollback, promote, sync, reload). Each handler parses the
//! request, calls one operation in [`crate::ops`] (the same ones the dashboard calls)
//! and answers with JSON; authentication is [`super::auth`]'s.

use actix_web::{HttpResponse, Scope, web};
use serde::Deserialize;

use super::AppState;
use super::auth::Authorized;
use super::error::HttpError;
use crate::api_types::{
    AppsAnswer, DeployAnswer, DeployView, DeploysAnswer, ReleasesAnswer, ReloadAnswer,
};
use crate::ops::{deploys, overview, releases};
use crate::store::DeployFilter;

pub fn scope() -> Scope {
    web::scope("/api")
        .route("/apps", web::get().to(apps))
        .route("/deploys", web::get().to(list_deploys))
        .route("/deploys/{id}", web::get().to(deploy))
        .route(
            "/apps/{app}/environments/{env}/deploy",
            web::post().to(manual_deploy),
        )
        .route(
            "/apps/{app}/environments/{env}/rollback",
            web::post().to(rollback),
        )
        .route(
            "/apps/{app}/environments/{env}/promote",
            web::post().to(promote),
        )
        .route("/apps/{app}/sync", web::post().to(sync))
        .route("/reload", web::post().to(reload))
        .route(
            "/apps/{app}/environments/{env}/releases",
            web::get().to(list_releases),
        )
        .configure(super::stream::routes)
        .configure(super::cancel::routes)
        .configure(super::processes::routes)
        .configure(super::lifecycle::routes)
}

#[derive(Deserialize)]
struct DeployQuery {
    app: Option<String>,
    environment: Option<String>,
    limit: Option<usize>,
}

async fn list_deploys(
    _: Authorized,
    query: web::Query<DeployQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let query = query.into_inner();
    let filter = DeployFilter {
        app: query.app,
        environment: query.environment,
        limit: query.limit.unwrap_or(50).clamp(1, 500),
    };
    let deploys = deploys::list(&state.ops(), filter).await?;
    Ok(HttpResponse::Ok().json(DeploysAnswer {
        deploys: deploys.iter().map(DeployView::from).collect(),
    }))
}

async fn deploy(
    _: Authorized,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let deploy = deploys::find_deploy(&state.ops(), &id).await?;
    Ok(HttpResponse::Ok().json(DeployView::from(deploy)))
}

async fn apps(_: Authorized, state: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let apps = overview::overview(&state.ops()).await?;
    Ok(HttpResponse::Ok().json(AppsAnswer { apps }))
}

/// An optional JSON body: empty means `{}`.
fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, HttpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| HttpError::BadRequest(format!("body is not the expected JSON: {e}")))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
}

async fn manual_deploy(
    _: Authorized,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (app, env) = path.into_inner();
    let body: DeployBody = optional_json(&body)?;
    let created = deploys::request_deploy(&state.ops(), app, env, body.git_ref).await?;
    Ok(accepted(created))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    release: Option<String>,
    /// Roll back to a release whose own deploy failed or was rolled back.
    #[serde(default)]
    force: bool,
}

async fn rollback(
    _: Authorized,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (app, env) = path.into_inner();
    let body: RollbackBody = optional_json(&body)?;
    let created =
        deploys::request_rollback(&state.ops(), app, env, body.release, body.force).await?;
    Ok(accepted(created))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    from: Option<String>,
}

/// Deploys exactly the commit live in `from` into this environment, built with this
/// environment's own settings.
async fn promote(
    _: Authorized,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (app, env) = path.into_inner();
    let body: PromoteBody = optional_json(&body)?;
    let from = body.from.ok_or_else(|| {
        HttpError::BadRequest("say where to promote from: {\"from\": \"staging\"}".into())
    })?;
    let created = deploys::request_promote(&state.ops(), app, env, from).await?;
    Ok(accepted(created))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SyncBody {
    from: Option<String>,
    to: Option<String>,
    #[serde(default)]
    force: bool,
}

/// Copies runtime data downwards (see [`deploys::request_sync`]).
async fn sync(
    _: Authorized,
    app: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let body: SyncBody = optional_json(&body)?;
    let (Some(from), Some(to)) = (body.from, body.to) else {
        return Err(HttpError::BadRequest(
            "say what to copy: {\"from\": \"production\", \"to\": \"staging\"}".into(),
        ));
    };
    let created =
        deploys::request_sync(&state.ops(), app.into_inner(), from, to, body.force).await?;
    Ok(accepted(created))
}

/// The releases on disk, newest first, with the live one and the rollback target marked.
async fn list_releases(
    _: Authorized,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (app, env) = path.into_inner();
    let list = releases::list(&state.ops(), app, env).await?;
    Ok(HttpResponse::Ok().json(ReleasesAnswer { releases: list }))
}

/// Reads the config file again: `200 {"changes": […]}`, or `409` with every problem
/// (the running config stays). See `reload.rs`.
async fn reload(_: Authorized, state: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let changes = crate::reload::reload_and_log(&state.config)
        .await
        .map_err(|e| HttpError::Conflict(e.to_string()))?;
    Ok(HttpResponse::Ok().json(ReloadAnswer {
        reloaded: true,
        changes,
    }))
}

/// `202` with the deploy just recorded.
fn accepted(created: crate::core::deploy::Deploy) -> HttpResponse {
    HttpResponse::Accepted().json(DeployAnswer {
        deploy: created.into(),
    })
}

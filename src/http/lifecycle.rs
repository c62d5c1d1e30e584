//! `POST /api/apps/<app>/environments/<env>/{pin,unpin}`: a pinned preview never
//! expires (`expire_after`). Only temporary environments are pinned: fixed ones
//! never expire anyway (409).

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::api::{Authorized, addressed};
use super::error::HttpError;
use crate::store::StoreError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/apps/{app}/environments/{env}/pin", web::post().to(pin))
        .route(
            "/apps/{app}/environments/{env}/unpin",
            web::post().to(unpin),
        );
}

async fn pin(
    _: Authorized,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    set(path.into_inner(), state, true).await
}

async fn unpin(
    _: Authorized,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    set(path.into_inner(), state, false).await
}

async fn set(
    (app, env): (String, String),
    state: web::Data<AppState>,
    pinned: bool,
) -> Result<HttpResponse, HttpError> {
    let app_state = state.get_ref().clone();
    let now = (state.clock)();
    let changed = state
        .store
        .run(move |store| {
            Ok::<_, StoreError>(
                addressed(store, &app_state, &app, &env)
                    .map(|a| store.set_pinned(&a.app.name, a.name(), pinned, now)),
            )
        })
        .await???;
    if !changed {
        return Err(HttpError::Conflict(
            "only temporary environments are pinned: fixed ones never expire".into(),
        ));
    }
    Ok(HttpResponse::Ok().json(json!({ "pinned": pinned })))
}

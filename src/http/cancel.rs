//! `POST /api/deploys/{id}/cancel`: ends a deploy that has not started (`queued`, or
//! `waiting` for its checks) as `cancelled`. A running deploy is not stopped from here
//! (`409`): its steps are killed only on shutdown, so nothing is left half switched.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::api::find_deploy;
use super::auth::Authorized;
use super::error::HttpError;
use crate::core::deploy::DeployStatus;

pub async fn cancel(
    _: Authorized,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let deploy = find_deploy(&state, &id).await?;
    let id = deploy.id;
    let now = (state.clock)();
    let after = state
        .store
        .run(move |s| s.end_unstarted(id, DeployStatus::Cancelled, "cancelled by request", now))
        .await?
        .unwrap_or(deploy);
    match after.status {
        DeployStatus::Cancelled if after.reason.as_deref() == Some("cancelled by request") => {
            Ok(HttpResponse::Ok().json(json!({ "deploy": after })))
        }
        DeployStatus::Running => Err(HttpError::Conflict(format!(
            "deploy {id} is running: only a queued or waiting deploy can be cancelled"
        ))),
        status => Err(HttpError::Conflict(format!(
            "deploy {id} already ended ({status})"
        ))),
    }
}

//! `POST /api/deploys/{id}/cancel`: ends a deploy that has not started (`queued`, or
//! `waiting` for its checks) as `cancelled` ([`crate::ops::deploys::cancel`]). A running
//! deploy is not stopped from here (`409`): its steps are killed only on shutdown, so
//! nothing is left half switched.

use actix_web::{HttpResponse, web};

use super::AppState;
use super::auth::Authorized;
use super::error::HttpError;
use crate::api_types::DeployAnswer;
use crate::ops::deploys;

/// Under `/api`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/deploys/{id}/cancel", web::post().to(cancel));
}

async fn cancel(
    _: Authorized,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let cancelled = deploys::cancel(&state.ops(), &id).await?;
    Ok(HttpResponse::Ok().json(DeployAnswer {
        deploy: cancelled.into(),
    }))
}

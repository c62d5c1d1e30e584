//! `POST /api/apps/<app>/environments/<env>/{pin,unpin}`: a pinned preview never
//! expires (`expire_after`). Only temporary environments are pinned: fixed ones
//! never expire anyway (409). The dashboard's Pin/Unpin button calls the same
//! [`crate::ops::lifecycle::set_pin`] as the API; its form is here.

use actix_web::{HttpResponse, web};
use maud::{Markup, html};

use super::AppState;
use super::auth::Authorized;
use super::error::HttpError;
use crate::api_types::PinAnswer;
use crate::ops::lifecycle::set_pin;

/// Under `/api`.
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
    set_pin(&state.ops(), app, env, pinned).await?;
    Ok(HttpResponse::Ok().json(PinAnswer { pinned }))
}

/// The dashboard's Pin / Unpin button for a preview; `base`: its dashboard path.
pub fn pin_form(base: &str, csrf: &str, pinned: bool) -> Markup {
    let (action, label, title) = if pinned {
        (
            "unpin",
            "Unpin",
            "Let it expire again after expire_after without a deploy",
        )
    } else {
        ("pin", "Pin", "Keep it: a pinned preview never expires")
    };
    html! {
        form.inline method="post" action={ (base) "/" (action) } {
            input type="hidden" name="csrf" value=(csrf);
            button.secondary type="submit" title=(title) { (label) }
        }
    }
}

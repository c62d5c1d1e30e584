//! `POST /hooks/{app}`: a GitHub delivery, from raw bytes to a recorded intent.
//!
//! # Security
//!
//! The order is the defence: find the app (its secret), refuse a declared
//! `Content-Length` over the cap and a missing or malformed signature header before a
//! byte of body is read, read the body within [`intake_limits`]'s bounds (bytes held at
//! once, requests in flight, a deadline) while hashing it, check the HMAC, and only then
//! decode anything. A request that fails the signature is counted and forgotten:
//! nothing reaches the store.
//!
//! [`intake_limits`]: super::intake_limits

use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::error::HttpError;
use crate::core::deploy::DeployStatus;
use crate::core::event::{Event, json_body, parse_event};
use crate::core::ids::AppName;
use crate::core::signature;
use crate::intake;
use crate::metrics::DeliveryResult;
use crate::store::{NewDelivery, Recorded};

pub use super::intake_limits::MAX_BODY;

pub async fn receive(
    req: HttpRequest,
    app: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let result = handle(&req, &app, body, &state).await;
    state.metrics.delivery(match &result {
        Ok((_, outcome)) => *outcome,
        Err(HttpError::NotFound(_)) => DeliveryResult::UnknownApp,
        Err(HttpError::TooLarge { .. }) => DeliveryResult::TooLarge,
        Err(HttpError::Busy(_)) => DeliveryResult::Busy,
        Err(HttpError::TimedOut(_)) => DeliveryResult::TimedOut,
        Err(HttpError::Unauthorized(_) | HttpError::Signature(_)) => DeliveryResult::Unauthorized,
        Err(HttpError::BadRequest(_)) => DeliveryResult::BadRequest,
        Err(HttpError::Forbidden(_)) => DeliveryResult::Forbidden,
        Err(HttpError::Conflict(_)) => DeliveryResult::BadRequest,
        Err(HttpError::Store(_) | HttpError::Unhealthy(_)) => DeliveryResult::Error,
    });
    result.map(|(response, _)| response)
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn handle(
    req: &HttpRequest,
    app: &str,
    body: web::Payload,
    state: &AppState,
) -> Result<(HttpResponse, DeliveryResult), HttpError> {
    let unknown = || {
        HttpError::NotFound(format!(
            "unknown app {app:?}: the URL must be /hooks/<app> of an app in the config"
        ))
    };
    let app_name = AppName::parse(app).map_err(|_| unknown())?;
    let config = state.config.get();
    let app_config = config.apps.get(&app_name).ok_or_else(unknown)?;

    let declared = header(req, CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(HttpError::TooLarge { limit: MAX_BODY });
    }
    let signature_header = req
        .headers()
        .get("x-hub-signature-256")
        .map(|v| v.as_bytes());
    let mut verifier =
        signature::Verifier::new(app_config.secret.expose().as_bytes(), signature_header)?;
    // Held until the answer: the body's bytes count against the pool while parsed too.
    let mut admission = state.intake.admit(declared)?;
    let body = admission
        .read_body(body, |piece| verifier.update(piece))
        .await?;
    verifier.finish()?;

    let event_name = header(req, "x-github-event")
        .filter(|e| !e.is_empty())
        .ok_or_else(|| HttpError::BadRequest("missing X-GitHub-Event header".into()))?;
    let delivery_id = header(req, "x-github-delivery")
        .filter(|d| !d.is_empty() && d.len() <= 100)
        .ok_or_else(|| {
            HttpError::BadRequest("missing or overlong X-GitHub-Delivery header".into())
        })?;
    let hook_id = header(req, "x-github-hook-id").unwrap_or_default();
    let json = json_body(header(req, CONTENT_TYPE.as_str()), &body)
        .map_err(|e| HttpError::BadRequest(e.to_string()))?;
    let event = parse_event(event_name, &json).map_err(|e| HttpError::BadRequest(e.to_string()))?;
    if let Some(repository) = event.repository()
        && !repository.eq_ignore_ascii_case(&app_config.github)
    {
        return Err(HttpError::Forbidden(format!(
            "delivery is from repository {repository:?}, but app `{app_name}` deploys {:?}",
            app_config.github
        )));
    }

    let intent = intake::decide(app_config, &event);
    let delivery = NewDelivery {
        app: app_name,
        delivery_id: delivery_id.to_owned(),
        hook_id: hook_id.to_owned(),
        event: event_name.to_owned(),
        received_at: (state.clock)(),
    };
    let recorded = state
        .store
        .run(move |s| s.record_delivery(&delivery, intent))
        .await?;
    // Start a queued deploy now, not at the runner's next poll (up to 2 s later).
    if let Recorded::Deploy {
        deploy,
        duplicate: false,
    } = &recorded
        && deploy.status == DeployStatus::Queued
    {
        state.wake_runner();
    }
    Ok(answer(recorded, &event))
}

fn answer(recorded: Recorded, event: &Event) -> (HttpResponse, DeliveryResult) {
    let with_duplicate = |mut value: serde_json::Value, duplicate: bool| {
        if duplicate {
            value["duplicate"] = json!(true);
        }
        value
    };
    match recorded {
        Recorded::Ping { duplicate } => {
            let hook_id = match event {
                Event::Ping { hook_id, .. } => *hook_id,
                _ => None,
            };
            let body = with_duplicate(json!({ "pong": true, "hook_id": hook_id }), duplicate);
            (
                HttpResponse::Ok().json(body),
                if duplicate {
                    DeliveryResult::Duplicate
                } else {
                    DeliveryResult::Ping
                },
            )
        }
        Recorded::Ignored { reason, duplicate } => {
            let body = with_duplicate(json!({ "ignored": reason }), duplicate);
            (
                HttpResponse::Ok().json(body),
                if duplicate {
                    DeliveryResult::Duplicate
                } else {
                    DeliveryResult::Ignored
                },
            )
        }
        Recorded::Deploy { deploy, duplicate } => {
            let body = with_duplicate(json!({ "deploy": deploy }), duplicate);
            if duplicate {
                (HttpResponse::Ok().json(body), DeliveryResult::Duplicate)
            } else {
                (
                    HttpResponse::Accepted().json(body),
                    DeliveryResult::Accepted,
                )
            }
        }
    }
}

//! `POST /hooks/{app}`: a forge's delivery, from raw bytes to a recorded intent. Which
//! forge, and so which headers and body shape, comes from the app's config; the forge
//! rules themselves live in `core::forge`.
//!
//! # Security
//!
//! The order is the defence: find the app (its secret), refuse a declared
//! `Content-Length` over the cap and a missing or malformed signature (or token) header
//! before a byte of body is read, read the body within [`intake_limits`]'s bounds (bytes
//! held at once, requests in flight, a deadline), check the forge's signature over the
//! raw bytes, and only then decode anything. A request that fails the signature is
//! counted and forgotten: nothing reaches the store.
//!
//! [`intake_limits`]: super::intake_limits

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::error::HttpError;
use crate::core::deploy::DeployStatus;
use crate::core::event::Event;
use crate::core::forge;
use crate::core::ids::AppName;
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
        Err(
            HttpError::Store(_)
            | HttpError::Unhealthy(_)
            | HttpError::Internal(_)
            | HttpError::Ops(_),
        ) => DeliveryResult::Error,
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
    let headers = RequestHeaders(req);
    let forge = app_config.forge;
    forge::precheck(forge, &headers).map_err(auth_error)?;
    // Held until the answer: the body's bytes count against the pool while parsed too.
    let mut admission = state.intake.admit(declared)?;
    let body = admission.read_body(body, |_| {}).await?;
    forge::authenticate(
        forge,
        app_config.secret.expose().as_bytes(),
        &headers,
        &body,
    )
    .map_err(auth_error)?;

    let identity = forge::identify(forge, &headers, &body)
        .map_err(|e| HttpError::BadRequest(e.to_string()))?;
    if crate::core::checks::is_check_event(forge, &identity.event) {
        return check_event(state, app_config, &identity.event, &body).await;
    }
    let events = forge::decode(
        forge,
        &identity.event,
        header(req, CONTENT_TYPE.as_str()),
        &body,
    )
    .map_err(|e| HttpError::BadRequest(e.to_string()))?;
    for repository in events.iter().filter_map(Event::repository) {
        if !repository.eq_ignore_ascii_case(&app_config.repository) {
            return Err(HttpError::Forbidden(format!(
                "delivery is from repository {repository:?}, but app `{app_name}` deploys {:?}",
                app_config.repository
            )));
        }
    }

    let mut answers = Vec::with_capacity(events.len());
    for (index, event) in events.into_iter().enumerate() {
        let intent = intake::decide(app_config, &event);
        let delivery = NewDelivery {
            app: app_name.clone(),
            delivery_id: change_delivery_id(&identity.delivery_id, index),
            hook_id: identity.hook_id.clone(),
            event: identity.event.clone(),
            received_at: (state.clock)(),
        };
        let recorded = state
            .store
            .record_delivery_grouped(delivery, intent)
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
        answers.push(answer(recorded, &event));
    }
    Ok(combine(answers))
}

/// A check or status result (`require_checks`): stored for the checks gate, which is
/// nudged; answered `200 {"checks": <results it carried>}` (and `ignored` when none).
async fn check_event(
    state: &AppState,
    app: &crate::config::AppConfig,
    event: &str,
    body: &[u8],
) -> Result<(HttpResponse, DeliveryResult), HttpError> {
    use crate::pipeline::checks_gate::{RecordError, record_event};
    let now = (state.clock)();
    let count = record_event(
        &state.store,
        &app.name,
        &app.repository,
        app.forge,
        event,
        body,
        now,
    )
    .await
    .map_err(|e| match e {
        RecordError::Store(e) => HttpError::from(e),
        e @ RecordError::OtherRepository { .. } => HttpError::Forbidden(e.to_string()),
        e @ RecordError::Body(_) => HttpError::BadRequest(e.to_string()),
    })?;
    if let Some(runner) = &state.runner {
        runner.wake_checks();
    }
    let body = if count == 0 {
        json!({ "checks": 0, "ignored": format!("`{event}` carried no check result") })
    } else {
        json!({ "checks": count })
    };
    Ok((HttpResponse::Ok().json(body), DeliveryResult::Ignored))
}

/// Each ref change of a multi-change delivery is recorded as its own delivery, so a
/// redelivery finds every one of them: the first keeps the forge's id, later ones get
/// `#<n>` appended.
fn change_delivery_id(delivery_id: &str, index: usize) -> String {
    if index == 0 {
        delivery_id.to_owned()
    } else {
        format!("{delivery_id}#{index}")
    }
}

fn auth_error(error: forge::AuthError) -> HttpError {
    match error {
        forge::AuthError::Github(e) => HttpError::Signature(e),
        other => HttpError::Unauthorized(other.to_string()),
    }
}

/// Header lookup over an actix request, for the forge modules.
struct RequestHeaders<'a>(&'a HttpRequest);

impl forge::Headers for RequestHeaders<'_> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.headers().get(name).map(|v| v.as_bytes())
    }
}

/// One change answers exactly as a GitHub delivery always has. Several (a Bitbucket
/// push of many refs) answer `{"deploys": [...], "ignored": [...], "deploy": <first>}`:
/// 202 when any change queued a new deploy, and `duplicate` only when all were repeats.
fn combine(mut answers: Vec<Answer>) -> (HttpResponse, DeliveryResult) {
    if answers.len() == 1 {
        let (status, body, result) = answers.remove(0);
        return (HttpResponse::build(status).json(body), result);
    }
    let deploys: Vec<&serde_json::Value> = answers
        .iter()
        .filter_map(|(_, b, _)| b.get("deploy"))
        .collect();
    let ignored: Vec<&serde_json::Value> = answers
        .iter()
        .filter_map(|(_, b, _)| b.get("ignored"))
        .collect();
    let accepted = answers
        .iter()
        .any(|(_, _, r)| *r == DeliveryResult::Accepted);
    let all_duplicates = answers
        .iter()
        .all(|(_, _, r)| *r == DeliveryResult::Duplicate);
    let mut body = json!({ "deploys": deploys, "ignored": ignored });
    if let Some(first) = deploys.first() {
        body["deploy"] = (*first).clone();
    }
    if all_duplicates {
        body["duplicate"] = json!(true);
    }
    let result = if accepted {
        DeliveryResult::Accepted
    } else if all_duplicates {
        DeliveryResult::Duplicate
    } else {
        DeliveryResult::Ignored
    };
    let status = if accepted {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    (HttpResponse::build(status).json(body), result)
}

type Answer = (StatusCode, serde_json::Value, DeliveryResult);

fn answer(recorded: Recorded, event: &Event) -> Answer {
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
                StatusCode::OK,
                body,
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
                StatusCode::OK,
                body,
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
                (StatusCode::OK, body, DeliveryResult::Duplicate)
            } else {
                (StatusCode::ACCEPTED, body, DeliveryResult::Accepted)
            }
        }
    }
}

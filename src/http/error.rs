//! The one table from errors to HTTP statuses, for every route (the dashboard's pages
//! take their status from here too). Every error answer is JSON `{"error": "..."}`
//! whose text says what was wrong and what to do.
//!
//! Failures that are the server's own (the store, a lost blocking task, missing state,
//! a directory it cannot read) are `500` and logged; they are never blamed on the
//! request as a 4xx.

use actix_web::error::BlockingError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::core::signature::SignatureError;
use crate::ops::OpsError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Signature(#[from] SignatureError),
    #[error("{0}")]
    Forbidden(String),
    /// The request is valid but the state does not allow it now (nothing live to promote).
    #[error("{0}")]
    Conflict(String),
    #[error("body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// Intake is at one of its limits: `503` with `Retry-After`.
    #[error("{0}")]
    Busy(String),
    /// `/healthz`: the server cannot do its job (the database is gone or damaged).
    #[error("{0}")]
    Unhealthy(String),
    #[error("the body did not arrive within {}s", .0.as_secs())]
    TimedOut(std::time::Duration),
    #[error("{0}")]
    Store(#[from] StoreError),
    /// An operation's answer (`crate::ops`): its kind decides the status below.
    #[error("{0}")]
    Ops(#[from] OpsError),
    /// The server's own fault (a lost blocking task, missing state): `500`, logged.
    #[error("{0}")]
    Internal(String),
}

/// `web::block`'s only failure: the blocking pool lost the task.
impl From<BlockingError> for HttpError {
    fn from(e: BlockingError) -> HttpError {
        HttpError::Internal(format!("a blocking task failed: {e}"))
    }
}

impl HttpError {
    /// The server's own failure, logged when answered.
    fn is_internal(&self) -> bool {
        self.status_code() == StatusCode::INTERNAL_SERVER_ERROR
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        match self {
            HttpError::NotFound(_) | HttpError::Ops(OpsError::NotFound(_)) => StatusCode::NOT_FOUND,
            HttpError::BadRequest(_) | HttpError::Ops(OpsError::Invalid(_)) => {
                StatusCode::BAD_REQUEST
            }
            HttpError::Unauthorized(_) | HttpError::Signature(_) => StatusCode::UNAUTHORIZED,
            HttpError::Forbidden(_) | HttpError::Ops(OpsError::Refused(_)) => StatusCode::FORBIDDEN,
            HttpError::Conflict(_) | HttpError::Ops(OpsError::Conflict(_)) => StatusCode::CONFLICT,
            HttpError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Busy(_) | HttpError::Unhealthy(_) => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            HttpError::Store(_)
            | HttpError::Internal(_)
            | HttpError::Ops(OpsError::Store(_) | OpsError::Internal(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.is_internal() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let HttpError::Busy(_) = self {
            response.insert_header(("Retry-After", "5"));
        }
        // The rest of a body refused while arriving is not worth reading: drop the
        // connection rather than drain it.
        if let HttpError::TooLarge { .. } | HttpError::Busy(_) | HttpError::TimedOut(_) = self {
            response.force_close();
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn text() -> String {
        "why".into()
    }

    #[test]
    fn every_error_has_its_status() {
        let store = || StoreError::Task("lost".into());
        let cases: Vec<(HttpError, u16)> = vec![
            (HttpError::NotFound(text()), 404),
            (HttpError::BadRequest(text()), 400),
            (HttpError::Unauthorized(text()), 401),
            (HttpError::Signature(SignatureError::Missing), 401),
            (HttpError::Forbidden(text()), 403),
            (HttpError::Conflict(text()), 409),
            (HttpError::TooLarge { limit: 1 }, 413),
            (HttpError::Busy(text()), 503),
            (HttpError::Unhealthy(text()), 503),
            (HttpError::TimedOut(Duration::from_secs(1)), 408),
            (HttpError::Store(store()), 500),
            (HttpError::Internal(text()), 500),
            (OpsError::NotFound(text()).into(), 404),
            (OpsError::Invalid(text()).into(), 400),
            (OpsError::Refused(text()).into(), 403),
            (OpsError::Conflict(text()).into(), 409),
            (OpsError::Store(store()).into(), 500),
            (OpsError::Internal(text()).into(), 500),
        ];
        for (error, status) in cases {
            assert_eq!(error.status_code().as_u16(), status, "{error:?}");
        }
    }

    /// The three the review found blamed on the request: a lost blocking task was a
    /// 400, missing server state a 401, an unreadable releases directory a 404.
    #[test]
    fn the_server_s_own_failures_are_500() {
        let lost = actix_web::rt::System::new().block_on(async {
            let panicked = actix_web::web::block(|| panic!("lost")).await;
            panicked.map_err(HttpError::from)
        });
        let cases = [
            lost.err().map(|e| e.status_code().as_u16()),
            Some(HttpError::Internal("server misconfigured: no state".into()))
                .map(|e| e.status_code().as_u16()),
            Some(HttpError::from(OpsError::Internal(
                "cannot list releases: permission denied".into(),
            )))
            .map(|e| e.status_code().as_u16()),
        ];
        assert_eq!(cases, [Some(500), Some(500), Some(500)]);
    }

    #[test]
    fn error_answers_are_json_with_the_text() {
        let response = HttpError::from(OpsError::Conflict("nothing live".into())).error_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let busy = HttpError::Busy(text()).error_response();
        assert_eq!(
            busy.headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok()),
            Some("5")
        );
    }
}

//! The one table from errors to HTTP statuses. Every error answer is JSON
//! `{"error": "..."}` whose text says what was wrong and what to do.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::core::signature::SignatureError;
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
    /// The server's own fault (a lost blocking task, missing state): `500`, logged.
    #[error("{0}")]
    Internal(String),
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        match self {
            HttpError::NotFound(_) => StatusCode::NOT_FOUND,
            HttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HttpError::Unauthorized(_) | HttpError::Signature(_) => StatusCode::UNAUTHORIZED,
            HttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            HttpError::Conflict(_) => StatusCode::CONFLICT,
            HttpError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Busy(_) | HttpError::Unhealthy(_) => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            HttpError::Store(_) | HttpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            HttpError::Store(e) => tracing::error!(error = %e, "request failed on the store"),
            HttpError::Internal(e) => tracing::error!(error = %e, "request failed"),
            _ => {}
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

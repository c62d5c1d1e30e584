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
    #[error("{0}")]
    Store(#[from] StoreError),
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
            HttpError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let HttpError::Store(e) = self {
            tracing::error!(error = %e, "request failed on the store");
        }
        HttpResponse::build(self.status_code())
            .json(serde_json::json!({ "error": self.to_string() }))
    }
}

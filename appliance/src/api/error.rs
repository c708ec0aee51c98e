//! The API's error type: every failure a handler can return, and its one mapping to an
//! HTTP status and a JSON body `{"code":"snake_case","message":"..."}`.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials, or ones that are not valid.
    #[error("authentication required")]
    Unauthorized,
    /// Wrong user name or password.
    #[error("wrong user name or password")]
    BadCredentials,
    /// Too many failed logins from this client.
    #[error("too many failed logins; try again in {} s", retry_after.as_secs().max(1))]
    TooManyRequests {
        /// Time until the next attempt is accepted.
        retry_after: Duration,
    },
    /// The request body is not what the call expects.
    #[error("{0}")]
    BadRequest(String),
    /// No such call or resource.
    #[error("no such resource")]
    NotFound,
    /// The call exists with another method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Something failed inside the appliance.
    #[error("{0}")]
    Internal(String),
    /// A failure of the core, the repository or a setting, with its own stable code
    /// (built in `api::failure`, the one mapping from those errors to HTTP).
    #[error("{message}")]
    Failed {
        /// The HTTP status.
        status: StatusCode,
        /// The stable code.
        code: &'static str,
        /// A sentence for people.
        message: String,
    },
}

/// The JSON body of every error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable snake_case code scripts can match on.
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::BadCredentials => StatusCode::UNAUTHORIZED,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Failed { status, .. } => *status,
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::BadCredentials => "bad_credentials",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Internal(_) => "internal_error",
            ApiError::Failed { code, .. } => code,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            code: self.code(),
            message: self.to_string(),
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized | ApiError::BadCredentials => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after } => {
                let secs = retry_after.as_secs().max(1);
                if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, value);
                }
            }
            _ => {}
        }
        response
    }
}

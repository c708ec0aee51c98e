//! The one mapping from the core's, the repository's and the settings' errors to HTTP
//! ([`status_of`]), and extractors whose rejections are JSON [`ApiError`]s (malformed
//! bodies, paths and queries are 400s with `{"code","message"}`, never plain text).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use snapcore::{chain, DeviceError, JobError, SessionError};

use super::ApiError;
use crate::serve::certificate::CertificateError;
use crate::services::config_disk::ConfigDiskError;
use crate::services::ops::OpError;
use crate::services::target::TargetError;
use crate::services::tokens::TokenError;

/// The HTTP status of a stable error code.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "unknown_device" | "job_not_found" | "snapshot_not_found" | "not_found"
        | "token_not_found" | "file_not_found" | "export_not_found" => StatusCode::NOT_FOUND,
        "invalid_argument"
        | "no_devices"
        | "duplicate_device"
        | "ambiguous_device"
        | "bad_request"
        | "wrong_password"
        | "target_no_filesystem"
        | "target_unsupported_filesystem"
        | "target_partitioned"
        | "target_not_a_directory"
        | "target_unusable"
        | "export_source_unusable"
        | "invalid_certificate" => StatusCode::BAD_REQUEST,
        "storage_is_snapshotted"
        | "storage_in_use"
        | "storage_has_data"
        | "scratch_too_small"
        | "storage_unsuitable"
        | "device_busy"
        | "destination_in_use"
        | "snapshot_owned_by_job"
        | "repository_locked"
        | "already_exists"
        | "too_many_tokens"
        | "too_many_exports"
        | "exported"
        | "config_disk_exists"
        | "target_full"
        | "target_mount_failed"
        | "target_not_writable"
        | "invalid_state"
        | "cancelled"
        | "job_not_finished" => StatusCode::CONFLICT,
        "module_not_loaded" | "shutting_down" | "nbd_not_running" | "https_not_served" => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error with a stable code and the full message.
pub fn failed(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Failed {
        status: status_of(code),
        code,
        message: message.into(),
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        failed(e.code(), chain(&e))
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        failed(e.code(), chain(&e))
    }
}

impl From<DeviceError> for ApiError {
    fn from(e: DeviceError) -> Self {
        failed(e.code(), chain(&e))
    }
}

impl From<repo::RepoError> for ApiError {
    fn from(e: repo::RepoError) -> Self {
        JobError::Repo(e).into()
    }
}

impl From<TargetError> for ApiError {
    fn from(e: TargetError) -> Self {
        match e {
            TargetError::Device(d) => d.into(),
            TargetError::Repo(r) => r.into(),
            other => failed(other.code(), chain(&other)),
        }
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Job(j) => j.into(),
            OpError::Target(t) => t.into(),
            OpError::Export(x) => x.into(),
            OpError::Invalid { .. } => failed("invalid_argument", e.to_string()),
            OpError::NoFile { .. } => failed("file_not_found", e.to_string()),
            OpError::Io { .. } => failed("target_io", chain(&e)),
        }
    }
}

impl From<ConfigDiskError> for ApiError {
    fn from(e: ConfigDiskError) -> Self {
        match e {
            ConfigDiskError::Device(d) => d.into(),
            other => failed(other.code(), other.to_string()),
        }
    }
}

impl From<CertificateError> for ApiError {
    fn from(e: CertificateError) -> Self {
        failed(e.code(), e.to_string())
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        failed(e.code(), e.to_string())
    }
}

/// Runs blocking core work off the async threads.
pub async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("a worker task failed: {e}")))?
}

/// `Json<T>` whose rejection is a JSON 400.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    ApiError::BadRequest(rejection.body_text())
}

/// `Path<T>` whose rejection is a JSON 400.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    ApiError::BadRequest(rejection.body_text())
}

/// `Query<T>` whose rejection is a JSON 400.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::BadRequest(rejection.body_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_never_a_server_error() {
        for code in [
            "unknown_device",
            "invalid_argument",
            "no_devices",
            "storage_has_data",
            "job_not_found",
            "snapshot_not_found",
            "target_no_filesystem",
        ] {
            assert!(status_of(code).is_client_error(), "{code}");
        }
        assert_eq!(
            status_of("module_not_loaded"),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status_of("kernel_error"), StatusCode::INTERNAL_SERVER_ERROR);
        let e: ApiError = JobError::NotFound(snapcore::jobs::JobId(7)).into();
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert_eq!(e.code(), "job_not_found");
    }
}

//! NBD exports: `GET/POST /api/v1/exports`, `GET/DELETE /api/v1/exports/{name}`, and the
//! CA certificate NBD clients verify the server with (`GET /api/v1/nbd/ca-certificate`).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::failure::{blocking, failed, ApiJson, ApiPath};
use super::{ApiError, AppState};
use crate::api::error::ErrorBody;
use crate::services::exports::{self, ExportError, ExportSpec, ExportView};

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> Self {
        failed(e.code(), e.to_string())
    }
}

/// Every export, with its connected clients.
#[utoipa::path(get, path = "/api/v1/exports", tag = "exports",
    responses((status = 200, body = Vec<ExportView>), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Json<Vec<ExportView>> {
    Json(exports::views(&state.services))
}

/// Creates an export. Its source must open now: a disk not in use in the appliance, a
/// taken snapshot holding the disk, or a backup in the repository. Snapshots and backups
/// are always read-only; `allow` needs at least one address or network; `tls` defaults
/// to true.
#[utoipa::path(post, path = "/api/v1/exports", tag = "exports",
    request_body = ExportSpec,
    responses((status = 201, body = ExportView), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(spec): ApiJson<ExportSpec>,
) -> Result<(StatusCode, Json<ExportView>), ApiError> {
    let services = state.services.clone();
    let view = blocking(move || Ok(exports::create(&services, spec)?)).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One export.
#[utoipa::path(get, path = "/api/v1/exports/{name}", tag = "exports",
    params(("name" = String, Path, description = "the export's name")),
    responses((status = 200, body = ExportView), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ExportView>, ApiError> {
    let spec = state.services.exports.get(&name)?;
    Ok(Json(exports::view(&state.services, spec)))
}

/// Removes an export; requests of clients still connected to it fail from now on.
#[utoipa::path(delete, path = "/api/v1/exports/{name}", tag = "exports",
    params(("name" = String, Path, description = "the export's name")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let services = state.services.clone();
    blocking(move || {
        services.exports.remove(&name)?;
        services.events.record(
            crate::services::Level::Info,
            "exports",
            format!("NBD export {name} removed"),
        );
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The CA certificate (PEM) that signs the NBD server's certificate: save it as
/// `ca-cert.pem` in the client's certificate directory (qemu `tls-creds-x509`, libnbd
/// `tls-certificates`).
#[utoipa::path(get, path = "/api/v1/nbd/ca-certificate", tag = "exports",
    responses((status = 200, description = "PEM certificate", content_type = "application/x-pem-file"),
        (status = 503, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn ca_certificate(State(state): State<AppState>) -> Result<Response, ApiError> {
    let pem = state.services.nbd_ca.get().cloned().ok_or_else(|| {
        failed(
            "nbd_not_running",
            "the NBD server is not running in this process",
        )
    })?;
    let mut response = pem.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-pem-file"),
    );
    Ok(response)
}

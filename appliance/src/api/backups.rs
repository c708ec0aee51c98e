//! The backup catalogue of the target's repository, and the jobs that work on it: backup
//! (`POST /api/v1/backups`), restore, verify, export; deleting a backup.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use snapcore::jobs::{ExportFormat, JobId};

use super::failure::{blocking, ApiJson, ApiPath};
use super::model::{
    BackupModeRequest, BackupRequest, BackupView, CatalogueView, ExportFormatRequest,
    ExportRequest, JobView, RestoreDestination, RestoreRequest, UnreadableView,
};
use super::{ApiError, AppState};
use crate::api::error::ErrorBody;
use crate::services::ops::RestoreTo;

/// The job record of a job just started.
fn started(state: &AppState, id: JobId) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let info = state.services.jobs.get(id)?;
    Ok((StatusCode::ACCEPTED, Json(JobView::from(&info))))
}

/// Every backup in the repository, oldest first.
#[utoipa::path(get, path = "/api/v1/backups", tag = "backups",
    responses((status = 200, body = CatalogueView), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<CatalogueView>, ApiError> {
    let services = state.services.clone();
    let (catalogue, resolved) = blocking(move || Ok(services.catalogue()?)).await?;
    Ok(Json(CatalogueView {
        repository: resolved.repo_dir().display().to_string(),
        backups: catalogue.backups.iter().map(BackupView::from).collect(),
        unreadable: catalogue
            .unreadable
            .iter()
            .map(|u| UnreadableView {
                backup_id: u.id.clone(),
                error: snapcore::chain(&u.error),
            })
            .collect(),
    }))
}

/// Starts a backup of a device: snapshot, then incremental on the newest backup of the same
/// change-tracking generation, or full.
#[utoipa::path(post, path = "/api/v1/backups", tag = "backups", request_body = BackupRequest,
    responses((status = 202, body = JobView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<BackupRequest>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let services = state.services.clone();
    let id = blocking(move || {
        let full = matches!(request.mode, BackupModeRequest::Full);
        Ok(services.start_backup(&request.device, request.storage.into(), full)?)
    })
    .await?;
    started(&state, id)
}

/// One backup's manifest summary.
#[utoipa::path(get, path = "/api/v1/backups/{id}", tag = "backups",
    params(("id" = String, Path, description = "backup id")),
    responses((status = 200, body = BackupView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<BackupView>, ApiError> {
    let services = state.services.clone();
    let manifest = blocking(move || Ok(services.manifest(&id)?)).await?;
    Ok(Json(BackupView::from(&manifest)))
}

/// Deletes a backup (its manifest and index; chunks stay until garbage collection).
#[utoipa::path(delete, path = "/api/v1/backups/{id}", tag = "backups",
    params(("id" = String, Path, description = "backup id")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let services = state.services.clone();
    blocking(move || Ok(services.delete_backup(&id)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a restore of a backup to a device or to a file in the target's `restores` area.
#[utoipa::path(post, path = "/api/v1/backups/{id}/restore", tag = "backups",
    params(("id" = String, Path, description = "backup id")), request_body = RestoreRequest,
    responses((status = 202, body = JobView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn restore(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<RestoreRequest>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let services = state.services.clone();
    let to = match request.destination {
        RestoreDestination::Device { device } => RestoreTo::Device(device),
        RestoreDestination::File { name } => RestoreTo::File(name),
    };
    let job = blocking(move || Ok(services.start_restore(&id, &to)?)).await?;
    started(&state, job)
}

/// Starts a verification of every chunk of a backup (and its image checksum).
#[utoipa::path(post, path = "/api/v1/backups/{id}/verify", tag = "backups",
    params(("id" = String, Path, description = "backup id")),
    responses((status = 202, body = JobView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let services = state.services.clone();
    let job = blocking(move || Ok(services.start_verify(&id)?)).await?;
    started(&state, job)
}

/// Starts an export of a backup as a raw or qcow2 file in the target's `exports` area;
/// the finished job's `download` names the file's URL.
#[utoipa::path(post, path = "/api/v1/backups/{id}/export", tag = "backups",
    params(("id" = String, Path, description = "backup id")), request_body = ExportRequest,
    responses((status = 202, body = JobView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<ExportRequest>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let services = state.services.clone();
    let format = match request.format {
        ExportFormatRequest::Raw => ExportFormat::Raw,
        ExportFormatRequest::Qcow2 => ExportFormat::Qcow2,
    };
    let job =
        blocking(move || Ok(services.start_export(&id, format, request.name.as_deref())?)).await?;
    started(&state, job)
}

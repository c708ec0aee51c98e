//! Snapshots held on request: `POST /api/v1/snapshots` creates one over a set of devices
//! with difference storage and takes it (or, with `"take": false`, leaves the instant to
//! `POST /api/v1/snapshots/{id}/take`); it stays until `DELETE /api/v1/snapshots/{id}` (or
//! shutdown). Snapshots of running backups are listed too, with their job.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use snapcore::Take;

use super::failure::{blocking, ApiJson, ApiPath};
use super::model::{CreateSnapshotRequest, SnapshotDeviceView, SnapshotView};
use super::{ApiError, AppState};
use crate::api::error::ErrorBody;

/// Every live snapshot.
#[utoipa::path(get, path = "/api/v1/snapshots", tag = "snapshots",
    responses((status = 200, body = Vec<SnapshotView>), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Json<Vec<SnapshotView>> {
    let jobs = &state.services.jobs;
    let views = jobs
        .list_snapshots()
        .iter()
        .map(|s| {
            let owner = jobs.snapshot(&s.id).ok().and_then(|(_, job)| job);
            SnapshotView::new(s, owner.map(|j| j.0))
        })
        .collect();
    Json(views)
}

/// Creates a snapshot of `devices` with `storage` as difference storage, and takes it
/// unless `take` is `false`.
#[utoipa::path(post, path = "/api/v1/snapshots", tag = "snapshots",
    request_body = CreateSnapshotRequest,
    responses((status = 201, body = SnapshotView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateSnapshotRequest>,
) -> Result<(StatusCode, Json<SnapshotView>), ApiError> {
    let services = state.services.clone();
    let take = if request.take { Take::Now } else { Take::Later };
    let info = blocking(move || {
        let devices: Vec<&str> = request.devices.iter().map(String::as_str).collect();
        Ok(services.hold_snapshot(&devices, &request.storage.into(), take)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(SnapshotView::new(&info, None))))
}

/// Takes a snapshot created with `"take": false`: this is its point in time.
#[utoipa::path(post, path = "/api/v1/snapshots/{id}/take", tag = "snapshots",
    params(("id" = String, Path, description = "the snapshot's uuid")),
    responses((status = 200, body = SnapshotView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn take(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SnapshotView>, ApiError> {
    let services = state.services.clone();
    let info = blocking(move || Ok(services.take_snapshot(&id)?)).await?;
    Ok(Json(SnapshotView::new(&info, None)))
}

/// One live snapshot.
#[utoipa::path(get, path = "/api/v1/snapshots/{id}", tag = "snapshots",
    params(("id" = String, Path, description = "the snapshot's uuid")),
    responses((status = 200, body = SnapshotView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SnapshotView>, ApiError> {
    let (info, job) = state.services.jobs.snapshot(&id)?;
    Ok(Json(SnapshotView::new(&info, job.map(|j| j.0))))
}

/// The images of a snapshot (`/dev/blksnap-imageN`), one per device.
#[utoipa::path(get, path = "/api/v1/snapshots/{id}/images", tag = "snapshots",
    params(("id" = String, Path, description = "the snapshot's uuid")),
    responses((status = 200, body = Vec<SnapshotDeviceView>), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn images(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<SnapshotDeviceView>>, ApiError> {
    let (info, job) = state.services.jobs.snapshot(&id)?;
    Ok(Json(SnapshotView::new(&info, job.map(|j| j.0)).devices))
}

/// Destroys a held snapshot (a backup's snapshot: cancel the job instead).
#[utoipa::path(delete, path = "/api/v1/snapshots/{id}", tag = "snapshots",
    params(("id" = String, Path, description = "the snapshot's uuid")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn destroy(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let services = state.services.clone();
    blocking(move || Ok(services.destroy_snapshot(&id)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

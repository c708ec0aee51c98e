//! `GET /api/v1/devices`, `GET /api/v1/devices/{id}`: disks and partitions.

use axum::extract::State;
use axum::Json;

use super::failure::{blocking, ApiPath};
use super::model::DeviceView;
use super::{ApiError, AppState};
use crate::api::error::ErrorBody;

/// Every disk and partition, each disk followed by its partitions.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices",
    responses((status = 200, body = Vec<DeviceView>), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<DeviceView>>, ApiError> {
    let services = state.services.clone();
    let devices = blocking(move || Ok(services.jobs.devices()?)).await?;
    Ok(Json(devices.iter().map(DeviceView::from).collect()))
}

/// One device by stable id, serial, WWN or kernel name.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "stable id, serial, WWN or kernel name")),
    responses((status = 200, body = DeviceView), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeviceView>, ApiError> {
    let services = state.services.clone();
    let device = blocking(move || Ok(services.jobs.device(&id)?)).await?;
    Ok(Json(DeviceView::from(&device)))
}

//! `GET /api/v1/jobs`, `GET /api/v1/jobs/{id}`, `POST /api/v1/jobs/{id}/cancel`.

use axum::extract::State;
use axum::Json;
use snapcore::jobs::JobId;

use super::failure::ApiPath;
use super::model::JobView;
use super::{ApiError, AppState};
use crate::api::error::ErrorBody;

/// Every known job, oldest first (running, queued and the latest finished ones).
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    responses((status = 200, body = Vec<JobView>), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Json<Vec<JobView>> {
    Json(
        state
            .services
            .jobs
            .list()
            .iter()
            .map(JobView::from)
            .collect(),
    )
}

/// One job: state, progress (bytes, total, rate, ETA), log and result.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = u64, Path, description = "job number")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<JobView>, ApiError> {
    let info = state.services.jobs.get(JobId(id))?;
    Ok(Json(JobView::from(&info)))
}

/// Cancels a job: a queued one at once, a running one at its next chunk (a cancelled
/// backup publishes nothing). A finished job is left as it is.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = u64, Path, description = "job number")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<JobView>, ApiError> {
    let info = state.services.jobs.cancel(JobId(id))?;
    Ok(Json(JobView::from(&info)))
}

//! `GET /api/v1/events`: recent events (job state changes, snapshot storage and
//! corruption events, target changes), oldest first.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::failure::ApiQuery;
use super::model::{EventList, EventView};
use super::{ApiError, AppState};
use crate::api::error::ErrorBody;

/// Query of `GET /api/v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events with a greater id (the `last_id` of an earlier answer).
    #[serde(default)]
    pub after: u64,
    /// At most this many (default and maximum 500).
    pub limit: Option<u32>,
}

/// Recent events, oldest first.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = EventList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> Result<Json<EventList>, ApiError> {
    let limit = query.limit.map_or(crate::services::events::KEEP, |l| {
        (l as usize).min(crate::services::events::KEEP)
    });
    let events = state.services.events.since(query.after, limit);
    let last_id = events.last().map_or(query.after, |e| e.id);
    Ok(Json(EventList {
        events: events.iter().map(EventView::from).collect(),
        last_id,
    }))
}

//! System calls: health probe, shutdown, and the guarded debug crash.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{AppState, StopRequest, VERSION};

/// `GET /api/v1/health` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the daemon answers.
    pub status: &'static str,
    /// The appliance version.
    pub version: &'static str,
}

/// The body of calls that start something and return at once.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// What is happening now.
    pub status: &'static str,
}

/// The health probe: no credentials needed.
#[utoipa::path(get, path = "/api/v1/health", tag = "system", security(()),
    responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: VERSION,
    })
}

/// Stops jobs, releases snapshots, syncs and powers the appliance off (202 at once).
#[utoipa::path(post, path = "/api/v1/shutdown", tag = "system",
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody)))]
pub async fn shutdown(State(state): State<AppState>) -> (StatusCode, Json<Accepted>) {
    eprintln!("appliance: shutdown requested over the API");
    state.stop.send_replace(StopRequest::PowerOff);
    (
        StatusCode::ACCEPTED,
        Json(Accepted {
            status: "shutting_down",
        }),
    )
}

/// `POST /api/v1/debug/crash` (only with boot key `debug=1`): the daemon aborts shortly
/// after answering, so tests can watch init log the crash and restart it.
pub async fn debug_crash() -> (StatusCode, Json<Accepted>) {
    eprintln!("appliance: debug: crash requested over the API, aborting");
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(200));
        std::process::abort();
    });
    (StatusCode::ACCEPTED, Json(Accepted { status: "crashing" }))
}

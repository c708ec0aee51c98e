//! The backup target: `GET /api/v1/target` (in force, with free space),
//! `PUT /api/v1/target` (choose a device with a filesystem or an existing directory),
//! `DELETE /api/v1/target` (back to the default), `POST /api/v1/target/test`.

use axum::extract::State;
use axum::Json;

use super::failure::{blocking, ApiJson};
use super::model::{ErrorView, TargetConfigView, TargetStatusView, MASKED_SECRET};
use super::{ApiError, AppState};
use crate::api::error::ErrorBody;
use crate::services::target::{Resolved, Space, TargetConfig};
use crate::services::{Level, Services};

/// The status view of a usable target.
pub fn ok_view(services: &Services, resolved: &Resolved, space: Space) -> TargetStatusView {
    TargetStatusView {
        config: TargetConfigView::from(&resolved.config),
        configured: resolved.configured,
        ok: true,
        root: Some(resolved.root.display().to_string()),
        repository: Some(resolved.repo_dir().display().to_string()),
        free_bytes: Some(space.free_bytes),
        total_bytes: Some(space.total_bytes),
        error: None,
        settings_persistent: services.persistent(),
    }
}

/// The target in force and whether it works (never an error: a broken target is
/// reported in the body).
pub fn status(services: &Services) -> TargetStatusView {
    let (config, configured) = services.targets.effective();
    let checked = services.targets.resolve().and_then(|r| {
        let (_, sp) = services.targets.test(&r.config)?;
        Ok((r, sp))
    });
    match checked {
        Ok((resolved, sp)) => ok_view(services, &resolved, sp),
        Err(e) => {
            let api: ApiError = e.into();
            TargetStatusView {
                config: TargetConfigView::from(&config),
                configured,
                ok: false,
                root: None,
                repository: None,
                free_bytes: None,
                total_bytes: None,
                error: Some(ErrorView {
                    code: api.code().to_owned(),
                    message: api.to_string(),
                }),
                settings_persistent: services.persistent(),
            }
        }
    }
}

/// `request` as a setting; an S3 secret sent back as it was shown (`********`) means the
/// stored one, when the stored setting is the same bucket with the same access key.
fn unmasked(services: &Services, request: TargetConfigView) -> TargetConfig {
    let mut config = TargetConfig::from(request);
    if let TargetConfig::S3(new) = &mut config {
        if new.secret_key == MASKED_SECRET {
            if let Some(TargetConfig::S3(stored)) = services.targets.configured() {
                let same = stored.endpoint == new.endpoint
                    && stored.bucket == new.bucket
                    && stored.access_key == new.access_key;
                if same {
                    new.secret_key = stored.secret_key;
                }
            }
        }
    }
    config
}

/// The target in force: its setting, mount, free space, and any problem.
#[utoipa::path(get, path = "/api/v1/target", tag = "target",
    responses((status = 200, body = TargetStatusView), (status = 401, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>) -> Result<Json<TargetStatusView>, ApiError> {
    let services = state.services.clone();
    Ok(Json(blocking(move || Ok(status(&services))).await?))
}

/// Chooses the target after testing it (a device is mounted, never formatted).
#[utoipa::path(put, path = "/api/v1/target", tag = "target", request_body = TargetConfigView,
    responses((status = 200, body = TargetStatusView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<TargetConfigView>,
) -> Result<Json<TargetStatusView>, ApiError> {
    let services = state.services.clone();
    let view = blocking(move || {
        let (resolved, sp) = services.targets.set(unmasked(&services, request))?;
        services.events.record(
            Level::Info,
            "target",
            format!("backup target set to {}", resolved.config.describe()),
        );
        Ok(ok_view(&services, &resolved, sp))
    })
    .await?;
    Ok(Json(view))
}

/// Forgets the chosen target: the default applies again.
#[utoipa::path(delete, path = "/api/v1/target", tag = "target",
    responses((status = 200, body = TargetStatusView), (status = 401, body = ErrorBody)))]
pub async fn reset(State(state): State<AppState>) -> Result<Json<TargetStatusView>, ApiError> {
    let services = state.services.clone();
    let view = blocking(move || {
        services.targets.reset()?;
        services
            .events
            .record(Level::Info, "target", "backup target reset to the default");
        Ok(status(&services))
    })
    .await?;
    Ok(Json(view))
}

/// Tests a target setting without choosing it: reachable, writable, free space.
#[utoipa::path(post, path = "/api/v1/target/test", tag = "target",
    request_body = TargetConfigView,
    responses((status = 200, body = TargetStatusView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn test(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<TargetConfigView>,
) -> Result<Json<TargetStatusView>, ApiError> {
    let services = state.services.clone();
    let view = blocking(move || {
        let (mut resolved, sp) = services.targets.test(&unmasked(&services, request))?;
        resolved.configured = services.targets.configured().as_ref() == Some(&resolved.config);
        Ok(ok_view(&services, &resolved, sp))
    })
    .await?;
    Ok(Json(view))
}

//! Settings: the admin password, API tokens and the HTTPS certificate.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::auth::SessionToken;
use super::failure::{blocking, failed, ApiJson, ApiPath};
use super::model::{
    CertificateInstall, ConfigDiskRequest, PasswordChange, TokenCreate, TokenCreated, TokenView,
};
use super::{ApiError, AppState};
use crate::api::error::ErrorBody;
use crate::serve::certificate::{CertificateInfo, HttpsCertificate};
use crate::services::config_disk::{self, ConfigDiskView};
use crate::services::{unix_now, Level};

/// Shortest accepted password.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Checks the current password and stores the new one (argon2). Every login session but
/// `keep` (the caller's own) ends: whoever knew the old password is logged out. API tokens
/// stay; they are revoked one by one. Shared with the web form.
pub fn change_password(
    state: &AppState,
    current: &str,
    new: &str,
    keep: Option<&str>,
) -> Result<(), ApiError> {
    if new.chars().count() < MIN_PASSWORD_LEN {
        return Err(failed(
            "invalid_argument",
            format!("the new password must have at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if !state.passwords.verify(current) {
        return Err(failed("wrong_password", "the current password is wrong"));
    }
    state
        .passwords
        .replace(state.services.state_dir.as_deref(), new)
        .map_err(|e| failed("settings_not_saved", snapcore::chain(&e)))?;
    let ended = state.sessions.revoke_all_except(keep);
    state.services.events.record(
        Level::Info,
        "system",
        format!("admin password changed; {ended} other login session(s) ended"),
    );
    Ok(())
}

/// Changes the admin password (the current one is required); every other login session
/// ends.
#[utoipa::path(post, path = "/api/v1/settings/password", tag = "settings",
    request_body = PasswordChange,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn password(
    State(state): State<AppState>,
    caller: Option<Extension<SessionToken>>,
    ApiJson(request): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let st = state.clone();
    let keep = caller.map(|Extension(SessionToken(token))| token);
    blocking(move || {
        change_password(
            &st,
            &request.current_password,
            &request.new_password,
            keep.as_deref(),
        )
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every API token (without secrets).
#[utoipa::path(get, path = "/api/v1/settings/tokens", tag = "settings",
    responses((status = 200, body = Vec<TokenView>), (status = 401, body = ErrorBody)))]
pub async fn tokens(State(state): State<AppState>) -> Json<Vec<TokenView>> {
    Json(
        state
            .services
            .tokens
            .list()
            .iter()
            .map(TokenView::from)
            .collect(),
    )
}

/// Creates an API token; its secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/settings/tokens", tag = "settings",
    request_body = TokenCreate,
    responses((status = 201, body = TokenCreated), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<TokenCreate>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let (record, token) = state.services.tokens.create(&request.name, unix_now())?;
    state.services.events.record(
        Level::Info,
        "system",
        format!("API token {} ({}) created", record.id, record.name),
    );
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            id: record.id,
            name: record.name,
            created_unix: record.created_unix,
            token,
        }),
    ))
}

/// Revokes an API token.
#[utoipa::path(delete, path = "/api/v1/settings/tokens/{id}", tag = "settings",
    params(("id" = String, Path, description = "token id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let record = state.services.tokens.revoke(&id)?;
    state.services.events.record(
        Level::Info,
        "system",
        format!("API token {} ({}) revoked", record.id, record.name),
    );
    Ok(StatusCode::NO_CONTENT)
}

fn https(state: &AppState) -> Result<&HttpsCertificate, ApiError> {
    state
        .https
        .get()
        .ok_or_else(|| failed("https_not_served", "this daemon serves no HTTPS listener"))
}

/// Installs a provided certificate and key for HTTPS (checked first: a refused pair
/// changes nothing). Shared with the web form.
pub fn install_certificate(
    state: &AppState,
    certificate: &str,
    key: &str,
) -> Result<CertificateInfo, ApiError> {
    let info = https(state)?.install(certificate, key)?;
    state.services.events.record(
        Level::Info,
        "system",
        format!(
            "HTTPS certificate {} (issued by {}) installed, SHA-256 {}",
            info.subject, info.issuer, info.fingerprint_sha256
        ),
    );
    Ok(info)
}

/// Replaces the HTTPS certificate by a new self-signed one. Shared with the web form.
pub fn regenerate_certificate(state: &AppState) -> Result<CertificateInfo, ApiError> {
    let info = https(state)?.regenerate()?;
    state.services.events.record(
        Level::Info,
        "system",
        format!(
            "new self-signed HTTPS certificate, SHA-256 {}",
            info.fingerprint_sha256
        ),
    );
    Ok(info)
}

/// The certificate the web UI and REST API are served with.
#[utoipa::path(get, path = "/api/v1/settings/certificate", tag = "settings",
    responses((status = 200, body = CertificateInfo), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn certificate(State(state): State<AppState>) -> Result<Json<CertificateInfo>, ApiError> {
    Ok(Json(https(&state)?.info()))
}

/// Serves a provided certificate chain and key from now on (new connections) and after
/// restarts. A pair that does not parse, does not match, or is expired is refused with
/// 400 `invalid_certificate`, and the served certificate stays.
#[utoipa::path(put, path = "/api/v1/settings/certificate", tag = "settings",
    request_body = CertificateInstall,
    responses((status = 200, body = CertificateInfo), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn install_certificate_call(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CertificateInstall>,
) -> Result<Json<CertificateInfo>, ApiError> {
    let st = state.clone();
    let info =
        blocking(move || install_certificate(&st, &request.certificate, &request.key)).await?;
    Ok(Json(info))
}

/// Replaces the certificate by a new self-signed one (for the appliance's addresses).
#[utoipa::path(delete, path = "/api/v1/settings/certificate", tag = "settings",
    responses((status = 200, body = CertificateInfo), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn regenerate_certificate_call(
    State(state): State<AppState>,
) -> Result<Json<CertificateInfo>, ApiError> {
    let st = state.clone();
    Ok(Json(blocking(move || regenerate_certificate(&st)).await?))
}

/// Formats `device` as the config disk and moves the settings onto it. Shared with the
/// web form.
pub fn make_config_disk(
    state: &AppState,
    device: &str,
    overwrite: bool,
) -> Result<ConfigDiskView, ApiError> {
    let view = config_disk::adopt(&state.services, device, overwrite)?;
    let text = format!(
        "settings moved onto the new config disk {}; they survive power-offs now",
        view.device.as_deref().unwrap_or(device)
    );
    crate::serve::say(&text);
    state.services.events.record(Level::Info, "system", text);
    Ok(view)
}

/// Where settings are kept: in memory, in a directory, or on a config disk.
#[utoipa::path(get, path = "/api/v1/settings/config-disk", tag = "settings",
    responses((status = 200, body = ConfigDiskView), (status = 401, body = ErrorBody)))]
pub async fn config_disk(State(state): State<AppState>) -> Json<ConfigDiskView> {
    Json(config_disk::view(&state.services))
}

/// Formats a blank disk ext4 with the label APPLIANCE-CONFIG, mounts it on the state
/// directory and moves the settings made so far onto it. Refused when settings are
/// already on a disk (409 `config_disk_exists`), for a disk in use (409 `device_busy`)
/// and for one holding data unless `overwrite` (409 `storage_has_data`).
#[utoipa::path(post, path = "/api/v1/settings/config-disk", tag = "settings",
    request_body = ConfigDiskRequest,
    responses((status = 200, body = ConfigDiskView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn make_config_disk_call(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ConfigDiskRequest>,
) -> Result<Json<ConfigDiskView>, ApiError> {
    let st = state.clone();
    let view = blocking(move || make_config_disk(&st, &request.device, request.overwrite)).await?;
    Ok(Json(view))
}

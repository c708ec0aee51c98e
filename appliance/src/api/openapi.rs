//! `GET /api/v1/openapi.json`: the OpenAPI 3 document, generated from the handlers'
//! `#[utoipa::path]` attributes and the [`super::model`] types, so it cannot drift from
//! the code. The calls of [`super::system`] and [`super::auth`] are described here by
//! doc-only functions with mirror types (their handlers live in files of their own).

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::error::ErrorBody;
use super::model::*;
use super::{backups, devices, events, files, jobs, settings, snapshots, targets};

/// `GET /api/v1/health`.
#[derive(Serialize, ToSchema)]
pub struct HealthDoc {
    /// Always `ok`.
    pub status: String,
    pub version: String,
}

/// `POST /api/v1/auth/login` body.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct LoginDoc {
    /// `admin`.
    pub username: String,
    pub password: String,
}

/// A successful login.
#[derive(Serialize, ToSchema)]
pub struct LoginResponseDoc {
    /// Send as `Authorization: Bearer <token>`; a session cookie is set too.
    pub token: String,
    /// Seconds until the session expires.
    pub expires_in: u64,
}

/// A call that started something.
#[derive(Serialize, ToSchema)]
pub struct AcceptedDoc {
    pub status: String,
}

/// The health probe: no credentials needed.
#[utoipa::path(get, path = "/api/v1/health", tag = "system", security(()),
    responses((status = 200, body = HealthDoc)))]
#[allow(dead_code)]
fn health_doc() {}

/// Logs in: a bearer token and an HttpOnly, Secure, SameSite=Strict session cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "system", security(()),
    request_body = LoginDoc,
    responses((status = 200, body = LoginResponseDoc), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[allow(dead_code)]
fn login_doc() {}

/// Ends the caller's session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "system",
    responses((status = 204), (status = 401, body = ErrorBody)))]
#[allow(dead_code)]
fn logout_doc() {}

/// Stops jobs, releases snapshots, syncs and powers the appliance off.
#[utoipa::path(post, path = "/api/v1/shutdown", tag = "system",
    responses((status = 202, body = AcceptedDoc), (status = 401, body = ErrorBody)))]
#[allow(dead_code)]
fn shutdown_doc() {}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "system",
    responses((status = 200, description = "the OpenAPI 3 document", content_type = "application/json"),
        (status = 401, body = ErrorBody)))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "a login token (POST /api/v1/auth/login) or an API token (apt_...)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::api::auth::SESSION_COOKIE,
            ))),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "blksnap appliance REST API",
        description = "Snapshots of block devices, backups into a chunked repository, restore, \
            verify and export. Every call but the health probe and login needs a bearer token \
            or the session cookie. Errors are JSON {\"code\",\"message\"}."),
    paths(
        health_doc, login_doc, logout_doc, shutdown_doc, document,
        devices::list, devices::get,
        snapshots::list, snapshots::create, snapshots::get, snapshots::images, snapshots::destroy,
        backups::list, backups::start, backups::get, backups::delete, backups::restore,
        backups::verify, backups::export,
        jobs::list, jobs::get, jobs::cancel,
        files::list, files::download, files::delete,
        targets::get, targets::put, targets::reset, targets::test,
        events::list,
        settings::password, settings::tokens, settings::create_token, settings::revoke_token,
    ),
    components(schemas(ErrorBody, HealthDoc, LoginDoc, LoginResponseDoc, AcceptedDoc,
        DeviceView, SnapshotView, JobView, CatalogueView, BackupView, TargetStatusView,
        TargetConfigView, FileView, EventList, TokenView, TokenCreated)),
    modifiers(&Security),
    security(("bearer" = []), ("session_cookie" = [])),
    tags((name = "devices"), (name = "snapshots"), (name = "backups"), (name = "jobs"),
        (name = "files"), (name = "target"), (name = "events"), (name = "settings"),
        (name = "system")),
)]
pub struct ApiDoc;

//! `GET /api/v1/openapi.json`: the OpenAPI 3 document, generated from the handlers'
//! `#[utoipa::path]` attributes and the [`super::model`] types, so it cannot drift from
//! the code: every path below is a handler, every schema a type the handlers use.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::model::*;
use super::{
    auth, backups, devices, events, exports, files, jobs, settings, snapshots, system, targets,
};

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
        system::health, auth::login, auth::logout, system::shutdown, document,
        devices::list, devices::get,
        snapshots::list, snapshots::create, snapshots::take, snapshots::get, snapshots::images,
        snapshots::destroy,
        backups::list, backups::start, backups::get, backups::delete, backups::restore,
        backups::verify, backups::export,
        jobs::list, jobs::get, jobs::cancel,
        files::list, files::download, files::delete,
        targets::get, targets::put, targets::reset, targets::test,
        exports::list, exports::create, exports::get, exports::delete, exports::ca_certificate,
        events::list,
        settings::password, settings::tokens, settings::create_token, settings::revoke_token,
        settings::certificate, settings::install_certificate_call,
        settings::regenerate_certificate_call, settings::config_disk,
        settings::make_config_disk_call,
    ),
    components(schemas(ErrorBody, system::Health, auth::LoginRequest, auth::LoginResponse,
        system::Accepted,
        DeviceView, SnapshotView, JobView, CatalogueView, BackupView, TargetStatusView,
        TargetConfigView, FileView, EventList, TokenView, TokenCreated,
        crate::services::exports::ExportView, crate::services::exports::ExportSpec)),
    modifiers(&Security),
    security(("bearer" = []), ("session_cookie" = [])),
    tags((name = "devices"), (name = "snapshots"), (name = "backups"), (name = "jobs"),
        (name = "files"), (name = "target"), (name = "exports"), (name = "events"), (name = "settings"),
        (name = "system")),
)]
pub struct ApiDoc;

//! The web UI: server-rendered askama pages (templates in `webui/templates`), plain HTML
//! forms posted with a CSRF token tied to the session, flash messages after every form,
//! and a little vanilla JavaScript (`webui/static/app.js`) for live job progress.
//!
//! | routes                    | module      | security posture                          |
//! |---------------------------|-------------|-------------------------------------------|
//! | `/login`, `/static/*`     | [`public`]  | no credentials                            |
//! | every other page (GET)    | [`pages`]   | session cookie; a browser without one is sent to `/login` |
//! | forms (POST)              | [`forms`]   | session cookie and the form's CSRF token  |
//!
//! Pages and forms are thin: they call [`crate::services`] (the same operations the REST
//! handlers use) and turn results into [`views`].

pub mod forms;
pub mod login;
pub mod pages;
pub mod views;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::api::auth::{bearer_token, cookie_token};
use crate::api::AppState;
use crate::services::web::FlashKind;

/// The stylesheet.
const APP_CSS: &str = include_str!("../../../webui/static/app.css");
/// The live-progress script.
const APP_JS: &str = include_str!("../../../webui/static/app.js");

/// Adds the pages and forms (behind authentication).
pub fn pages(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/", get(pages::dashboard))
        .route("/disks", get(pages::disks))
        .route("/disks/{id}", get(pages::disk))
        .route(
            "/snapshots",
            get(pages::snapshots).post(forms::create_snapshot),
        )
        .route("/snapshots/{id}", get(pages::snapshot))
        .route("/snapshots/{id}/destroy", post(forms::destroy_snapshot))
        .route("/snapshots/{id}/take", post(forms::take_snapshot))
        .route("/jobs", get(pages::jobs))
        .route("/jobs/{id}", get(pages::job))
        .route("/jobs/{id}/cancel", post(forms::cancel_job))
        .route("/backups", get(pages::backups).post(forms::start_backup))
        .route("/backups/{id}", get(pages::backup))
        .route("/backups/{id}/restore", post(forms::restore))
        .route("/backups/{id}/verify", post(forms::verify))
        .route("/backups/{id}/export", post(forms::export))
        .route("/backups/{id}/delete", post(forms::delete_backup))
        .route("/files/{area}/{name}/delete", post(forms::delete_file))
        .route("/exports", get(pages::exports).post(forms::create_export))
        .route("/exports/{name}/delete", post(forms::delete_export))
        .route("/settings", get(pages::settings))
        .route("/settings/target", post(forms::set_target))
        .route("/settings/target/test", post(forms::test_target))
        .route("/settings/target/reset", post(forms::reset_target))
        .route("/settings/password", post(forms::change_password))
        .route("/settings/tokens", post(forms::create_token))
        .route("/settings/certificate", post(forms::install_certificate))
        .route("/settings/config-disk", post(forms::make_config_disk))
        .route(
            "/settings/certificate/regenerate",
            post(forms::regenerate_certificate),
        )
        .route("/settings/tokens/{id}/revoke", post(forms::revoke_token))
        .route("/logout", post(login::logout))
}

/// Adds what needs no credentials: the login page and the static assets.
pub fn public(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/login", get(login::page).post(login::submit))
        .route(
            "/static/app.css",
            get(|| async { asset(APP_CSS, "text/css") }),
        )
        .route(
            "/static/app.js",
            get(|| async { asset(APP_JS, "text/javascript") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Sends a browser that asked for a page without credentials to the login page (API
/// clients keep the JSON 401).
pub async fn login_redirect(request: Request, next: Next) -> Response {
    let wants_page = request.method() == Method::GET
        && !request.uri().path().starts_with("/api/")
        && accepts_html(request.headers());
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let response = next.run(request).await;
    if wants_page && response.status() == StatusCode::UNAUTHORIZED {
        return Redirect::to(&format!("/login?next={}", url_encode(&target))).into_response();
    }
    response
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// Percent-encodes everything but unreserved characters and `/`.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The caller's session (cookie, else bearer token) and its CSRF token.
#[derive(Debug, Clone)]
pub struct WebSession {
    /// The session token (`local` for the root-only socket).
    pub token: String,
    /// The CSRF token forms must carry.
    pub csrf: String,
}

impl FromRequestParts<AppState> for WebSession {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = cookie_token(&parts.headers)
            .or_else(|| bearer_token(&parts.headers))
            .unwrap_or_else(|| "local".to_owned());
        let csrf = state.services.csrf.token(&token);
        Ok(WebSession { token, csrf })
    }
}

impl WebSession {
    /// Queues a flash message for the next page.
    pub fn flash(&self, state: &AppState, kind: FlashKind, text: impl Into<String>) {
        state.services.flash.push(&self.token, kind, text);
    }
}

/// Renders a template, or a plain error page when rendering fails.
pub fn render<T: askama::Template>(template: &T) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Html(format!(
                "<!doctype html><title>Error</title><p>The page could not be rendered: {}</p>",
                views::escape(&err.to_string())
            )),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests;

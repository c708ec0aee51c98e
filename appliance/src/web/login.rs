//! The login page, its form, and logout. The form uses the same password store, rate
//! limiter and sessions as `POST /api/v1/auth/login`, and sets the same cookie.
//!
//! Login CSRF: before anyone is logged in there is no session to bind a form token to, so
//! `GET /login` hands out a random pre-session nonce in the cookie [`LOGIN_COOKIE`]
//! (HttpOnly, Secure, SameSite=Strict) and puts the CSRF key's token of that nonce in the
//! form. `POST /login` accepts only a form whose token matches the cookie it came with: a
//! foreign page cannot log a browser into the appliance under an account of its choice.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::views::LoginPage;
use super::{render, WebSession};
use crate::api::auth::{cookie, cookie_token, SESSION_COOKIE};
use crate::api::{AppState, VERSION};
use crate::auth::sessions::SESSION_TTL;
use crate::auth::{Verdict, ADMIN_USER};
use crate::services::web::FlashKind;

/// The pre-session cookie that the login form's CSRF token is bound to.
pub const LOGIN_COOKIE: &str = "appliance_login";
/// How long a login form stays valid.
const LOGIN_FORM_TTL_SECS: u64 = 60 * 60;

/// Query of `GET /login`.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
}

/// The login form.
#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    csrf: String,
}

/// Only local paths are followed after login (no open redirect).
fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next.to_owned()
    } else {
        "/".to_owned()
    }
}

/// `GET /login`: the form (or the dashboard when already logged in).
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<LoginQuery>, QueryRejection>,
) -> Response {
    let next = query.map(|q| q.0.next).unwrap_or_default();
    if let Some(token) = cookie_token(&headers) {
        if state.sessions.is_valid(&token, Instant::now()) {
            return Redirect::to(&safe_next(&next)).into_response();
        }
    }
    login_page(&state, &headers, StatusCode::OK, &next, String::new())
}

/// The login form bound to the browser's pre-session nonce (a new one when it has none).
fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    next: &str,
    error: String,
) -> Response {
    let (nonce, fresh) = match login_nonce(headers) {
        Some(nonce) => (nonce, false),
        None => (new_nonce(), true),
    };
    let mut response = render(&LoginPage {
        next: safe_next(next),
        error,
        csrf: state.services.csrf.token(&login_subject(&nonce)),
        version: VERSION,
    });
    *response.status_mut() = status;
    if fresh {
        let cookie = format!(
            "{LOGIN_COOKIE}={nonce}; Path=/login; Max-Age={LOGIN_FORM_TTL_SECS}; HttpOnly; Secure; SameSite=Strict"
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
    }
    response
}

/// What the login form's token signs: kept apart from session tokens by the prefix.
fn login_subject(nonce: &str) -> String {
    format!("login-form:{nonce}")
}

fn new_nonce() -> String {
    crate::auth::random_hex(16)
}

/// The pre-session nonce of the request's [`LOGIN_COOKIE`].
fn login_nonce(headers: &HeaderMap) -> Option<String> {
    cookie(headers, LOGIN_COOKIE, |value| {
        value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

fn client_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// `POST /login`: checks the password, opens a session, sets the cookie.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let refused =
        |status, next: &str, error: String| login_page(&state, &headers, status, next, error);
    let Ok(Form(form)) = form else {
        return refused(
            StatusCode::BAD_REQUEST,
            "/",
            "The form was incomplete; please try again.".to_owned(),
        );
    };
    let bound = login_nonce(&headers).is_some_and(|nonce| {
        state
            .services
            .csrf
            .verify(&login_subject(&nonce), &form.csrf)
    });
    if !bound {
        // No cookie (a form posted from elsewhere, or cookies off) or a stale form: the
        // page answered carries a fresh, valid form.
        return refused(
            StatusCode::FORBIDDEN,
            &form.next,
            "The login form had expired or did not come from this appliance; please log in again."
                .to_owned(),
        );
    }
    let client = client_ip(&extensions);
    let limiter = || state.limiter.lock().unwrap_or_else(|p| p.into_inner());
    if let Verdict::Locked { retry_after } = limiter().check(client, Instant::now()) {
        return refused(
            StatusCode::TOO_MANY_REQUESTS,
            &form.next,
            format!(
                "Too many failed logins. Try again in {} s.",
                retry_after.as_secs().max(1)
            ),
        );
    }
    let checker = state.clone();
    let password = form.password.clone();
    let right = tokio::task::spawn_blocking(move || checker.passwords.verify(&password))
        .await
        .unwrap_or(false);
    if !(right && form.username == ADMIN_USER) {
        let locked = matches!(
            limiter().failure(client, Instant::now()),
            Verdict::Locked { .. }
        );
        let text = if locked {
            "Wrong user name or password. Too many failures: logins are locked for a while."
        } else {
            "Wrong user name or password."
        };
        return refused(StatusCode::UNAUTHORIZED, &form.next, text.to_owned());
    }
    limiter().success(client);
    let token = state.sessions.create(Instant::now());
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        SESSION_TTL.as_secs()
    );
    let mut response = Redirect::to(&safe_next(&form.next)).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /logout`: ends the session (CSRF-checked) and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    session: WebSession,
    form: Result<Form<super::forms::CsrfOnly>, FormRejection>,
) -> Response {
    let valid = form.is_ok_and(|Form(f)| state.services.csrf.verify(&session.token, &f.csrf));
    if !valid {
        session.flash(
            &state,
            FlashKind::Error,
            "The form had expired; please log out again.",
        );
        return Redirect::to("/").into_response();
    }
    state.sessions.revoke(&session.token);
    state.services.flash.take(&session.token);
    let clear = format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
    let mut response = Redirect::to("/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_local() {
        assert_eq!(safe_next("/jobs/3"), "/jobs/3");
        assert_eq!(safe_next("//evil.example"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/\\evil"), "/");
        assert_eq!(safe_next(""), "/");
    }
}

//! Login, logout and the middleware that guards every other call.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiError, AppState, LocalPeer, PUBLIC_PATHS};
use crate::auth::sessions::SESSION_TTL;
use crate::auth::{Verdict, ADMIN_USER};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "appliance_session";

/// `POST /api/v1/auth/login` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Only `admin` for now.
    pub username: String,
    /// The admin password.
    pub password: String,
}

/// A successful login.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`; a session cookie is set too.
    pub token: String,
    /// Seconds until the session expires.
    pub expires_in: u64,
}

/// The session or API token of an authenticated request (logout, password change).
#[derive(Debug, Clone)]
pub struct SessionToken(pub String);

/// Logs in: a bearer token and an HttpOnly, Secure, SameSite=Strict session cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "system", security(()),
    request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let client = client_ip(&extensions);
    let verdict = lock_limiter(&state).check(client, Instant::now());
    if let Verdict::Locked { retry_after } = verdict {
        return Err(ApiError::TooManyRequests { retry_after });
    }
    let checker = state.clone();
    let password = request.password;
    let right_password = tokio::task::spawn_blocking(move || checker.passwords.verify(&password))
        .await
        .map_err(|err| ApiError::Internal(format!("password check failed: {err}")))?;
    if !(right_password && request.username == ADMIN_USER) {
        let verdict = lock_limiter(&state).failure(client, Instant::now());
        if let Verdict::Locked { .. } = verdict {
            eprintln!(
                "appliance: too many failed logins from {}; locked out for a while",
                describe(client)
            );
        }
        return Err(ApiError::BadCredentials);
    }
    lock_limiter(&state).success(client);
    let token = state.sessions.create(Instant::now());
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        SESSION_TTL.as_secs()
    );
    let mut response = (
        StatusCode::OK,
        Json(LoginResponse {
            token,
            expires_in: SESSION_TTL.as_secs(),
        }),
    )
        .into_response();
    let cookie = HeaderValue::from_str(&cookie)
        .map_err(|err| ApiError::Internal(format!("cookie: {err}")))?;
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Ends the caller's session and clears the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "system",
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(state): State<AppState>, request: Request) -> Response {
    if let Some(SessionToken(token)) = request.extensions().get::<SessionToken>() {
        state.sessions.revoke(token);
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Lets a request through to a public path, with a live session (bearer token or
/// cookie), or from the local socket; answers 401 otherwise.
pub async fn require_auth(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let public = PUBLIC_PATHS.contains(&request.uri().path());
    if public || request.extensions().get::<LocalPeer>().is_some() {
        return Ok(next.run(request).await);
    }
    let token = bearer_token(request.headers()).or_else(|| cookie_token(request.headers()));
    match token {
        Some(token)
            if state.sessions.is_valid(&token, Instant::now())
                || state.services.tokens.is_valid(&token) =>
        {
            request.extensions_mut().insert(SessionToken(token));
            Ok(next.run(request).await)
        }
        _ => Err(ApiError::Unauthorized),
    }
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// The session cookie's value.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE, |value| !value.is_empty())
}

/// The value of the first cookie `wanted` that `accept` takes.
pub fn cookie(headers: &HeaderMap, wanted: &str, accept: impl Fn(&str) -> bool) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == wanted && accept(value))
        .map(|(_, value)| value.to_owned())
}

fn client_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

fn describe(client: Option<IpAddr>) -> String {
    client.map_or_else(|| "the local socket".to_owned(), |ip| ip.to_string())
}

fn lock_limiter(state: &AppState) -> std::sync::MutexGuard<'_, crate::auth::LoginLimiter> {
    // The limiter holds plain counters; a panic elsewhere cannot leave them inconsistent.
    state.limiter.lock().unwrap_or_else(|p| p.into_inner())
}

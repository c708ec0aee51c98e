//! In-process tests of the router: status codes, JSON bodies, cookies, rate limiting.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::auth::limiter::MAX_FAILURES;

const PASSWORD: &str = "correct horse";

fn app(debug: bool) -> (Router, AppState, watch::Receiver<StopRequest>) {
    let passwords = PasswordStore::in_memory(PASSWORD).expect("hash");
    let (state, stop) = AppState::new(passwords, debug);
    (make_app(state.clone()), state, stop)
}

fn request(method: Method, uri: &str, body: Option<Value>, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(value) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(value.to_string())
        }
        None => Body::empty(),
    };
    let mut request = builder.body(body).expect("request");
    let peer: SocketAddr = "10.0.2.2:40000".parse().expect("addr");
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value, Response<()>) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("body is not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    let status = parts.status;
    (status, value, Response::from_parts(parts, ()))
}

async fn login(app: &Router, password: &str) -> (StatusCode, Value, Response<()>) {
    send(
        app,
        request(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"username": "admin", "password": password})),
            None,
        ),
    )
    .await
}

#[tokio::test]
async fn health_needs_no_credentials() {
    let (app, _, _) = app(false);
    let (status, body, _) = send(&app, request(Method::GET, "/api/v1/health", None, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok", "version": VERSION}));
}

#[tokio::test]
async fn everything_else_needs_credentials() {
    let (app, _, _) = app(true);
    for (method, uri) in [
        (Method::POST, "/api/v1/shutdown"),
        (Method::GET, "/api/v1/shutdown"),
        (Method::POST, "/api/v1/auth/logout"),
        (Method::POST, "/api/v1/debug/crash"),
        (Method::GET, "/api/v1/devices"),
        (Method::GET, "/"),
    ] {
        let (status, body, response) = send(&app, request(method.clone(), uri, None, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_eq!(body["code"], "unauthorized", "{method} {uri}");
        assert_eq!(
            response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
        let (status, _, _) = send(&app, request(method.clone(), uri, None, Some("forged"))).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {uri} with a forged token"
        );
    }
}

#[tokio::test]
async fn login_gives_token_and_strict_cookie() {
    let (app, _, _) = app(false);
    let (status, body, response) = login(&app, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let token = body["token"].as_str().expect("token").to_owned();
    assert_eq!(token.len(), 64);
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("cookie")
        .to_owned();
    assert!(
        cookie.starts_with(&format!("appliance_session={token};")),
        "{cookie}"
    );
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    // The token opens protected calls; unknown ones are then 404 in JSON.
    let (status, body, _) = send(
        &app,
        request(Method::GET, "/api/v1/nothing", None, Some(&token)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    // So does the cookie.
    let mut by_cookie = request(Method::GET, "/api/v1/nothing", None, None);
    by_cookie.headers_mut().insert(
        header::COOKIE,
        format!("theme=dark; appliance_session={token}")
            .parse()
            .unwrap(),
    );
    let (status, _, _) = send(&app, by_cookie).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Wrong method on a known call.
    let (status, body, _) = send(
        &app,
        request(Method::GET, "/api/v1/shutdown", None, Some(&token)),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["code"], "method_not_allowed");
    // Logout ends the session.
    let (status, _, _) = send(
        &app,
        request(Method::POST, "/api/v1/auth/logout", None, Some(&token)),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = send(
        &app,
        request(Method::GET, "/api/v1/nothing", None, Some(&token)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_password_then_lockout() {
    let (app, _, _) = app(false);
    for _ in 0..MAX_FAILURES {
        let (status, body, _) = login(&app, "wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], "bad_credentials");
    }
    // Locked out: even the right password is refused for now.
    let (status, body, response) = login(&app, PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["code"], "too_many_requests");
    assert!(response.headers().contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn wrong_user_and_bad_body() {
    let (app, _, _) = app(false);
    let (status, _, _) = send(
        &app,
        request(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"username": "root", "password": PASSWORD})),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body, _) = send(
        &app,
        request(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"user": 1})),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "bad_request");
}

#[tokio::test]
async fn shutdown_is_accepted_and_signalled() {
    let (app, _, stop) = app(false);
    let (_, body, _) = login(&app, PASSWORD).await;
    let token = body["token"].as_str().expect("token").to_owned();
    assert_eq!(*stop.borrow(), StopRequest::None);
    let (status, body, _) = send(
        &app,
        request(Method::POST, "/api/v1/shutdown", None, Some(&token)),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["status"], "shutting_down");
    assert_eq!(*stop.borrow(), StopRequest::PowerOff);
}

#[tokio::test]
async fn debug_call_exists_only_with_debug() {
    let (app, _, _) = app(false);
    let (_, body, _) = login(&app, PASSWORD).await;
    let token = body["token"].as_str().expect("token").to_owned();
    let (status, _, _) = send(
        &app,
        request(Method::POST, "/api/v1/debug/crash", None, Some(&token)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn local_socket_needs_no_token() {
    let (app, _, _) = app(false);
    let local = app.layer(axum::Extension(LocalPeer));
    let (status, body, _) = send(&local, request(Method::GET, "/api/v1/nothing", None, None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
}

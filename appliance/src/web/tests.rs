//! In-process tests of the pages, forms and REST resources (tower `oneshot`): login and
//! redirects, CSRF, every documented call guarded, JSON errors for bad input.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use snapcore::{JobManagerConfig, Scanner};
use tower::ServiceExt;

use super::login::LOGIN_COOKIE;
use crate::api::{make_app, AppState, PUBLIC_PATHS};
use crate::auth::PasswordStore;
use crate::serve::certificate::testing::ca_and_leaf;
use crate::serve::certificate::HttpsCertificate;
use crate::services::{Services, ServicesConfig};

const PASSWORD: &str = "correct horse";

struct Fixture {
    app: Router,
    services: Arc<Services>,
    _dir: tempfile::TempDir,
}

/// An app over an empty fake machine (no disks), settings and target in a temp dir.
fn fixture() -> Fixture {
    fixture_with(|_| {})
}

/// [`fixture`], with `prepare` run on the state directory before the services start.
fn fixture_with(prepare: impl FnOnce(&Path)) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("machine");
    std::fs::create_dir_all(root.join("sys/block")).expect("sys");
    std::fs::create_dir_all(root.join("dev")).expect("dev");
    std::fs::write(root.join("mountinfo"), "").expect("mountinfo");
    let state_dir = dir.path().join("state");
    std::fs::create_dir_all(&state_dir).expect("state");
    prepare(&state_dir);
    let cfg = ServicesConfig {
        state_dir: Some(state_dir.clone()),
        ephemeral: false,
        mount_root: dir.path().join("mnt"),
        default_target_dir: dir.path().join("backups"),
        jobs: JobManagerConfig {
            kernel: snapcore::Kernel::at(dir.path().join("no-blksnap")),
            scanner: Scanner::rooted(&root),
            ..JobManagerConfig::default()
        },
    };
    let services: Arc<Services> = Services::new(cfg);
    let passwords = PasswordStore::in_memory(PASSWORD).expect("hash");
    let (state, _stop) = AppState::with_services(passwords, false, services.clone());
    let identity = crate::serve::tls::load_or_create(&state_dir, &[]).expect("tls");
    state.serve_https(HttpsCertificate::new(
        state_dir,
        vec![],
        axum_server::tls_rustls::RustlsConfig::from_config(identity.config),
        identity.info,
    ));
    Fixture {
        app: make_app(state),
        services,
        _dir: dir,
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
    fn location(&self) -> String {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

async fn send(app: &Router, mut request: Request<Body>) -> Reply {
    let peer: SocketAddr = "10.0.2.2:40000".parse().expect("addr");
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn api(method: Method, uri: &str, body: Option<&str>, token: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    match body {
        Some(text) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(text.to_owned())),
        None => b.body(Body::empty()),
    }
    .expect("request")
}

fn page(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .uri(uri)
        .header(header::ACCEPT, "text/html,application/xhtml+xml");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, format!("appliance_session={c}"));
    }
    b.body(Body::empty()).expect("request")
}

fn form(uri: &str, cookie: &str, fields: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("appliance_session={cookie}"))
        .body(Body::from(fields.to_owned()))
        .expect("request")
}

async fn token(app: &Router) -> String {
    let body = json!({"username": "admin", "password": PASSWORD}).to_string();
    let reply = send(
        app,
        api(Method::POST, "/api/v1/auth/login", Some(&body), None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.json()["token"].as_str().expect("token").to_owned()
}

/// A value for a path parameter.
fn fill(path: &str) -> String {
    path.replace("{area}", "exports")
        .replace("{id}", "1")
        .replace("{name}", "x.img")
}

#[tokio::test]
async fn every_documented_call_needs_credentials() {
    let f = fixture();
    let t = token(&f.app).await;
    let doc = send(
        &f.app,
        api(Method::GET, "/api/v1/openapi.json", None, Some(&t)),
    )
    .await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 20, "only {} paths documented", paths.len());
    let mut checked = 0;
    for (path, item) in paths {
        for method in item.as_object().expect("item").keys() {
            let m: Method = method.to_uppercase().parse().expect("method");
            let public = PUBLIC_PATHS.contains(&path.as_str());
            let reply = send(&f.app, api(m.clone(), &fill(path), Some("{}"), None)).await;
            if public {
                assert_ne!(reply.status, StatusCode::UNAUTHORIZED, "{m} {path}");
            } else {
                assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{m} {path}");
                assert_eq!(reply.json()["code"], "unauthorized", "{m} {path}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 25, "{checked}");
}

#[tokio::test]
async fn bad_input_gives_json_4xx() {
    let f = fixture();
    let t = token(&f.app).await;
    let cases: &[(Method, &str, Option<&str>, u16, &str)] = &[
        (Method::GET, "/api/v1/jobs/7", None, 404, "job_not_found"),
        (Method::GET, "/api/v1/jobs/abc", None, 400, "bad_request"),
        (
            Method::POST,
            "/api/v1/jobs/7/cancel",
            None,
            404,
            "job_not_found",
        ),
        (
            Method::GET,
            "/api/v1/devices/nope",
            None,
            404,
            "unknown_device",
        ),
        (
            Method::POST,
            "/api/v1/backups",
            Some("{not json"),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/v1/backups",
            Some(r#"{"device":"nope","storage":{"kind":"device","device":"x"}}"#),
            404,
            "unknown_device",
        ),
        (
            Method::POST,
            "/api/v1/backups",
            Some(r#"{"device":1}"#),
            400,
            "bad_request",
        ),
        (
            Method::GET,
            "/api/v1/backups/..%2Fx",
            None,
            400,
            "invalid_argument",
        ),
        (
            Method::GET,
            "/api/v1/backups/nothing",
            None,
            404,
            "not_found",
        ),
        (
            Method::POST,
            "/api/v1/backups/nothing/verify",
            None,
            404,
            "not_found",
        ),
        (
            Method::POST,
            "/api/v1/backups/nothing/export",
            Some(r#"{"format":"qcow2","name":"../../etc/passwd"}"#),
            400,
            "invalid_argument",
        ),
        (
            Method::GET,
            "/api/v1/snapshots/not-a-uuid",
            None,
            400,
            "invalid_argument",
        ),
        (
            Method::POST,
            "/api/v1/settings/config-disk",
            Some(r#"{"device":"vdz"}"#),
            409,
            "config_disk_exists",
        ),
        (
            Method::POST,
            "/api/v1/settings/config-disk",
            Some(r#"{"disk":"vdz"}"#),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/v1/snapshots/not-a-uuid/take",
            None,
            400,
            "invalid_argument",
        ),
        (
            Method::POST,
            "/api/v1/snapshots/5d1b3c1e-0000-4000-8000-000000000000/take",
            None,
            404,
            "snapshot_not_found",
        ),
        (
            Method::POST,
            "/api/v1/snapshots",
            Some(
                r#"{"devices":["prod0"],"storage":{"kind":"device","device":"scratch0"},"take":"later"}"#,
            ),
            400,
            "bad_request",
        ),
        (
            Method::GET,
            "/api/v1/files/other/x",
            None,
            400,
            "bad_request",
        ),
        (
            Method::GET,
            "/api/v1/files/exports/none.raw",
            None,
            404,
            "file_not_found",
        ),
        (
            Method::PUT,
            "/api/v1/target",
            Some(r#"{"kind":"directory","path":"/no/such/dir"}"#),
            400,
            "target_not_a_directory",
        ),
        (
            Method::PUT,
            "/api/v1/target",
            Some(r#"{"kind":"device","device":"vdz"}"#),
            404,
            "unknown_device",
        ),
        (
            Method::DELETE,
            "/api/v1/settings/tokens/zz",
            None,
            404,
            "token_not_found",
        ),
        (
            Method::POST,
            "/api/v1/settings/password",
            Some(r#"{"current_password":"wrong","new_password":"long enough"}"#),
            400,
            "wrong_password",
        ),
        (
            Method::GET,
            "/api/v1/events?after=x",
            None,
            400,
            "bad_request",
        ),
    ];
    for (method, uri, body, status, code) in cases {
        let reply = send(&f.app, api(method.clone(), uri, *body, Some(&t))).await;
        assert_eq!(
            reply.status.as_u16(),
            *status,
            "{method} {uri}: {}",
            reply.body
        );
        assert_eq!(reply.json()["code"], *code, "{method} {uri}");
        assert!(reply.json()["message"].is_string());
    }
}

#[tokio::test]
async fn target_files_tokens_and_events() {
    let f = fixture();
    let t = token(&f.app).await;
    let target = send(&f.app, api(Method::GET, "/api/v1/target", None, Some(&t))).await;
    assert_eq!(target.status, StatusCode::OK);
    let target = target.json();
    assert_eq!(target["ok"], true, "{target}");
    assert_eq!(target["configured"], false);
    assert_eq!(target["config"]["kind"], "directory");
    assert!(target["free_bytes"].as_u64().unwrap_or(0) > 0);
    let backups = send(&f.app, api(Method::GET, "/api/v1/backups", None, Some(&t))).await;
    assert_eq!(backups.status, StatusCode::OK, "{}", backups.body);
    assert_eq!(backups.json()["backups"], json!([]));
    let files = send(&f.app, api(Method::GET, "/api/v1/files", None, Some(&t))).await;
    assert_eq!(files.json(), json!([]));

    // An API token works as a bearer token until revoked.
    let created = send(
        &f.app,
        api(
            Method::POST,
            "/api/v1/settings/tokens",
            Some(r#"{"name":"ci"}"#),
            Some(&t),
        ),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let secret = created.json()["token"].as_str().expect("token").to_owned();
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let jobs = send(
        &f.app,
        api(Method::GET, "/api/v1/jobs", None, Some(&secret)),
    )
    .await;
    assert_eq!(jobs.status, StatusCode::OK);
    let uri = format!("/api/v1/settings/tokens/{id}");
    let revoked = send(&f.app, api(Method::DELETE, &uri, None, Some(&t))).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let jobs = send(
        &f.app,
        api(Method::GET, "/api/v1/jobs", None, Some(&secret)),
    )
    .await;
    assert_eq!(jobs.status, StatusCode::UNAUTHORIZED);

    let events = send(&f.app, api(Method::GET, "/api/v1/events", None, Some(&t))).await;
    let events = events.json();
    let messages: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("API token")),
        "{messages:?}"
    );
    let last = events["last_id"].as_u64().expect("last_id");
    let newer = send(
        &f.app,
        api(
            Method::GET,
            &format!("/api/v1/events?after={last}"),
            None,
            Some(&t),
        ),
    )
    .await;
    assert_eq!(newer.json()["events"], json!([]));
}

#[tokio::test]
async fn browsers_are_sent_to_the_login_page() {
    let f = fixture();
    let reply = send(&f.app, page("/jobs", None)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/login?next=/jobs");
    // API clients keep the JSON 401, also for pages.
    let reply = send(&f.app, api(Method::GET, "/", None, None)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let login = send(&f.app, page("/login?next=/jobs", None)).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("name=\"password\""));
    let css = send(&f.app, page("/static/app.css", None)).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(
        css.headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"text/css"[..])
    );
}

fn cookie_of(reply: &Reply) -> String {
    let set = reply
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("set-cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(set.contains(attribute), "{set}");
    }
    set.split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .expect("cookie value")
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    html[at..].split('"').next().expect("csrf").to_owned()
}

#[tokio::test]
async fn login_form_pages_and_csrf() {
    let f = fixture();
    // The login page hands out the pre-session cookie its form's token is bound to.
    let form_page = send(&f.app, page("/login", None)).await;
    let nonce = cookie_of(&form_page);
    let login_csrf = csrf_of(&form_page.body);
    let login_with = |password: &str, cookie: Option<&str>, csrf: &str| {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(nonce) = cookie {
            request = request.header(header::COOKIE, format!("{LOGIN_COOKIE}={nonce}"));
        }
        request
            .body(Body::from(format!(
                "username=admin&password={}&next=%2Fbackups&csrf={csrf}",
                password.replace(' ', "+")
            )))
            .expect("request")
    };
    let login = |password: &str| login_with(password, Some(&nonce), &login_csrf);
    // A right password in a form that did not come from the appliance is refused.
    for (cookie, csrf) in [
        (None, login_csrf.as_str()),
        (Some(nonce.as_str()), "00"),
        (
            Some("0123456789abcdef0123456789abcdef"),
            login_csrf.as_str(),
        ),
    ] {
        let forged = send(&f.app, login_with(PASSWORD, cookie, csrf)).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{cookie:?} {csrf}");
        assert!(forged.body.contains("did not come from this appliance"));
        assert!(forged.headers.get(header::SET_COOKIE).is_none() || cookie.is_none());
    }
    let wrong = send(&f.app, login("nope")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong user name or password"));
    let right = send(&f.app, login(PASSWORD)).await;
    assert_eq!(right.status, StatusCode::SEE_OTHER);
    assert_eq!(right.location(), "/backups");
    let cookie = cookie_of(&right);

    for (uri, needle) in [
        ("/", "Backup target"),
        ("/disks", "No disks found"),
        ("/snapshots", "Take a snapshot"),
        ("/jobs", "No jobs yet"),
        ("/backups", "Start a backup"),
        ("/exports", "Create export"),
        ("/settings", "API tokens"),
    ] {
        let reply = send(&f.app, page(uri, Some(&cookie))).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
        assert!(reply.body.contains(needle), "{uri} lacks {needle:?}");
    }
    let missing = send(&f.app, page("/jobs/99", Some(&cookie))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("there is no job 99"));

    // A form without the session's CSRF token is refused; with it, it works and flashes.
    let forged = send(&f.app, form("/settings/tokens", &cookie, "name=x&csrf=00")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let settings = send(&f.app, page("/settings", Some(&cookie))).await;
    let csrf = csrf_of(&settings.body);
    let body = format!("name=nightly&csrf={csrf}");
    let made = send(&f.app, form("/settings/tokens", &cookie, &body)).await;
    assert_eq!(made.status, StatusCode::SEE_OTHER);
    let shown = send(&f.app, page("/settings", Some(&cookie))).await;
    assert!(shown.body.contains("nightly"));
    assert!(
        shown.body.contains("Copy it now"),
        "the new token is shown once"
    );
    let again = send(&f.app, page("/settings", Some(&cookie))).await;
    assert!(
        !again.body.contains("Copy it now"),
        "the token is shown only once"
    );

    // A backup of an unknown disk says why, on the page it came from.
    let body = format!("device=vdq&scratch=vdr&mode=auto&csrf={csrf}");
    let started = send(&f.app, form("/backups", &cookie, &body)).await;
    assert_eq!(started.location(), "/backups");
    let back = send(&f.app, page("/backups", Some(&cookie))).await;
    assert!(back.body.contains("could not start"), "{}", back.body);
    assert!(back.body.contains("no device matches"));

    // Logging out ends the session.
    let out = send(&f.app, form("/logout", &cookie, &format!("csrf={csrf}"))).await;
    assert_eq!(out.location(), "/login");
    let after = send(&f.app, page("/", Some(&cookie))).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
}

#[test]
fn openapi_document_names_every_resource() {
    use utoipa::OpenApi;
    let doc = serde_json::to_value(crate::api::openapi::ApiDoc::openapi()).expect("json");
    for path in [
        "/api/v1/devices",
        "/api/v1/snapshots/{id}",
        "/api/v1/snapshots/{id}/take",
        "/api/v1/backups/{id}/restore",
        "/api/v1/jobs/{id}/cancel",
        "/api/v1/target/test",
        "/api/v1/files/{area}/{name}",
        "/api/v1/settings/tokens/{id}",
        "/api/v1/events",
        "/api/v1/health",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
    }
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../webui/templates/base.html")
        .is_file());
}

#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    let f = fixture();
    let mine = token(&f.app).await;
    let other = token(&f.app).await;
    let api_token = {
        let reply = send(
            &f.app,
            api(
                Method::POST,
                "/api/v1/settings/tokens",
                Some(r#"{"name":"nightly"}"#),
                Some(&mine),
            ),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.json()["token"].as_str().expect("token").to_owned()
    };
    let change = send(
        &f.app,
        api(
            Method::POST,
            "/api/v1/settings/password",
            Some(
                &json!({"current_password": PASSWORD, "new_password": "a new password"})
                    .to_string(),
            ),
            Some(&mine),
        ),
    )
    .await;
    assert_eq!(change.status, StatusCode::NO_CONTENT, "{}", change.body);
    let devices = |t: &str| api(Method::GET, "/api/v1/devices", None, Some(t));
    assert_eq!(send(&f.app, devices(&mine)).await.status, StatusCode::OK);
    assert_eq!(
        send(&f.app, devices(&other)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // API tokens are revoked one by one, not by a password change.
    assert_eq!(
        send(&f.app, devices(&api_token)).await.status,
        StatusCode::OK
    );
    let old = json!({"username": "admin", "password": PASSWORD}).to_string();
    let relogin = send(
        &f.app,
        api(Method::POST, "/api/v1/auth/login", Some(&old), None),
    )
    .await;
    assert_eq!(relogin.status, StatusCode::UNAUTHORIZED);
}

/// Two exports saved before the appliance started (sources need not open to be listed).
const SAVED_EXPORTS: &str = r#"[
  {"name": "vm1", "source": {"kind": "backup", "backup": "b1"}, "read_only": true,
   "allow": ["10.0.2.2/32"], "tls": true},
  {"name": "plain", "source": {"kind": "device", "device": "vda"}, "read_only": false,
   "allow": ["192.168.1.0/24", "fe80::/64"], "tls": false}
]"#;

fn page_via(uri: &str, cookie: &str, host: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .header(header::ACCEPT, "text/html")
        .header(header::HOST, host)
        .header(header::COOKIE, format!("appliance_session={cookie}"))
        .body(Body::empty())
        .expect("request")
}

#[tokio::test]
async fn exports_page_lists_and_removes_exports() {
    let f = fixture_with(|state| {
        std::fs::write(state.join("exports.json"), SAVED_EXPORTS).expect("exports.json")
    });
    let cookie = token(&f.app).await;
    let shown = send(&f.app, page_via("/exports", &cookie, "appliance.lan:8443")).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let body = &shown.body;
    for needle in [
        "href=\"/exports\" class=\"active\"",
        "<code>vm1</code>",
        "backup b1, read-only",
        "disk vda, read-write",
        "nbds://appliance.lan:10809/vm1",
        "nbd://appliance.lan:10809/plain",
        "10.0.2.2/32",
        "192.168.1.0/24, fe80::/64",
        "not required",
        "action=\"/exports/vm1/delete\"",
        "Create export",
        "tls-creds-x509",
        "tls-certificates=DIR",
        "NBD server is not running",
    ] {
        assert!(body.contains(needle), "/exports lacks {needle:?}: {body}");
    }
    let csrf = csrf_of(body);

    // Without a Host header the URL names the appliance generically.
    let generic = send(&f.app, page("/exports", Some(&cookie))).await;
    assert!(generic.body.contains("nbds://APPLIANCE:10809/vm1"));

    // Once the NBD server runs, its CA certificate can be downloaded from the page.
    f.services
        .nbd_ca
        .set("-----BEGIN CERTIFICATE-----\n".to_owned())
        .expect("unset");
    let with_ca = send(&f.app, page("/exports", Some(&cookie))).await;
    assert!(with_ca.body.contains("href=\"/api/v1/nbd/ca-certificate\""));
    let pem = send(&f.app, page("/api/v1/nbd/ca-certificate", Some(&cookie))).await;
    assert_eq!(pem.status, StatusCode::OK);
    assert!(pem.body.starts_with("-----BEGIN CERTIFICATE-----"));

    // Removing needs the session's CSRF token.
    for fields in ["", "csrf=00"] {
        let forged = send(&f.app, form("/exports/vm1/delete", &cookie, fields)).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{fields:?}");
    }
    assert!(f.services.exports.get("vm1").is_ok());

    let removed = send(
        &f.app,
        form("/exports/vm1/delete", &cookie, &format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert_eq!(removed.location(), "/exports");
    let after = send(&f.app, page("/exports", Some(&cookie))).await;
    assert!(after.body.contains("Export vm1 removed."), "{}", after.body);
    assert!(!after.body.contains("<code>vm1</code>"));
    assert!(after.body.contains("<code>plain</code>"));
    let names: Vec<String> = f
        .services
        .exports
        .list()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["plain"]);

    // Removing what is not there says so.
    let again = send(
        &f.app,
        form("/exports/vm1/delete", &cookie, &format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(again.location(), "/exports");
    let said = send(&f.app, page("/exports", Some(&cookie))).await;
    assert!(
        said.body
            .contains("Export vm1 was not removed: there is no export named vm1"),
        "{}",
        said.body
    );
}

#[tokio::test]
async fn export_form_refuses_bad_input_and_creates_nothing() {
    let f = fixture();
    let cookie = token(&f.app).await;
    let empty = send(&f.app, page("/exports", Some(&cookie))).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert!(empty.body.contains("Nothing is exported."));
    assert!(empty.body.contains("no taken snapshot"));
    let csrf = csrf_of(&empty.body);

    // A form without the session's token is refused.
    let forged = send(
        &f.app,
        form(
            "/exports",
            &cookie,
            "name=vm1&kind=backup&backup=b1&allow=10.0.2.2&tls=on&csrf=00",
        ),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let cases = [
        (
            "name=vm1&kind=backup&backup=b1&allow=10.0.2.2%2C+not-an-ip&tls=on",
            "\u{201c}not-an-ip\u{201d} is not an IP address or network",
        ),
        (
            "name=vm1&kind=backup&backup=b1&allow=10.0.2.0%2F33",
            "\u{201c}10.0.2.0/33\u{201d} is not an IP address",
        ),
        (
            "name=vm1&kind=backup&backup=b1&allow=+%2C+&tls=on",
            "needs at least one allowed client address or network",
        ),
        (
            // A bare address is accepted: what fails is the missing backup.
            "name=vm1&kind=backup&backup=nothing&allow=10.0.2.2&tls=on",
            "backup nothing cannot be exported",
        ),
        (
            "name=vm1&kind=device&device=vdq&allow=10.0.2.2+192.168.1.0%2F24",
            "disk vdq cannot be exported",
        ),
        (
            "name=vm1&kind=snapshot&image=&allow=10.0.2.2",
            "choose a taken snapshot image",
        ),
        (
            "name=vm1&kind=snapshot&image=00000000-0000-0000-0000-000000000000%2Fvda&allow=::1",
            "vda in snapshot 00000000-0000-0000-0000-000000000000 cannot be exported",
        ),
        (
            "name=a+b&kind=backup&backup=b1&allow=10.0.2.2",
            "an export name must be 1 to 64 letters",
        ),
        ("name=vm1&allow=10.0.2.2", "choose what to export"),
    ];
    for (fields, needle) in cases {
        let posted = send(
            &f.app,
            form("/exports", &cookie, &format!("{fields}&csrf={csrf}")),
        )
        .await;
        assert_eq!(posted.status, StatusCode::SEE_OTHER, "{fields}");
        assert_eq!(posted.location(), "/exports", "{fields}");
        let back = send(&f.app, page("/exports", Some(&cookie))).await;
        assert!(
            back.body.contains("The export was not created"),
            "{fields}: {}",
            back.body
        );
        assert!(
            back.body.contains(needle),
            "{fields} lacks {needle:?}: {}",
            back.body
        );
        assert!(back.body.contains("Nothing is exported."), "{fields}");
    }
    assert!(f.services.exports.list().is_empty());
    let listed = send(
        &f.app,
        api(Method::GET, "/api/v1/exports", None, Some(&cookie)),
    )
    .await;
    assert_eq!(listed.json(), json!([]));
}

#[test]
fn allowed_clients_parse_addresses_and_networks() {
    use super::forms::parse_allow;
    let nets = parse_allow(" 10.0.2.2, 192.168.1.0/24\nfe80::1 ,,").expect("valid");
    let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["10.0.2.2/32", "192.168.1.0/24", "fe80::1/128"]);
    assert_eq!(parse_allow("  ").expect("empty"), []);
    let err = parse_allow("10.0.2.2 host.example").expect_err("a name");
    assert!(err.contains("host.example"), "{err}");
}

#[tokio::test]
async fn the_https_certificate_is_shown_replaced_and_bad_pairs_are_refused() {
    let f = fixture();
    let t = token(&f.app).await;
    let get = || api(Method::GET, "/api/v1/settings/certificate", None, Some(&t));
    let first = send(&f.app, get()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let first = first.json();
    assert_eq!(first["self_signed"], true);
    assert_eq!(first["subject"], "CN=blksnap appliance");

    let (chain, key, _) = ca_and_leaf(&["backup.example.test"], (-1, 90));
    let (_, other_key, _) = ca_and_leaf(&["backup.example.test"], (-1, 90));
    let put = |cert: &str, key: &str| {
        let body = json!({"certificate": cert, "key": key}).to_string();
        api(
            Method::PUT,
            "/api/v1/settings/certificate",
            Some(&body),
            Some(&t),
        )
    };
    let refused = send(&f.app, put(&chain, &other_key)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.json()["code"], "invalid_certificate");
    assert_eq!(
        refused.json()["message"],
        "the private key does not match the certificate"
    );
    assert_eq!(send(&f.app, get()).await.json(), first);

    let installed = send(&f.app, put(&chain, &key)).await;
    assert_eq!(installed.status, StatusCode::OK, "{}", installed.body);
    assert_eq!(installed.json()["issuer"], "CN=Test CA");
    assert_eq!(installed.json()["names"], json!(["backup.example.test"]));
    assert_eq!(send(&f.app, get()).await.json(), installed.json());

    // The settings page shows it; its form refuses garbage with a message.
    let settings = send(&f.app, page("/settings", Some(&t))).await;
    assert!(settings.body.contains("CN=Test CA"), "{}", settings.body);
    // The state directory is a real one here: no config disk form is offered.
    assert!(settings.body.contains("Where settings are kept"));
    assert!(!settings.body.contains("config-disk-form"));
    let csrf = csrf_of(&settings.body);
    let posted = send(
        &f.app,
        form(
            "/settings/certificate",
            &t,
            &format!("csrf={csrf}&certificate=junk&key=junk"),
        ),
    )
    .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    let after = send(&f.app, page("/settings", Some(&t))).await;
    assert!(
        after.body.contains(
            "The certificate was not installed, the current one stays: no PEM certificate"
        ),
        "{}",
        after.body
    );
    assert!(after.body.contains("CN=Test CA"));

    // The config disk form asks for confirmation, and refuses when settings already
    // persist; both say nothing was written.
    for (fields, said) in [
        (
            "device=vdz",
            "tick the box that says everything on the disk is lost",
        ),
        ("device=vdz&confirm=on", "settings are already kept in"),
    ] {
        let posted = send(
            &f.app,
            form(
                "/settings/config-disk",
                &t,
                &format!("csrf={csrf}&{fields}"),
            ),
        )
        .await;
        assert_eq!(posted.status, StatusCode::SEE_OTHER);
        let shown = send(&f.app, page("/settings", Some(&t))).await;
        assert!(
            shown.body.contains(&format!(
                "No config disk was made, nothing was written: {said}"
            )),
            "{fields}: {}",
            shown.body
        );
    }

    let fresh = send(
        &f.app,
        api(
            Method::DELETE,
            "/api/v1/settings/certificate",
            None,
            Some(&t),
        ),
    )
    .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert_eq!(fresh.json()["self_signed"], true);
    assert_ne!(
        fresh.json()["fingerprint_sha256"],
        first["fingerprint_sha256"]
    );
}

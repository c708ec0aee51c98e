//! The REST API under `/api/v1`: router assembly, shared state, and handlers grouped by
//! resource. Handlers are thin: they translate requests into calls on the state and the
//! results into JSON; [`ApiError`] is the one mapping from failures to HTTP.
//!
//! Security posture: only [`PUBLIC_PATHS`] (health probe, login) answer without
//! credentials; everything else, including unknown paths and wrong methods, sits behind
//! [`auth::require_auth`].

pub mod auth;
pub mod backups;
pub mod devices;
pub mod error;
pub mod events;
pub mod exports;
pub mod failure;
pub mod files;
pub mod jobs;
pub mod model;
pub mod openapi;
pub mod settings;
pub mod snapshots;
pub mod system;
pub mod targets;

use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock};

use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

pub use error::ApiError;

use crate::auth::{LoginLimiter, PasswordStore, Sessions};
use crate::serve::certificate::HttpsCertificate;
use crate::services::Services;

/// The version reported by the health call.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the daemon is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRequest {
    /// Keep running.
    None,
    /// `POST /api/v1/shutdown`: stop and power the appliance off.
    PowerOff,
}

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// What [`AppState`] holds.
pub struct Inner {
    /// The admin password hash.
    pub passwords: PasswordStore,
    /// Live login sessions.
    pub sessions: Sessions,
    /// Failed-login records.
    pub limiter: Mutex<LoginLimiter>,
    /// Tells the daemon's main task to stop.
    pub stop: watch::Sender<StopRequest>,
    /// Whether the guarded debug calls exist (boot key `debug=1`).
    pub debug: bool,
    /// Jobs, devices, snapshots, target, API tokens, events, web UI state.
    pub services: Arc<Services>,
    /// The certificate of the HTTPS listeners (unset when the daemon serves none, as on
    /// the CLI's private socket).
    pub https: OnceLock<HttpsCertificate>,
}

impl AppState {
    /// Wraps the parts; returns the state and the receiver the daemon watches for stop
    /// requests.
    #[cfg(test)]
    pub fn new(passwords: PasswordStore, debug: bool) -> (Self, watch::Receiver<StopRequest>) {
        Self::with_services(
            passwords,
            debug,
            Services::new(crate::services::ServicesConfig::system(None)),
        )
    }

    /// Like [`AppState::new`], with the given services.
    pub fn with_services(
        passwords: PasswordStore,
        debug: bool,
        services: Arc<Services>,
    ) -> (Self, watch::Receiver<StopRequest>) {
        let (stop, stop_rx) = watch::channel(StopRequest::None);
        let inner = Inner {
            passwords,
            sessions: Sessions::new(),
            limiter: Mutex::new(LoginLimiter::new()),
            stop,
            debug,
            services,
            https: OnceLock::new(),
        };
        (
            AppState {
                inner: Arc::new(inner),
            },
            stop_rx,
        )
    }
}

impl AppState {
    /// Hands the HTTPS listeners' certificate to the settings calls (once).
    pub fn serve_https(&self, certificate: HttpsCertificate) {
        let _ = self.inner.https.set(certificate);
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// Marks a request that came in over the root-only local socket: the peer is root on
/// this machine and needs no token.
#[derive(Debug, Clone, Copy)]
pub struct LocalPeer;

/// Paths that need no credentials: the health probe and the login call.
pub const PUBLIC_PATHS: &[&str] = &["/api/v1/health", "/api/v1/auth/login"];

/// The REST resources (all behind authentication).
fn resources(router: Router<AppState>) -> Router<AppState> {
    use axum::routing::delete;
    router
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/devices", get(devices::list))
        .route("/api/v1/devices/{id}", get(devices::get))
        .route(
            "/api/v1/snapshots",
            get(snapshots::list).post(snapshots::create),
        )
        .route(
            "/api/v1/snapshots/{id}",
            get(snapshots::get).delete(snapshots::destroy),
        )
        .route("/api/v1/snapshots/{id}/images", get(snapshots::images))
        .route("/api/v1/snapshots/{id}/take", post(snapshots::take))
        .route("/api/v1/backups", get(backups::list).post(backups::start))
        .route(
            "/api/v1/backups/{id}",
            get(backups::get).delete(backups::delete),
        )
        .route("/api/v1/backups/{id}/restore", post(backups::restore))
        .route("/api/v1/backups/{id}/verify", post(backups::verify))
        .route("/api/v1/backups/{id}/export", post(backups::export))
        .route("/api/v1/jobs", get(jobs::list))
        .route("/api/v1/jobs/{id}", get(jobs::get))
        .route("/api/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/v1/files", get(files::list))
        .route(
            "/api/v1/files/{area}/{name}",
            get(files::download).delete(files::delete),
        )
        .route(
            "/api/v1/target",
            get(targets::get).put(targets::put).delete(targets::reset),
        )
        .route("/api/v1/target/test", post(targets::test))
        .route("/api/v1/exports", get(exports::list).post(exports::create))
        .route(
            "/api/v1/exports/{name}",
            get(exports::get).delete(exports::delete),
        )
        .route("/api/v1/nbd/ca-certificate", get(exports::ca_certificate))
        .route("/api/v1/events", get(events::list))
        .route("/api/v1/settings/password", post(settings::password))
        .route(
            "/api/v1/settings/tokens",
            get(settings::tokens).post(settings::create_token),
        )
        .route(
            "/api/v1/settings/tokens/{id}",
            delete(settings::revoke_token),
        )
        .route(
            "/api/v1/settings/config-disk",
            get(settings::config_disk).post(settings::make_config_disk_call),
        )
        .route(
            "/api/v1/settings/certificate",
            get(settings::certificate)
                .put(settings::install_certificate_call)
                .delete(settings::regenerate_certificate_call),
        )
}

/// Assembles the whole application. [`auth::require_auth`] wraps every route, the 404
/// fallback and the 405 answers, letting only [`PUBLIC_PATHS`] through unauthenticated.
pub fn make_app(state: AppState) -> Router {
    let mut router = Router::new()
        .route(PUBLIC_PATHS[0], get(system::health))
        .route(PUBLIC_PATHS[1], post(auth::login))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/shutdown", post(system::shutdown));
    if state.debug {
        router = router.route("/api/v1/debug/crash", post(system::debug_crash));
    }
    let router = crate::web::pages(resources(router));
    let protected = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), auth::require_auth))
        .layer(axum::middleware::from_fn(crate::web::login_redirect));
    crate::web::public(Router::new())
        .merge(protected)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests;

//! Authentication without HTTP: the admin password (argon2), sessions and the login
//! rate limiter. The `api` module adapts these to requests; nothing here knows axum.

pub mod limiter;
pub mod password;
pub mod sessions;

pub use limiter::{LoginLimiter, Verdict};
pub use password::{PasswordError, PasswordStore};
pub use sessions::Sessions;

/// The one user this release knows.
pub const ADMIN_USER: &str = "admin";

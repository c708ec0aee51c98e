//! Authentication without HTTP: the admin password (argon2), sessions and the login
//! rate limiter. The `api` module adapts these to requests; nothing here knows axum.

pub mod limiter;
pub mod password;
pub mod sessions;

pub use limiter::{LoginLimiter, Verdict};
pub use password::{PasswordError, PasswordStore};
pub use sessions::Sessions;

/// `n` random bytes as lower-case hex (session and API tokens, ids, nonces).
pub fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The one user this release knows.
pub const ADMIN_USER: &str = "admin";

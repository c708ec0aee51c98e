//! Login sessions: random bearer tokens with an expiry, kept in memory.
//!
//! A daemon restart forgets every session; clients log in again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a session lives after login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// Bytes of randomness in a token (hex-encoded: twice as many characters).
const TOKEN_BYTES: usize = 32;

/// The table of live sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Instant>>,
}

impl Sessions {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a session and returns its token.
    pub fn create(&self, now: Instant) -> String {
        let token = super::random_hex(TOKEN_BYTES);
        let mut live = self.lock();
        live.retain(|_, expiry| *expiry > now);
        live.insert(token.clone(), now + SESSION_TTL);
        token
    }

    /// Whether `token` names a live session.
    pub fn is_valid(&self, token: &str, now: Instant) -> bool {
        let mut live = self.lock();
        match live.get(token) {
            Some(expiry) if *expiry > now => true,
            Some(_) => {
                live.remove(token);
                false
            }
            None => false,
        }
    }

    /// Ends the session `token` (logout). Returns whether it existed.
    pub fn revoke(&self, token: &str) -> bool {
        self.lock().remove(token).is_some()
    }

    /// Ends every session but `keep` (after a password change); returns how many ended.
    pub fn revoke_all_except(&self, keep: Option<&str>) -> usize {
        let mut live = self.lock();
        let before = live.len();
        live.retain(|token, _| Some(token.as_str()) == keep);
        before - live.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_expire() {
        let sessions = Sessions::new();
        let now = Instant::now();
        let a = sessions.create(now);
        let b = sessions.create(now);
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_BYTES * 2);
        assert!(sessions.is_valid(&a, now));
        assert!(!sessions.is_valid("nope", now));
        assert!(!sessions.is_valid(&a, now + SESSION_TTL + Duration::from_secs(1)));
        assert!(sessions.revoke(&b));
        assert!(!sessions.is_valid(&b, now));
    }

    #[test]
    fn a_password_change_ends_every_other_session() {
        let sessions = Sessions::new();
        let now = Instant::now();
        let mine = sessions.create(now);
        let other = sessions.create(now);
        let third = sessions.create(now);
        assert_eq!(sessions.revoke_all_except(Some(&mine)), 2);
        assert!(sessions.is_valid(&mine, now));
        assert!(!sessions.is_valid(&other, now));
        assert!(!sessions.is_valid(&third, now));
        assert_eq!(sessions.revoke_all_except(None), 1);
        assert!(!sessions.is_valid(&mine, now));
    }
}

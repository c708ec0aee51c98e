//! Web UI state without HTTP: flash messages per session and the CSRF key.
//!
//! A form's CSRF token is an HMAC-SHA256 of the session token under a key made at daemon
//! start: it is tied to the session, needs no storage, and dies with the session (the
//! daemon forgets sessions on restart, and the key with them).

use std::collections::HashMap;
use std::sync::Mutex;

use rand::RngCore;
use ring::hmac;

/// Flash messages kept per session at most.
const MAX_FLASH: usize = 8;

/// The kind of a flash message (a CSS class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    Success,
    Error,
    Info,
}

impl FlashKind {
    /// The CSS class.
    pub fn class(self) -> &'static str {
        match self {
            FlashKind::Success => "success",
            FlashKind::Error => "error",
            FlashKind::Info => "info",
        }
    }
}

/// A message shown once on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub kind: FlashKind,
    pub text: String,
}

/// Pending flash messages by session token.
#[derive(Debug, Default)]
pub struct FlashStore {
    pending: Mutex<HashMap<String, Vec<Flash>>>,
}

impl FlashStore {
    /// Queues a message for the session's next page.
    pub fn push(&self, session: &str, kind: FlashKind, text: impl Into<String>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let list = pending.entry(session.to_owned()).or_default();
        list.push(Flash {
            kind,
            text: text.into(),
        });
        if list.len() > MAX_FLASH {
            list.remove(0);
        }
    }

    /// Takes the session's messages.
    pub fn take(&self, session: &str) -> Vec<Flash> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.remove(session).unwrap_or_default()
    }
}

/// The key that CSRF tokens are made with.
pub struct CsrfKey(hmac::Key);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(..)")
    }
}

impl CsrfKey {
    /// A fresh random key.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        CsrfKey(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
    }

    /// The CSRF token of a session.
    pub fn token(&self, session: &str) -> String {
        crate::auth::hex(hmac::sign(&self.0, session.as_bytes()).as_ref())
    }

    /// Whether `token` belongs to `session` (constant time).
    pub fn verify(&self, session: &str, token: &str) -> bool {
        match unhex(token) {
            Some(tag) => hmac::verify(&self.0, session.as_bytes(), &tag).is_ok(),
            None => false,
        }
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_tied_to_the_session() {
        let key = CsrfKey::random();
        let t = key.token("session-a");
        assert!(key.verify("session-a", &t));
        assert!(!key.verify("session-b", &t));
        assert!(!key.verify("session-a", "zz"));
        assert!(!key.verify("session-a", ""));
        assert!(!CsrfKey::random().verify("session-a", &t));
    }

    #[test]
    fn flash_is_taken_once() {
        let store = FlashStore::default();
        store.push("s", FlashKind::Success, "done");
        assert_eq!(store.take("s").len(), 1);
        assert!(store.take("s").is_empty());
    }
}

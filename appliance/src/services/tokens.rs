//! API tokens: long-lived bearer tokens for scripts, created and revoked by the admin.
//!
//! Only a SHA-256 of each token is kept (in memory and, with a state directory, in
//! `api-tokens.json`); the token itself is shown once, when it is created.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::auth::{hex, random_hex};
use serde::{Deserialize, Serialize};

/// The settings file in the state directory.
const TOKENS_FILE: &str = "api-tokens.json";
/// Every token starts with this, so it is recognisable in scripts and logs.
pub const TOKEN_PREFIX: &str = "apt_";
/// At most this many tokens exist at once.
pub const MAX_TOKENS: usize = 64;
/// Longest accepted token name.
pub const MAX_NAME_LEN: usize = 64;

/// One stored token (without its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Short public id, for listing and revoking.
    pub id: String,
    /// What the admin called it.
    pub name: String,
    /// When it was created.
    pub created_unix: u64,
    /// SHA-256 of the token, hex.
    sha256: String,
}

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a token name must be 1 to {MAX_NAME_LEN} printable characters")]
    BadName,
    #[error("there are already {MAX_TOKENS} API tokens; revoke one first")]
    TooMany,
    #[error("there is no API token {0}")]
    NotFound(String),
    #[error("cannot save the API tokens to {path}: {message}")]
    Save { path: PathBuf, message: String },
}

impl TokenError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::BadName => "invalid_argument",
            TokenError::TooMany => "too_many_tokens",
            TokenError::NotFound(_) => "token_not_found",
            TokenError::Save { .. } => "settings_not_saved",
        }
    }
}

/// The token table.
#[derive(Debug)]
pub struct ApiTokens {
    records: Mutex<Vec<TokenRecord>>,
    file: Option<PathBuf>,
}

impl ApiTokens {
    /// Loads the tokens saved in `state_dir` (none without one, or when unreadable; the
    /// warning says why).
    pub fn new(state_dir: Option<&Path>) -> (ApiTokens, Option<String>) {
        let file = state_dir.map(|d| d.join(TOKENS_FILE));
        let (records, warning) =
            super::load_settings(file.as_deref(), "the damaged API token file");
        let tokens = ApiTokens {
            records: Mutex::new(records),
            file,
        };
        (tokens, warning)
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Vec<TokenRecord> {
        self.lock().clone()
    }

    /// Creates a token; returns its record and the secret (shown once).
    pub fn create(&self, name: &str, now_unix: u64) -> Result<(TokenRecord, String), TokenError> {
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_LEN
            || name.chars().any(|c| c.is_control())
        {
            return Err(TokenError::BadName);
        }
        let mut records = self.lock();
        if records.len() >= MAX_TOKENS {
            return Err(TokenError::TooMany);
        }
        let secret = format!("{TOKEN_PREFIX}{}", random_hex(32));
        let record = TokenRecord {
            id: random_hex(6),
            name: name.to_owned(),
            created_unix: now_unix,
            sha256: sha256_hex(&secret),
        };
        let mut next = records.clone();
        next.push(record.clone());
        self.save(&next)?;
        *records = next;
        Ok((record, secret))
    }

    /// Revokes token `id`.
    pub fn revoke(&self, id: &str) -> Result<TokenRecord, TokenError> {
        let mut records = self.lock();
        let Some(pos) = records.iter().position(|r| r.id == id) else {
            return Err(TokenError::NotFound(id.to_owned()));
        };
        let mut next = records.clone();
        let removed = next.remove(pos);
        self.save(&next)?;
        *records = next;
        Ok(removed)
    }

    /// Whether `token` is a live API token.
    pub fn is_valid(&self, token: &str) -> bool {
        if !token.starts_with(TOKEN_PREFIX) {
            return false;
        }
        let digest = sha256_hex(token);
        // Comparing digests: timing tells nothing about the token itself.
        self.lock().iter().any(|r| r.sha256 == digest)
    }

    fn save(&self, records: &[TokenRecord]) -> Result<(), TokenError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        super::save_settings(file, &records).map_err(|e| TokenError::Save {
            path: file.clone(),
            message: e.to_string(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<TokenRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn sha256_hex(text: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_check_revoke_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let (tokens, warning) = ApiTokens::new(Some(dir.path()));
        assert!(warning.is_none());
        let (record, secret) = tokens.create("backup script", 10).unwrap();
        assert!(secret.starts_with(TOKEN_PREFIX));
        assert!(tokens.is_valid(&secret));
        assert!(!tokens.is_valid("apt_0000"));
        assert!(!tokens.is_valid(&secret[TOKEN_PREFIX.len()..]));
        let text = std::fs::read_to_string(dir.path().join(TOKENS_FILE)).unwrap();
        assert!(!text.contains(&secret), "the secret is stored in clear");
        let (again, _) = ApiTokens::new(Some(dir.path()));
        assert!(again.is_valid(&secret));
        assert_eq!(again.list(), vec![record.clone()]);
        again.revoke(&record.id).unwrap();
        assert!(!again.is_valid(&secret));
        assert_eq!(
            again.revoke(&record.id).unwrap_err().code(),
            "token_not_found"
        );
        assert_eq!(
            again.create("  ", 1).unwrap_err().code(),
            "invalid_argument"
        );
    }
}

//! The admin password: an argon2id hash in `<state dir>/admin-password.argon2`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use rand::Rng;

/// The file name of the stored hash inside the state directory.
pub const HASH_FILE: &str = "admin-password.argon2";

/// Letters and digits that cannot be mistaken for each other on a console.
const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Length of a generated password.
const GENERATED_LEN: usize = 16;

/// Failures of the password store.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The hash file could not be read or written.
    #[error("password file {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The stored hash is not a PHC string argon2 understands.
    #[error("password file {} does not hold an argon2 hash", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
    /// Hashing failed.
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// Where the admin password in force came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A hash stored earlier in the state directory.
    Stored,
    /// The boot configuration's `password` key (now stored).
    Config,
    /// Generated now; the text is shown once on the console.
    Generated(String),
}

/// The admin password hash, kept in memory and in the state directory.
#[derive(Debug)]
pub struct PasswordStore {
    hash: RwLock<String>,
}

impl PasswordStore {
    /// Loads the stored hash, or stores one for `initial` (or for a generated password)
    /// when there is none yet.
    pub fn open_or_init(
        state_dir: &Path,
        initial: Option<&str>,
    ) -> Result<(Self, Origin), PasswordError> {
        let path = state_dir.join(HASH_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let hash = text.trim().to_owned();
                if PasswordHash::new(&hash).is_err() {
                    return Err(PasswordError::Corrupt { path });
                }
                let store = PasswordStore {
                    hash: RwLock::new(hash),
                };
                return Ok((store, Origin::Stored));
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(PasswordError::Io { path, source }),
        }
        let (plain, origin) = match initial {
            Some(text) => (text.to_owned(), Origin::Config),
            None => {
                let generated = generate();
                (generated.clone(), Origin::Generated(generated))
            }
        };
        let hash = hash(&plain)?;
        write_private(&path, &hash)?;
        let store = PasswordStore {
            hash: RwLock::new(hash),
        };
        Ok((store, origin))
    }

    /// A store that accepts no password (the CLI's in-process API, which serves no login).
    pub fn refusing() -> Self {
        PasswordStore {
            hash: RwLock::new(String::new()),
        }
    }

    /// A store that lives only in memory (tests).
    #[cfg(test)]
    pub fn in_memory(password: &str) -> Result<Self, PasswordError> {
        // Cheap parameters: verification reads them from the hash, so tests stay fast.
        let params = argon2::Params::new(64, 1, 1, None)
            .map_err(|err| PasswordError::Hash(err.to_string()))?;
        let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let hash = argon
            .hash_password(password.as_bytes(), &salt)
            .map_err(|err| PasswordError::Hash(err.to_string()))?
            .to_string();
        Ok(PasswordStore {
            hash: RwLock::new(hash),
        })
    }

    /// Replaces the password: stores the new hash in `state_dir` (when given), then uses
    /// it. Slow on purpose (argon2).
    pub fn replace(&self, state_dir: Option<&Path>, password: &str) -> Result<(), PasswordError> {
        let new = hash(password)?;
        if let Some(dir) = state_dir {
            write_private(&dir.join(HASH_FILE), &new)?;
        }
        *self.hash.write().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(())
    }

    /// Whether `candidate` is the admin password. Slow on purpose (argon2).
    pub fn verify(&self, candidate: &str) -> bool {
        let stored = match self.hash.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        match PasswordHash::new(&stored) {
            Ok(parsed) => Argon2::default()
                .verify_password(candidate.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }
}

/// Hashes `password` with argon2id and a random salt, as a PHC string.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|err| PasswordError::Hash(err.to_string()))
}

/// A random password from an unambiguous alphabet.
pub fn generate() -> String {
    let mut rng = rand::thread_rng();
    (0..GENERATED_LEN)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Writes `text` to `path` with mode 0600 through a temporary file and a rename.
pub fn write_private(path: &Path, text: &str) -> Result<(), PasswordError> {
    let io = |source| PasswordError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "appliance-pw-{tag}-{}-{}",
            std::process::id(),
            generate()
        ));
        fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    #[test]
    fn config_password_is_stored_hashed_and_kept() {
        let dir = tempdir("config");
        let (store, origin) = PasswordStore::open_or_init(&dir, Some("first")).expect("init");
        assert_eq!(origin, Origin::Config);
        assert!(store.verify("first"));
        assert!(!store.verify("second"));
        let text = fs::read_to_string(dir.join(HASH_FILE)).expect("hash file");
        assert!(text.starts_with("$argon2id$"), "{text}");
        assert!(!text.contains("first"));
        // A later boot with another configured password keeps the stored one.
        let (again, origin) = PasswordStore::open_or_init(&dir, Some("other")).expect("reopen");
        assert_eq!(origin, Origin::Stored);
        assert!(again.verify("first"));
        assert!(!again.verify("other"));
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn generated_password_verifies() {
        let dir = tempdir("gen");
        let (store, origin) = PasswordStore::open_or_init(&dir, None).expect("init");
        let Origin::Generated(text) = origin else {
            panic!("expected a generated password");
        };
        assert_eq!(text.len(), GENERATED_LEN);
        assert!(text.bytes().all(|b| ALPHABET.contains(&b)));
        assert!(store.verify(&text));
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn corrupt_file_is_an_error() {
        let dir = tempdir("corrupt");
        fs::write(dir.join(HASH_FILE), "not a hash").expect("write");
        assert!(matches!(
            PasswordStore::open_or_init(&dir, None),
            Err(PasswordError::Corrupt { .. })
        ));
        fs::remove_dir_all(&dir).ok();
    }
}

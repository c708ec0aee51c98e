//! Where a repository lives: the [`Target`] trait and its implementations.
//!
//! A target is a flat store of objects named by [`ObjectKey`]s (`a/b/c` style, like object
//! store keys). The repository only needs:
//!
//! | operation                | contract                                                          |
//! |--------------------------|-------------------------------------------------------------------|
//! | [`Target::put`]          | all-or-nothing: readers see the whole object or none of it        |
//! | [`Target::flush`]        | every earlier `put` and `delete` is durable when it returns       |
//! | [`Target::get`]          | whole object, [`RepoError::NotFound`] when absent                 |
//! | [`Target::exists`]       | cheap existence check                                             |
//! | [`Target::list`]         | every object under a prefix, recursively; never temporary objects |
//! | [`Target::delete`]       | idempotent: deleting a missing object succeeds                    |
//! | [`Target::free_space`]   | bytes available, when the target can tell                         |
//! | [`Target::lock`]         | exclusive writer lock, non-blocking ([`RepoError::Locked`])       |
//! | [`Target::remove_temp`]  | removes leftovers of interrupted `put`s                           |
//!
//! A backup is published by writing its index and then its manifest: publishing needs no
//! rename of several objects, so an object store (one PUT per object) fits the same trait.
//! [`LocalDir`] implements `put` as write-temp / fsync / rename and defers the directory
//! fsync to `flush`.

mod local;

use std::fmt;
use std::time::SystemTime;

pub use local::LocalDir;

use crate::error::{RepoError, Result};

/// Name of an object in a target: `/`-separated components of `[A-Za-z0-9._-]`, none empty,
/// none starting with `.` (those are reserved for temporary objects), no `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Validates `key`.
    pub fn new(key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        let valid = key.len() <= 1024
            && !key.is_empty()
            && key.split('/').all(|c| {
                !c.is_empty()
                    && !c.starts_with('.')
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
            });
        if valid {
            Ok(ObjectKey(key))
        } else {
            Err(RepoError::invalid("object key", format!("{key:?}")))
        }
    }

    /// A key built by this crate from parts that are valid by construction (hex digests,
    /// validated backup ids, constant names).
    pub(crate) fn trusted(key: String) -> Self {
        debug_assert!(ObjectKey::new(key.clone()).is_ok(), "{key:?}");
        ObjectKey(key)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One listed object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Its key.
    pub key: ObjectKey,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: SystemTime,
}

/// Held while a writer works on the repository; dropping it releases the lock.
pub trait TargetLock: Send {}

/// Storage a repository lives in. Implementations must be usable from several threads.
pub trait Target: Send + Sync {
    /// Human-readable description for messages (a path, a URL).
    fn describe(&self) -> String;

    /// Stores `data` under `key`, replacing any object there, all-or-nothing. A failed put
    /// leaves no temporary object behind (best effort) and no partial object visible.
    fn put(&self, key: &ObjectKey, data: &[u8]) -> Result<()>;

    /// Stores a content-addressed object (a chunk) like [`Target::put`], except that it
    /// may become visible (to `get`, `exists`, `list`) only at the next
    /// [`Target::flush`], which makes a whole batch durable at once. Callers remember what
    /// they put until then. The default is `put`.
    fn put_batched(&self, key: &ObjectKey, data: &[u8]) -> Result<()> {
        self.put(key, data)
    }

    /// Makes every earlier successful `put`, `put_batched` and `delete` durable (and the
    /// batched objects visible).
    fn flush(&self) -> Result<()>;

    /// Reads a whole object.
    fn get(&self, key: &ObjectKey) -> Result<Vec<u8>>;

    /// Whether an object exists.
    fn exists(&self, key: &ObjectKey) -> Result<bool>;

    /// Every object whose key starts with `prefix/` (recursively), without temporary objects.
    /// A missing prefix lists nothing.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// Removes an object; a missing object is not an error.
    fn delete(&self, key: &ObjectKey) -> Result<()>;

    /// Bytes available for new objects, if the target can tell.
    fn free_space(&self) -> Result<Option<u64>>;

    /// Takes the exclusive writer lock without waiting.
    fn lock(&self) -> Result<Box<dyn TargetLock>>;

    /// Removes temporary objects left by interrupted puts; returns how many.
    fn remove_temp(&self) -> Result<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        assert!(ObjectKey::new("chunks/ab/ab01").is_ok());
        assert!(ObjectKey::new("backups/x/manifest.json").is_ok());
        for bad in ["", "/a", "a/", "a//b", "../a", "a/../b", "a/.tmp", "a b"] {
            assert!(ObjectKey::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ObjectKey::new("a/b/c").unwrap().file_name(), "c");
    }
}

//! [`Repository`]: `repo.json`, the catalogue (derived from `backups/`), manifests and
//! indexes, deleting backups, the writer lock.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};
use crate::formats::{
    BACKUPS_PREFIX, DEFAULT_ZSTD_LEVEL, INDEX_NAME, MANIFEST_NAME, REPO_CONFIG_KEY,
    REPO_FORMAT_NAME, REPO_VERSION,
};
use crate::index::Index;
use crate::manifest::Manifest;
use crate::target::{LocalDir, ObjectKey, Target, TargetLock};
use crate::types::{BackupId, ChunkSize, Digest};
use crate::util::{nonce_hex, rfc3339, unix_now};

/// Contents of `repo.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    /// Always [`REPO_FORMAT_NAME`].
    pub format: String,
    /// Repository format version ([`REPO_VERSION`]).
    pub version: u32,
    /// Random id of this repository.
    pub repo_id: String,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// Hash naming chunks: `sha256`.
    pub chunk_hash: String,
    /// Chunk size of full backups unless a request says otherwise.
    pub default_chunk_size: ChunkSize,
    /// zstd level unless a request says otherwise.
    pub default_zstd_level: i32,
}

/// Settings of a new repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitOptions {
    /// Default chunk size (4 MiB unless set).
    pub chunk_size: ChunkSize,
    /// Default zstd level (3 unless set).
    pub zstd_level: i32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunk_size: ChunkSize::default(),
            zstd_level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

/// A backup whose manifest could not be read; listed so that one damaged backup does not
/// hide the others.
#[derive(Debug)]
pub struct UnreadableBackup {
    /// The directory name under `backups/`.
    pub id: String,
    /// Why it could not be read.
    pub error: RepoError,
}

/// Every backup in a repository.
#[derive(Debug, Default)]
pub struct Catalogue {
    /// Readable backups, oldest first.
    pub backups: Vec<Manifest>,
    /// Published backups whose manifest is damaged.
    pub unreadable: Vec<UnreadableBackup>,
}

/// A backup repository on a [`Target`].
#[derive(Clone)]
pub struct Repository {
    target: Arc<dyn Target>,
    config: RepoConfig,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("target", &self.target.describe())
            .field("config", &self.config)
            .finish()
    }
}

pub(crate) fn manifest_key(id: &BackupId) -> ObjectKey {
    ObjectKey::trusted(format!("{BACKUPS_PREFIX}/{id}/{MANIFEST_NAME}"))
}

pub(crate) fn index_key(id: &BackupId) -> ObjectKey {
    ObjectKey::trusted(format!("{BACKUPS_PREFIX}/{id}/{INDEX_NAME}"))
}

fn config_key() -> ObjectKey {
    ObjectKey::trusted(REPO_CONFIG_KEY.to_owned())
}

impl Repository {
    /// Creates a repository in an empty target (one without `repo.json`).
    pub fn init(target: Arc<dyn Target>, opts: InitOptions) -> Result<Self> {
        if target.exists(&config_key())? {
            return Err(RepoError::AlreadyExists {
                what: format!("a repository in {}", target.describe()),
            });
        }
        let now = unix_now();
        let config = RepoConfig {
            format: REPO_FORMAT_NAME.to_owned(),
            version: REPO_VERSION,
            repo_id: nonce_hex(),
            created: rfc3339(now),
            created_unix: now,
            chunk_hash: "sha256".to_owned(),
            default_chunk_size: opts.chunk_size,
            default_zstd_level: opts.zstd_level,
        };
        let mut json = serde_json::to_vec_pretty(&config)
            .map_err(|e| RepoError::invalid("repository configuration", e.to_string()))?;
        json.push(b'\n');
        target.put(&config_key(), &json)?;
        target.flush()?;
        Ok(Repository { target, config })
    }

    /// Opens the repository in `target`.
    pub fn open(target: Arc<dyn Target>) -> Result<Self> {
        let what = format!("repository description {REPO_CONFIG_KEY}");
        let bytes = match target.get(&config_key()) {
            Ok(b) => b,
            Err(RepoError::NotFound { .. }) => {
                return Err(RepoError::not_found(format!(
                    "a repository in {} ({REPO_CONFIG_KEY} is missing)",
                    target.describe()
                )))
            }
            Err(e) => return Err(e),
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| RepoError::corrupt(&what, format!("not valid JSON: {e}")))?;
        if value.get("format").and_then(|v| v.as_str()) != Some(REPO_FORMAT_NAME) {
            return Err(RepoError::corrupt(
                &what,
                format!("format is not {REPO_FORMAT_NAME:?}"),
            ));
        }
        let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if version != u64::from(REPO_VERSION) {
            return Err(RepoError::FormatVersion {
                what,
                found: u32::try_from(version).unwrap_or(u32::MAX),
                supported: REPO_VERSION,
            });
        }
        let config: RepoConfig = serde_json::from_value(value)
            .map_err(|e| RepoError::corrupt(&what, format!("unexpected content: {e}")))?;
        Ok(Repository { target, config })
    }

    /// Opens the repository in `target`, creating it when `repo.json` is missing.
    pub fn open_or_init(target: Arc<dyn Target>, opts: InitOptions) -> Result<Self> {
        match Self::open(target.clone()) {
            Err(RepoError::NotFound { .. }) => Self::init(target, opts),
            other => other,
        }
    }

    /// Opens (or creates) a repository in the directory `path`, created when missing.
    pub fn open_local(path: impl AsRef<Path>, opts: InitOptions) -> Result<Self> {
        let target = Arc::new(LocalDir::create(path.as_ref())?);
        Self::open_or_init(target, opts)
    }

    /// The repository description.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The target the repository lives in.
    pub fn target(&self) -> &dyn Target {
        self.target.as_ref()
    }

    /// Takes the writer lock.
    pub(crate) fn lock(&self) -> Result<Box<dyn TargetLock>> {
        self.target.lock()
    }

    /// Every backup, derived from the `backups/` objects: a backup exists exactly when its
    /// manifest does. Indexes without a manifest (an interrupted backup) are not listed.
    pub fn list_backups(&self) -> Result<Catalogue> {
        let mut cat = Catalogue::default();
        for dir in self.backup_dirs()?.into_iter().filter(|d| d.has_manifest) {
            let res = BackupId::new(dir.id.clone()).and_then(|id| self.manifest(&id));
            match res {
                Ok(m) => cat.backups.push(m),
                Err(error) => cat.unreadable.push(UnreadableBackup { id: dir.id, error }),
            }
        }
        cat.backups.sort_by(|a, b| {
            (a.created_unix, a.backup_id.as_str()).cmp(&(b.created_unix, b.backup_id.as_str()))
        });
        Ok(cat)
    }

    /// The manifest of backup `id`.
    pub fn manifest(&self, id: &BackupId) -> Result<Manifest> {
        let what = format!("manifest of backup {id}");
        let bytes = match self.target.get(&manifest_key(id)) {
            Ok(b) => b,
            Err(RepoError::NotFound { .. }) => {
                return Err(RepoError::not_found(format!("backup {id}")))
            }
            Err(e) => return Err(e),
        };
        let m = Manifest::from_json(&bytes, &what)?;
        if m.backup_id != *id {
            return Err(RepoError::corrupt(
                what,
                format!("it names backup {}", m.backup_id),
            ));
        }
        Ok(m)
    }

    /// The index of the backup described by `m`, checked against the manifest.
    pub fn index(&self, m: &Manifest) -> Result<Index> {
        let id = &m.backup_id;
        let what = format!("index of backup {id}");
        let bytes = match self.target.get(&index_key(id)) {
            Ok(b) => b,
            Err(RepoError::NotFound { .. }) => {
                return Err(RepoError::corrupt(what, "the index object is missing"))
            }
            Err(e) => return Err(e),
        };
        if Digest::of(&bytes) != m.index_sha256 {
            return Err(RepoError::corrupt(
                what,
                "it does not match the checksum in the manifest",
            ));
        }
        let index = Index::decode(&bytes, &what)?;
        if index.image_size() != m.image_size || index.chunk_size() != m.chunk_size {
            return Err(RepoError::corrupt(
                what,
                "its geometry differs from the manifest",
            ));
        }
        Ok(index)
    }

    /// Deletes backup `id`: its manifest first (which unpublishes it), then its index.
    /// Chunk objects stay until [`Repository::gc`]. Other backups never depend on it: every
    /// index is complete, an incremental's included.
    pub fn delete_backup(&self, id: &BackupId) -> Result<()> {
        let _lock = self.lock()?;
        let mkey = manifest_key(id);
        if !self.target.exists(&mkey)? {
            return Err(RepoError::not_found(format!("backup {id}")));
        }
        self.target.delete(&mkey)?;
        self.target.flush()?;
        self.target.delete(&index_key(id))?;
        self.target.flush()
    }

    /// Directories under `backups/` with what they contain.
    pub(crate) fn backup_dirs(&self) -> Result<Vec<BackupDir>> {
        let mut dirs: BTreeMap<String, BackupDir> = BTreeMap::new();
        for obj in self.target.list(BACKUPS_PREFIX)? {
            let mut parts = obj.key.as_str().split('/').skip(1);
            let (Some(id), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let entry = dirs.entry(id.to_owned()).or_insert_with(|| BackupDir {
                id: id.to_owned(),
                has_manifest: false,
                has_index: false,
            });
            match name {
                MANIFEST_NAME => entry.has_manifest = true,
                INDEX_NAME => entry.has_index = true,
                _ => {}
            }
        }
        Ok(dirs.into_values().collect())
    }
}

/// What a directory under `backups/` holds.
#[derive(Debug)]
pub(crate) struct BackupDir {
    pub id: String,
    pub has_manifest: bool,
    pub has_index: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<Repository>();
        shareable::<crate::JobCtl>();
    }

    #[test]
    fn init_twice_is_refused_and_open_reads_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let target: Arc<dyn Target> = Arc::new(LocalDir::create(dir.path()).unwrap());
        let opts = InitOptions {
            chunk_size: ChunkSize::new(1 << 20).unwrap(),
            zstd_level: 5,
        };
        let repo = Repository::init(target.clone(), opts).unwrap();
        assert!(matches!(
            Repository::init(target.clone(), opts),
            Err(RepoError::AlreadyExists { .. })
        ));
        let again = Repository::open(target).unwrap();
        assert_eq!(again.config(), repo.config());
        assert_eq!(again.config().default_zstd_level, 5);
        assert!(again.list_backups().unwrap().backups.is_empty());
    }
}

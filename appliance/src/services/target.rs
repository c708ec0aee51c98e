//! The local backup target: where the repository (and restored or exported files) live.
//!
//! A target is a block device carrying a filesystem (mounted by the appliance under the
//! mount root when it is not mounted yet), an existing directory, an NFS export (mounted
//! there too, see [`super::nfs`]) or a prefix in an S3 bucket. The
//! appliance never formats anything: a device without a filesystem is refused.
//!
//! With no target configured, the default is the disk with serial [`DEFAULT_SERIAL`]
//! when it carries a filesystem, else the default directory.
//!
//! | below the target root | what                                          |
//! |-----------------------|-----------------------------------------------|
//! | `blksnap-repo/`       | the repository ([`repo::Repository`])         |
//! | `blksnap-files/restores/` | images restored to files                  |
//! | `blksnap-files/exports/`  | exported raw / qcow2 files (downloadable) |

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::MsFlags;
use repo::{InitOptions, RepoError, Repository};
use serde::{Deserialize, Serialize};
use snapcore::devices::FsType;
use snapcore::{DeviceError, Scanner};

use super::nfs::{NfsConfig, NfsError};

/// The serial of the disk used as the target when none is configured.
pub const DEFAULT_SERIAL: &str = "backup0";
/// The repository's directory below the target root.
pub const REPO_DIR: &str = "blksnap-repo";
/// Restored and exported files below the target root.
pub const FILES_DIR: &str = "blksnap-files";
/// The settings file (in the state directory).
const CONFIG_FILE: &str = "target.json";
/// Chunk size of a new repository on a local disk or directory. Small enough that an
/// incremental after scattered small writes reads and stores little (1% of 64 KiB blocks
/// changed touch about 4% of 256 KiB chunks, but half of 4 MiB ones); the index costs
/// 32 bytes per chunk (128 MiB per TiB). Object stores keep the 4 MiB default: every
/// chunk is a request there. An existing repository keeps the size it was made with.
pub const LOCAL_CHUNK_SIZE: u32 = 256 << 10;

/// How a new local repository is made.
fn local_repository_options() -> InitOptions {
    InitOptions {
        chunk_size: repo::ChunkSize::new(LOCAL_CHUNK_SIZE).unwrap_or_default(),
        ..InitOptions::default()
    }
}

/// Where files produced by jobs go, below [`FILES_DIR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileArea {
    /// Images restored to files.
    Restores,
    /// Exported raw and qcow2 files.
    Exports,
}

impl FileArea {
    /// The directory name.
    pub fn dir(self) -> &'static str {
        match self {
            FileArea::Restores => "restores",
            FileArea::Exports => "exports",
        }
    }

    /// Both areas.
    pub const ALL: [FileArea; 2] = [FileArea::Restores, FileArea::Exports];
}

/// What the user chose as target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetConfig {
    /// A block device with a filesystem, by id, serial or kernel name.
    Device { device: String },
    /// An existing directory.
    Directory { path: PathBuf },
    /// A prefix in an S3-compatible bucket; restored and exported files go to the local
    /// default directory.
    S3(s3target::S3Config),
    /// An export of an NFS server, mounted by the appliance.
    Nfs(NfsConfig),
}

impl TargetConfig {
    /// `device serial:backup0` / `directory /mnt/x`.
    pub fn describe(&self) -> String {
        match self {
            TargetConfig::Device { device } => format!("device {device}"),
            TargetConfig::Directory { path } => format!("directory {}", path.display()),
            TargetConfig::Nfs(c) => format!("nfs {}", c.source_name()),
            TargetConfig::S3(c) => format!(
                "s3 {}/{}/{}",
                c.endpoint.trim_end_matches('/'),
                c.bucket,
                c.prefix
            ),
        }
    }
}

/// Why a target cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The device carries no filesystem the appliance could mount.
    #[error("{device} carries no filesystem; the appliance never formats a disk: make a filesystem on it first, or choose another target")]
    NoFilesystem { device: String },
    /// A filesystem the appliance does not mount.
    #[error("{device} carries {fs}, which the appliance does not use as a target (use ext4, xfs or vfat)")]
    UnsupportedFilesystem { device: String, fs: String },
    /// A partitioned disk: choose a partition.
    #[error("{device} holds a partition table; choose one of its partitions")]
    Partitioned { device: String },
    /// mount(2) failed.
    #[error("cannot mount {device} on {mount_point}: {errno}")]
    Mount {
        device: String,
        mount_point: PathBuf,
        errno: nix::errno::Errno,
    },
    /// The directory does not exist or is not a directory.
    #[error("{path} is not an existing directory")]
    NotADirectory { path: PathBuf },
    /// The path is not absolute.
    #[error("the target path {path} is not absolute")]
    RelativePath { path: PathBuf },
    /// The write probe failed.
    #[error("cannot write to {path}: {source}")]
    NotWritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Saving the setting failed.
    #[error("cannot save the target setting to {path}: {source}")]
    Save {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The object store of an S3 setting cannot be used: unreachable, credentials
    /// refused, no such bucket.
    #[error("the S3 target cannot be used: {source}")]
    S3Unusable {
        #[source]
        source: RepoError,
    },
    #[error(transparent)]
    Nfs(#[from] NfsError),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl TargetError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            TargetError::Device(e) => e.code(),
            TargetError::NoFilesystem { .. } => "target_no_filesystem",
            TargetError::UnsupportedFilesystem { .. } => "target_unsupported_filesystem",
            TargetError::Partitioned { .. } => "target_partitioned",
            TargetError::Mount { .. } => "target_mount_failed",
            TargetError::NotADirectory { .. } => "target_not_a_directory",
            TargetError::RelativePath { .. } => "invalid_argument",
            TargetError::NotWritable { .. } => "target_not_writable",
            TargetError::Save { .. } => "settings_not_saved",
            TargetError::S3Unusable { .. } => "target_unusable",
            TargetError::Nfs(e) => e.code(),
            TargetError::Repo(_) => "target_repository",
        }
    }
}

/// A target ready for use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// What it is.
    pub config: TargetConfig,
    /// Whether the user chose it (else it is the default).
    pub configured: bool,
    /// The mounted directory (mount point or the directory itself).
    pub root: PathBuf,
    /// Mounted by the appliance just now.
    pub mounted_now: bool,
}

impl Resolved {
    /// The repository directory.
    pub fn repo_dir(&self) -> PathBuf {
        self.root.join(REPO_DIR)
    }

    /// The directory of a file area.
    pub fn files_dir(&self, area: FileArea) -> PathBuf {
        self.root.join(FILES_DIR).join(area.dir())
    }
}

/// Usage figures of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// The target setting and how to reach it.
#[derive(Debug)]
pub struct Targets {
    config: Mutex<Option<TargetConfig>>,
    file: Option<PathBuf>,
    mount_root: PathBuf,
    default_dir: PathBuf,
    scanner: Scanner,
}

impl Targets {
    /// Loads the setting from `state_dir` (if given; a damaged file is reported and
    /// ignored).
    pub fn new(
        state_dir: Option<&Path>,
        mount_root: PathBuf,
        default_dir: PathBuf,
        scanner: Scanner,
    ) -> (Targets, Option<String>) {
        let file = state_dir.map(|d| d.join(CONFIG_FILE));
        let (config, warning) = super::load_settings::<Option<TargetConfig>>(
            file.as_deref(),
            "the damaged target setting",
        );
        let targets = Targets {
            config: Mutex::new(config),
            file,
            mount_root,
            default_dir,
            scanner,
        };
        (targets, warning)
    }

    /// The configured target, if any.
    pub fn configured(&self) -> Option<TargetConfig> {
        lock(&self.config).clone()
    }

    /// The target in force: the configured one, or the default (see the module docs).
    pub fn effective(&self) -> (TargetConfig, bool) {
        if let Some(c) = self.configured() {
            return (c, true);
        }
        let backup_disk = self
            .scanner
            .find(DEFAULT_SERIAL)
            .ok()
            .filter(|d| d.content.fs_type.is_some());
        match backup_disk {
            Some(d) => (TargetConfig::Device { device: d.id }, false),
            None => (
                TargetConfig::Directory {
                    path: self.default_dir.clone(),
                },
                false,
            ),
        }
    }

    /// The target in force, mounted if needed.
    pub fn resolve(&self) -> Result<Resolved, TargetError> {
        let (config, configured) = self.effective();
        let mut resolved = self.resolve_config(&config, !configured)?;
        resolved.configured = configured;
        Ok(resolved)
    }

    /// Makes `config` usable: mounts a device, checks a directory. `create_dir`: create a
    /// missing directory (only for the built-in default).
    pub fn resolve_config(
        &self,
        config: &TargetConfig,
        create_dir: bool,
    ) -> Result<Resolved, TargetError> {
        match config {
            TargetConfig::Nfs(nfs) => {
                let (root, mounted_now) = nfs.mount(&self.mount_root)?;
                Ok(Resolved {
                    config: config.clone(),
                    configured: true,
                    root,
                    mounted_now,
                })
            }
            TargetConfig::S3(_) => {
                // The repository is in the bucket; files go to the local default directory.
                let dir = &self.default_dir;
                fs::create_dir_all(dir).map_err(|source| TargetError::NotWritable {
                    path: dir.clone(),
                    source,
                })?;
                Ok(Resolved {
                    config: config.clone(),
                    configured: true,
                    root: dir.clone(),
                    mounted_now: false,
                })
            }
            TargetConfig::Directory { path } => {
                if !path.is_absolute() {
                    return Err(TargetError::RelativePath { path: path.clone() });
                }
                if create_dir && !path.exists() {
                    fs::create_dir_all(path).map_err(|source| TargetError::NotWritable {
                        path: path.clone(),
                        source,
                    })?;
                }
                if !path.is_dir() {
                    return Err(TargetError::NotADirectory { path: path.clone() });
                }
                Ok(Resolved {
                    config: config.clone(),
                    configured: true,
                    root: path.clone(),
                    mounted_now: false,
                })
            }
            TargetConfig::Device { device } => {
                let dev = self.scanner.find(device)?;
                let canonical = TargetConfig::Device {
                    device: dev.id.clone(),
                };
                if let Some(mp) = dev.mount_points.first() {
                    return Ok(Resolved {
                        config: canonical,
                        configured: true,
                        root: mp.clone(),
                        mounted_now: false,
                    });
                }
                let fs_type = match dev.content.fs_type {
                    Some(t @ (FsType::Ext2 | FsType::Ext3 | FsType::Ext4)) => {
                        let _ = t;
                        "ext4"
                    }
                    Some(FsType::Xfs) => "xfs",
                    Some(FsType::Vfat) => "vfat",
                    Some(other) => {
                        return Err(TargetError::UnsupportedFilesystem {
                            device: dev.label(),
                            fs: other.name().to_owned(),
                        })
                    }
                    None if dev.content.partition_table.is_some() => {
                        return Err(TargetError::Partitioned {
                            device: dev.label(),
                        })
                    }
                    None => {
                        return Err(TargetError::NoFilesystem {
                            device: dev.label(),
                        })
                    }
                };
                let mount_point = self.mount_root.join(sanitize(&dev.id));
                fs::create_dir_all(&mount_point).map_err(|source| TargetError::NotWritable {
                    path: mount_point.clone(),
                    source,
                })?;
                let flags = MsFlags::MS_NOATIME | MsFlags::MS_NODEV | MsFlags::MS_NOSUID;
                nix::mount::mount(
                    Some(&dev.path),
                    &mount_point,
                    Some(fs_type),
                    flags,
                    None::<&str>,
                )
                .map_err(|errno| TargetError::Mount {
                    device: dev.label(),
                    mount_point: mount_point.clone(),
                    errno,
                })?;
                Ok(Resolved {
                    config: canonical,
                    configured: true,
                    root: mount_point,
                    mounted_now: true,
                })
            }
        }
    }

    /// Opens (creating when missing) the repository of the target in force.
    pub fn repository(&self) -> Result<(Repository, Resolved), TargetError> {
        let resolved = self.resolve()?;
        let repo = match &resolved.config {
            TargetConfig::S3(c) => Repository::open_or_init(
                std::sync::Arc::new(s3target::S3Target::connect(c)?),
                InitOptions::default(),
            )?,
            _ => Repository::open_local(resolved.repo_dir(), local_repository_options())?,
        };
        Ok((repo, resolved))
    }

    /// Checks that `config` can hold backups: reachable, writable; returns its space.
    pub fn test(&self, config: &TargetConfig) -> Result<(Resolved, Space), TargetError> {
        let checked = self.check(config)?;
        // An NFS export mounted only to be tested does not stay mounted.
        if let TargetConfig::Nfs(nfs) = config {
            if checked.0.mounted_now && self.configured().as_ref() != Some(config) {
                nfs.unmount(&self.mount_root);
            }
        }
        Ok(checked)
    }

    fn check(&self, config: &TargetConfig) -> Result<(Resolved, Space), TargetError> {
        let resolved = self.resolve_config(config, false)?;
        if let TargetConfig::S3(c) = config {
            s3target::S3Target::connect(c).map_err(|source| TargetError::S3Unusable { source })?;
        }
        probe_write(&resolved.root)?;
        let space = space(&resolved.root).map_err(|source| TargetError::NotWritable {
            path: resolved.root.clone(),
            source,
        })?;
        Ok((resolved, space))
    }

    /// Tests `config`, then makes it the target and saves the setting.
    pub fn set(&self, config: TargetConfig) -> Result<(Resolved, Space), TargetError> {
        let (resolved, space) = self.check(&config)?;
        let canonical = resolved.config.clone();
        if let Some(file) = &self.file {
            super::save_settings(file, &canonical).map_err(|e| TargetError::Save {
                path: file.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        }
        let old = lock(&self.config).replace(canonical.clone());
        self.release(old, Some(&canonical));
        Ok((resolved, space))
    }

    /// Unmounts the NFS export of `old` when the target in force is no longer it.
    fn release(&self, old: Option<TargetConfig>, new: Option<&TargetConfig>) {
        if let Some(TargetConfig::Nfs(nfs)) = &old {
            if old.as_ref() != new {
                nfs.unmount(&self.mount_root);
            }
        }
    }

    /// Forgets the configured target: the default applies again.
    pub fn reset(&self) -> Result<(), TargetError> {
        if let Some(file) = &self.file {
            match fs::remove_file(file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(TargetError::Save {
                        path: file.clone(),
                        source,
                    })
                }
            }
        }
        let old = lock(&self.config).take();
        self.release(old, None);
        Ok(())
    }
}

/// Free and total bytes of the filesystem holding `path`.
pub fn space(path: &Path) -> std::io::Result<Space> {
    let st = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let frsize = st.fragment_size() as u64;
    Ok(Space {
        free_bytes: (st.blocks_available() as u64).saturating_mul(frsize),
        total_bytes: (st.blocks() as u64).saturating_mul(frsize),
    })
}

/// Writes, syncs and removes a small file in `dir`.
fn probe_write(dir: &Path) -> Result<(), TargetError> {
    let path = dir.join(format!(".appliance-probe-{}", std::process::id()));
    let result = fs::File::create(&path)
        .and_then(|mut f| {
            f.write_all(b"probe\n")?;
            f.sync_all()
        })
        .and_then(|()| fs::remove_file(&path));
    result.map_err(|source| {
        let _ = fs::remove_file(&path);
        TargetError::NotWritable {
            path: dir.to_path_buf(),
            source,
        }
    })
}

/// A device id as a directory name.
fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(dir: &Path) -> Targets {
        let root = dir.join("root");
        fs::create_dir_all(root.join("sys/block")).unwrap();
        fs::create_dir_all(root.join("dev")).unwrap();
        fs::write(root.join("mountinfo"), "").unwrap();
        Targets::new(
            Some(dir),
            dir.join("mnt"),
            dir.join("default"),
            Scanner::rooted(&root),
        )
        .0
    }

    #[test]
    fn default_is_a_directory_without_backup_disk() {
        let dir = tempfile::tempdir().unwrap();
        let t = targets(dir.path());
        let (config, configured) = t.effective();
        assert!(!configured);
        assert_eq!(
            config,
            TargetConfig::Directory {
                path: dir.path().join("default")
            }
        );
        let r = t.resolve().unwrap();
        assert!(r.root.is_dir());
        assert_eq!(r.repo_dir(), dir.path().join("default").join(REPO_DIR));
    }

    #[test]
    fn set_persists_and_rejects_bad_paths() {
        let dir = tempfile::tempdir().unwrap();
        let t = targets(dir.path());
        let bad = t.set(TargetConfig::Directory {
            path: dir.path().join("missing"),
        });
        assert_eq!(bad.unwrap_err().code(), "target_not_a_directory");
        let rel = t.set(TargetConfig::Directory {
            path: PathBuf::from("rel"),
        });
        assert_eq!(rel.unwrap_err().code(), "invalid_argument");
        let unknown = t.set(TargetConfig::Device {
            device: "nope".into(),
        });
        assert_eq!(unknown.unwrap_err().code(), "unknown_device");
        let good = dir.path().join("good");
        fs::create_dir_all(&good).unwrap();
        let (_, space) = t
            .set(TargetConfig::Directory { path: good.clone() })
            .unwrap();
        assert!(space.total_bytes > 0);
        // A new instance reads the setting back.
        let again = targets(dir.path());
        assert_eq!(
            again.configured(),
            Some(TargetConfig::Directory { path: good })
        );
        again.reset().unwrap();
        assert_eq!(targets(dir.path()).configured(), None);
    }

    #[test]
    fn s3_setting_round_trips_masks_the_secret_and_refuses_an_unreachable_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let t = targets(dir.path());
        let cfg = TargetConfig::S3(s3target::S3Config {
            endpoint: "http://127.0.0.1:1".into(),
            region: "us-east-1".into(),
            bucket: "b".into(),
            prefix: "appliance-1".into(),
            access_key: "GK0123".into(),
            secret_key: "topsecret".into(),
            path_style: true,
            verify_tls: true,
            ca_cert_pem: None,
        });
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains("\"kind\":\"s3\""), "{json}");
        assert_eq!(serde_json::from_str::<TargetConfig>(&json).unwrap(), cfg);
        let view = serde_json::to_string(&crate::api::model::TargetConfigView::from(&cfg)).unwrap();
        assert!(!view.contains("topsecret"), "{view}");
        assert!(view.contains(crate::api::model::MASKED_SECRET), "{view}");
        let e = t.set(cfg).unwrap_err();
        assert_eq!(e.code(), "target_unusable");
        let e = e.to_string();
        assert!(
            e.contains("cannot reach the S3 endpoint 127.0.0.1:1: "),
            "{e}"
        );
        assert_eq!(t.configured(), None);
    }
}

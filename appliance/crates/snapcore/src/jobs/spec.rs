//! What a caller asks a job to do. The REST and CLI layers translate their requests into
//! these (opening the [`Repository`] of the chosen target).

use std::path::PathBuf;
use std::sync::Arc;

use repo::{BackupId, Repository};

use super::model::{ExportFormat, JobKind};
use crate::cbt::BackupMode;
use crate::devices::Device;
use crate::session::SessionOptions;
use crate::storage::DiffStorage;

/// Called around TAKE, e.g. to quiesce an application for an application-consistent
/// backup. `before_take` failing fails the job before the snapshot is taken;
/// `after_take` runs whenever `before_take` succeeded, whether TAKE did or not.
pub trait TakeHooks: Send + Sync {
    fn before_take(&self, devices: &[Device]) -> Result<(), String> {
        let _ = devices;
        Ok(())
    }
    fn after_take(&self, devices: &[Device]) {
        let _ = devices;
    }
}

/// What a backup reads.
#[derive(Debug, Clone)]
pub enum BackupSource {
    /// Snapshot the device (id, serial or kernel name) and back up the snapshot's image.
    Device {
        device: String,
        storage: DiffStorage,
        session: SessionOptions,
    },
    /// Back up a file or block device as it is, without a snapshot (disk images; a device
    /// nobody writes to). Always full; no change tracking.
    Path(PathBuf),
}

/// A backup job.
#[derive(Clone)]
pub struct BackupSpec {
    pub repo: Repository,
    pub source: BackupSource,
    pub mode: BackupMode,
    /// Use this id instead of a generated one.
    pub backup_id: Option<BackupId>,
    pub hooks: Option<Arc<dyn TakeHooks>>,
}

impl BackupSpec {
    /// A backup of `device` (snapshotted with `storage`) into `repo`, incremental when
    /// possible.
    pub fn device(repo: Repository, device: impl Into<String>, storage: DiffStorage) -> Self {
        BackupSpec {
            repo,
            source: BackupSource::Device {
                device: device.into(),
                storage,
                session: SessionOptions::default(),
            },
            mode: BackupMode::Auto,
            backup_id: None,
            hooks: None,
        }
    }

    /// A backup of the file or device at `path`, as it is.
    pub fn path(repo: Repository, path: impl Into<PathBuf>) -> Self {
        BackupSpec {
            repo,
            source: BackupSource::Path(path.into()),
            mode: BackupMode::Full,
            backup_id: None,
            hooks: None,
        }
    }
}

impl std::fmt::Debug for BackupSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupSpec")
            .field("repo", &self.repo.target().describe())
            .field("source", &self.source)
            .field("mode", &self.mode)
            .field("backup_id", &self.backup_id)
            .field("hooks", &self.hooks.is_some())
            .finish()
    }
}

/// Restore a backup bit-exact to a block device (at least as large as the image; refused
/// while mounted, held or snapshotted) or to a file (created or truncated; sparse).
#[derive(Debug, Clone)]
pub struct RestoreSpec {
    pub repo: Repository,
    pub backup: BackupId,
    pub destination: PathBuf,
}

/// Check every chunk of a backup (and the whole image's checksum for full backups).
#[derive(Debug, Clone)]
pub struct VerifySpec {
    pub repo: Repository,
    pub backup: BackupId,
}

/// Write a backup as a raw or qcow2 file (never to a block device: use a restore).
#[derive(Debug, Clone)]
pub struct ExportSpec {
    pub repo: Repository,
    pub backup: BackupId,
    pub path: PathBuf,
    pub format: ExportFormat,
}

/// A job to run.
#[derive(Debug, Clone)]
pub enum JobSpec {
    Backup(BackupSpec),
    Restore(RestoreSpec),
    Verify(VerifySpec),
    Export(ExportSpec),
}

impl JobSpec {
    pub fn kind(&self) -> JobKind {
        match self {
            JobSpec::Backup(_) => JobKind::Backup,
            JobSpec::Restore(_) => JobKind::Restore,
            JobSpec::Verify(_) => JobKind::Verify,
            JobSpec::Export(_) => JobKind::Export,
        }
    }

    /// One line for lists: `backup of prod0 to /mnt/backup/repo`.
    pub fn describe(&self) -> String {
        match self {
            JobSpec::Backup(b) => {
                let what = match &b.source {
                    BackupSource::Device { device, .. } => device.clone(),
                    BackupSource::Path(p) => p.display().to_string(),
                };
                format!("backup of {what} to {}", b.repo.target().describe())
            }
            JobSpec::Restore(r) => format!(
                "restore of {} from {} to {}",
                r.backup,
                r.repo.target().describe(),
                r.destination.display()
            ),
            JobSpec::Verify(v) => {
                format!("verify of {} in {}", v.backup, v.repo.target().describe())
            }
            JobSpec::Export(e) => format!(
                "export of {} from {} to {} ({:?})",
                e.backup,
                e.repo.target().describe(),
                e.path.display(),
                e.format
            ),
        }
    }
}

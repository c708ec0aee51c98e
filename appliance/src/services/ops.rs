//! Operations shared by the REST handlers and the web pages: starting jobs against the
//! target's repository, the backup catalogue, restored and exported files.

use std::fs;
use std::path::PathBuf;

use repo::{BackupId, Catalogue};
use snapcore::cbt::BackupMode;
use snapcore::jobs::{
    BackupSpec, ExportFormat, ExportSpec, JobId, JobSpec, RestoreSpec, VerifySpec,
};
use snapcore::session::SessionInfo;
use snapcore::{DiffStorage, JobError, SessionError, SessionOptions, Take};

use super::exports::{ExportError, ExportSource};
use super::target::{FileArea, Resolved, TargetError};
use super::{Level, Services};

/// Why an operation could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
    #[error("there is no file {name} in {area}")]
    NoFile { area: &'static str, name: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<repo::RepoError> for OpError {
    fn from(e: repo::RepoError) -> Self {
        OpError::Job(JobError::Repo(e))
    }
}

/// Where a restore writes.
#[derive(Debug, Clone)]
pub enum RestoreTo {
    /// A block device (id, serial or kernel name).
    Device(String),
    /// A file in the `restores` area.
    File(String),
}

/// A file restored or exported.
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub area: FileArea,
    pub name: String,
    pub size_bytes: u64,
    pub modified_unix: u64,
}

/// Checks a file name chosen by a user: 1-128 of `[A-Za-z0-9._-]`, not starting with `.`
/// or `-` (no paths, no hidden files).
pub fn check_file_name(name: &str) -> Result<(), OpError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(OpError::Invalid {
            what: "file name",
            detail: format!(
                "{name:?} must be 1-128 characters of [A-Za-z0-9._-], not starting with '.' or '-'"
            ),
        })
    }
}

fn backup_id(id: &str) -> Result<BackupId, OpError> {
    BackupId::new(id).map_err(|e| OpError::Invalid {
        what: "backup id",
        detail: e.to_string(),
    })
}

impl Services {
    /// Starts a backup of `device` into the target's repository.
    pub fn start_backup(
        &self,
        device: &str,
        storage: DiffStorage,
        full: bool,
    ) -> Result<JobId, OpError> {
        // Fail early on an unknown device, before the target is touched.
        let found = self.jobs.device(device).map_err(JobError::from)?;
        if let DiffStorage::Device {
            device: scratch, ..
        } = &storage
        {
            let scratch = self.jobs.device(scratch).map_err(JobError::from)?;
            if scratch.overlaps(&found) {
                return Err(OpError::Job(JobError::Session(
                    SessionError::StorageIsSnapshotted {
                        storage: scratch.label(),
                        device: found.label(),
                    },
                )));
            }
        }
        let (repo, _) = self.targets.repository()?;
        let mut spec = BackupSpec::device(repo, found.id.clone(), storage);
        if full {
            spec.mode = BackupMode::Full;
        }
        let id = self.jobs.submit(JobSpec::Backup(spec))?;
        self.events.record(
            Level::Info,
            "job",
            format!("job {id}: backup of {} requested", found.label()),
        );
        Ok(id)
    }

    /// Starts a restore of backup `id`.
    pub fn start_restore(&self, id: &str, to: &RestoreTo) -> Result<JobId, OpError> {
        let backup = backup_id(id)?;
        let (repo, resolved) = self.targets.repository()?;
        repo.manifest(&backup)?;
        let destination = match to {
            RestoreTo::Device(query) => self.jobs.device(query).map_err(JobError::from)?.path,
            RestoreTo::File(name) => {
                check_file_name(name)?;
                area_dir(&resolved, FileArea::Restores)?.join(name)
            }
        };
        let spec = RestoreSpec {
            repo,
            backup,
            destination,
        };
        Ok(self.jobs.submit(JobSpec::Restore(spec))?)
    }

    /// Starts a verification of backup `id`.
    pub fn start_verify(&self, id: &str) -> Result<JobId, OpError> {
        let backup = backup_id(id)?;
        let (repo, _) = self.targets.repository()?;
        repo.manifest(&backup)?;
        Ok(self
            .jobs
            .submit(JobSpec::Verify(VerifySpec { repo, backup }))?)
    }

    /// Starts an export of backup `id` to a file in the `exports` area.
    pub fn start_export(
        &self,
        id: &str,
        format: ExportFormat,
        name: Option<&str>,
    ) -> Result<JobId, OpError> {
        let backup = backup_id(id)?;
        let ext = match format {
            ExportFormat::Raw => "raw",
            ExportFormat::Qcow2 => "qcow2",
        };
        let name = name
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{backup}.{ext}"));
        check_file_name(&name)?;
        let (repo, resolved) = self.targets.repository()?;
        repo.manifest(&backup)?;
        let path = area_dir(&resolved, FileArea::Exports)?.join(&name);
        let spec = ExportSpec {
            repo,
            backup,
            path,
            format,
        };
        Ok(self.jobs.submit(JobSpec::Export(spec))?)
    }

    /// Every backup in the target's repository, and the repository's location.
    pub fn catalogue(&self) -> Result<(Catalogue, Resolved), OpError> {
        let (repo, resolved) = self.targets.repository()?;
        Ok((repo.list_backups()?, resolved))
    }

    /// One backup's manifest.
    pub fn manifest(&self, id: &str) -> Result<repo::Manifest, OpError> {
        let backup = backup_id(id)?;
        let (repo, _) = self.targets.repository()?;
        Ok(repo.manifest(&backup)?)
    }

    /// Deletes backup `id` (its chunks stay until garbage collection).
    pub fn delete_backup(&self, id: &str) -> Result<(), OpError> {
        let backup = backup_id(id)?;
        let exported = self.exports.referencing(
            |s| matches!(s, ExportSource::Backup { backup: b } if *b == backup.as_str()),
        );
        if let Some(export) = exported {
            return Err(ExportError::InUse {
                what: format!("backup {backup}"),
                export,
            }
            .into());
        }
        let (repo, _) = self.targets.repository()?;
        repo.delete_backup(&backup)?;
        self.events
            .record(Level::Info, "target", format!("backup {backup} deleted"));
        Ok(())
    }

    /// Creates a snapshot held on request, taken at once or later, and records it.
    pub fn hold_snapshot(
        &self,
        devices: &[&str],
        storage: &DiffStorage,
        take: Take,
    ) -> Result<SessionInfo, SessionError> {
        let info = self
            .jobs
            .create_snapshot(devices, storage, &SessionOptions::default(), take)?;
        let names: Vec<&str> = info
            .devices
            .iter()
            .map(|d| d.device.name.as_str())
            .collect();
        let what = match take {
            Take::Now => "taken",
            Take::Later => "created (to be taken)",
        };
        self.events.record(
            Level::Info,
            "snapshot",
            format!(
                "snapshot {} of {} {what} on request",
                info.id,
                names.join(", ")
            ),
        );
        Ok(info)
    }

    /// Takes a held snapshot created for later, and records it.
    pub fn take_snapshot(&self, id: &str) -> Result<SessionInfo, JobError> {
        let info = self.jobs.take_snapshot(id)?;
        self.events.record(
            Level::Info,
            "snapshot",
            format!("snapshot {} taken on request", info.id),
        );
        Ok(info)
    }

    /// Destroys a held snapshot, unless an NBD export serves one of its images.
    pub fn destroy_snapshot(&self, id: &str) -> Result<(), OpError> {
        let exported = self.exports.referencing(|s| {
            matches!(s, ExportSource::Snapshot { snapshot, .. } if snapshot.eq_ignore_ascii_case(id))
        });
        if let Some(export) = exported {
            return Err(ExportError::InUse {
                what: format!("snapshot {id}"),
                export,
            }
            .into());
        }
        Ok(self.jobs.destroy_snapshot(id)?)
    }

    /// Restored and exported files on the target.
    pub fn files(&self) -> Result<Vec<FileEntry>, OpError> {
        let resolved = self.targets.resolve()?;
        let mut out = Vec::new();
        for area in FileArea::ALL {
            let dir = resolved.files_dir(area);
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                if !meta.is_file() || check_file_name(&name).is_err() {
                    continue;
                }
                let modified_unix = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                out.push(FileEntry {
                    area,
                    name,
                    size_bytes: meta.len(),
                    modified_unix,
                });
            }
        }
        out.sort_by(|a, b| (a.area.dir(), &a.name).cmp(&(b.area.dir(), &b.name)));
        Ok(out)
    }

    /// The path of an existing file in an area.
    pub fn file_path(&self, area: FileArea, name: &str) -> Result<PathBuf, OpError> {
        check_file_name(name)?;
        let path = self.targets.resolve()?.files_dir(area).join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(OpError::NoFile {
                area: area.dir(),
                name: name.to_owned(),
            })
        }
    }

    /// Deletes a file in an area.
    pub fn delete_file(&self, area: FileArea, name: &str) -> Result<(), OpError> {
        let path = self.file_path(area, name)?;
        fs::remove_file(&path).map_err(|source| OpError::Io {
            context: format!("cannot delete {}", path.display()),
            source,
        })
    }
}

fn area_dir(resolved: &Resolved, area: FileArea) -> Result<PathBuf, OpError> {
    let dir = resolved.files_dir(area);
    fs::create_dir_all(&dir).map_err(|source| OpError::Io {
        context: format!("cannot create {}", dir.display()),
        source,
    })?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_cannot_escape() {
        for bad in ["", "../x", "a/b", ".hidden", "-rf", "a b", &"x".repeat(129)] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
        for good in ["prod0.img", "backup_1-2.qcow2", "A"] {
            assert!(check_file_name(good).is_ok(), "{good:?}");
        }
    }
}

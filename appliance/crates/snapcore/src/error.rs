//! The crate's errors: one enum per part ([`DeviceError`], [`SessionError`], [`JobError`]),
//! each with a stable snake_case [`code`](JobError::code) for protocol mappings (REST
//! `{"code": ...}`, CLI exit status).
//!
//! Messages are sentences that do not repeat their source; show a whole error with
//! [`chain`], which appends each source after `": "`.

use std::io;
use std::path::PathBuf;

use blksnap::DevId;
use repo::{ErrorKind, RepoError};

use crate::jobs::JobId;

/// `err` and each of its sources, joined with `": "`: the message to show a person.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let text = e.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = e.source();
    }
    out
}

/// Finding and describing block devices.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The sysfs block directory could not be listed.
    #[error("cannot list block devices in {path}")]
    Scan {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Nothing matches the id, serial or name.
    #[error("no device matches {query:?} (known: {known})")]
    Unknown { query: String, known: String },
    /// Several devices match (e.g. two disks with the same serial).
    #[error("{query:?} matches several devices ({matches}); use a stable id")]
    Ambiguous { query: String, matches: String },
}

impl DeviceError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            DeviceError::Scan { .. } => "device_scan_failed",
            DeviceError::Unknown { .. } => "unknown_device",
            DeviceError::Ambiguous { .. } => "ambiguous_device",
        }
    }
}

/// Snapshot sessions and their difference storage.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// `/dev/blksnap` does not exist.
    #[error("the blksnap module is not loaded ({path} does not exist)")]
    ModuleNotLoaded { path: PathBuf },
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("no device to snapshot was given")]
    NoDevices,
    #[error("device {device} is listed twice")]
    DuplicateDevice { device: String },
    /// The scratch device is (or overlaps) a device being snapshotted.
    #[error("the difference storage {storage} overlaps the snapshotted device {device}; choose another scratch device")]
    StorageIsSnapshotted { storage: String, device: String },
    /// The scratch device is mounted or held by another device.
    #[error("the scratch device {storage} is in use ({usage})")]
    StorageInUse { storage: String, usage: String },
    /// The scratch device holds a filesystem or partition table and `overwrite` was not set.
    #[error("the scratch device {storage} holds {content}; refusing to overwrite it unless asked to (overwrite)")]
    StorageHasData { storage: String, content: String },
    /// Less difference storage than asked for.
    #[error("the difference storage {storage} is too small: {available} bytes available, {required} bytes asked for")]
    ScratchTooSmall {
        storage: String,
        available: u64,
        required: u64,
    },
    /// The storage cannot be used safely (a file on an unsuitable filesystem, a read-only
    /// device, ...).
    #[error("cannot use {storage} as difference storage: {reason}")]
    StorageUnsuitable { storage: String, reason: String },
    /// Preparing the difference storage failed.
    #[error("{context}")]
    StorageIo {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A device is already part of another snapshot (EBUSY).
    #[error("a device of {devices} is already part of another snapshot")]
    Busy { devices: String },
    /// Any other request the module refused.
    #[error("{what}")]
    Kernel {
        what: String,
        #[source]
        source: blksnap::Error,
    },
    /// The module could not store a chunk: the images are unreadable from then on.
    #[error("the snapshot is corrupted: a chunk of {device} ({dev}) could not be stored in the difference storage ({errno}); its image is no longer readable")]
    Corrupted {
        device: String,
        dev: DevId,
        errno: String,
    },
    /// The image device node did not appear.
    #[error("the image of {device} did not appear at {path}")]
    ImageMissing { device: String, path: PathBuf },
    /// The operation does not fit the session's state.
    #[error("the snapshot is {state}; cannot {action}")]
    InvalidState { state: String, action: String },
}

impl SessionError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::ModuleNotLoaded { .. } => "module_not_loaded",
            SessionError::Device(e) => e.code(),
            SessionError::NoDevices => "no_devices",
            SessionError::DuplicateDevice { .. } => "duplicate_device",
            SessionError::StorageIsSnapshotted { .. } => "storage_is_snapshotted",
            SessionError::StorageInUse { .. } => "storage_in_use",
            SessionError::StorageHasData { .. } => "storage_has_data",
            SessionError::ScratchTooSmall { .. } => "scratch_too_small",
            SessionError::StorageUnsuitable { .. } => "storage_unsuitable",
            SessionError::StorageIo { .. } => "storage_io",
            SessionError::Busy { .. } => "device_busy",
            SessionError::Kernel { .. } => "kernel_error",
            SessionError::Corrupted { .. } => "snapshot_corrupted",
            SessionError::ImageMissing { .. } => "image_missing",
            SessionError::InvalidState { .. } => "invalid_state",
        }
    }

    pub(crate) fn kernel(what: impl Into<String>, source: blksnap::Error) -> Self {
        SessionError::Kernel {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn storage_io(context: impl Into<String>, source: io::Error) -> Self {
        SessionError::StorageIo {
            context: context.into(),
            source,
        }
    }
}

/// Jobs and the job manager.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("the job was cancelled")]
    Cancelled,
    /// Verification found damaged chunks (the report is in the job's result).
    #[error("backup {backup} failed verification: {problems} damaged chunk(s), first: {first}")]
    VerifyFailed {
        backup: String,
        problems: usize,
        first: String,
    },
    /// A restore or export destination is mounted, held or part of a snapshot.
    #[error("refusing to write to {path}: it is in use ({usage})")]
    DestinationInUse { path: PathBuf, usage: String },
    #[error("invalid {what}: {detail}")]
    InvalidArgument { what: &'static str, detail: String },
    /// Opening or reading a backup source that is a file.
    #[error("cannot read the source {path}")]
    Source {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("there is no job {0}")]
    NotFound(JobId),
    #[error("there is no live snapshot {0}")]
    SnapshotNotFound(String),
    #[error("snapshot {id} belongs to running job {job}; cancel the job instead")]
    SnapshotOwned { id: String, job: JobId },
    /// A [`crate::jobs::TakeHooks::before_take`] hook refused.
    #[error("the pre-snapshot hook failed: {0}")]
    Hook(String),
    #[error("the job manager is shutting down")]
    ShuttingDown,
    /// A bug: a job thread panicked.
    #[error("internal error: {0}")]
    Internal(String),
}

impl JobError {
    /// Stable snake_case code (`target_full`, `unknown_device`, `module_not_loaded`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            JobError::Device(e) => e.code(),
            JobError::Session(e) => e.code(),
            JobError::Repo(e) => match e.kind() {
                ErrorKind::NotFound => "not_found",
                ErrorKind::AlreadyExists => "already_exists",
                ErrorKind::Corrupt => "repository_corrupt",
                ErrorKind::TargetFull => "target_full",
                ErrorKind::Io => "target_io",
                ErrorKind::Cancelled => "cancelled",
                ErrorKind::Locked => "repository_locked",
                ErrorKind::FormatVersion => "format_version",
                ErrorKind::InvalidArgument => "invalid_argument",
                ErrorKind::Source => "source_read_failed",
                ErrorKind::Destination => "destination_write_failed",
            },
            JobError::Cancelled => "cancelled",
            JobError::VerifyFailed { .. } => "verify_failed",
            JobError::DestinationInUse { .. } => "destination_in_use",
            JobError::InvalidArgument { .. } => "invalid_argument",
            JobError::Source { .. } => "source_read_failed",
            JobError::NotFound(_) => "job_not_found",
            JobError::SnapshotNotFound(_) => "snapshot_not_found",
            JobError::SnapshotOwned { .. } => "snapshot_owned_by_job",
            JobError::Hook(_) => "hook_failed",
            JobError::ShuttingDown => "shutting_down",
            JobError::Internal(_) => "internal",
        }
    }

    /// Whether this is a cancellation (ours or the repository's).
    pub fn is_cancelled(&self) -> bool {
        self.code() == "cancelled"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_appends_sources_once() {
        let e = JobError::Session(SessionError::kernel(
            "taking the snapshot failed",
            blksnap::Error::new("SNAPSHOT_TAKE", nix::errno::Errno::ENOSPC),
        ));
        assert_eq!(
            chain(&e),
            "taking the snapshot failed: SNAPSHOT_TAKE failed: No space left on device (ENOSPC)"
        );
        assert_eq!(e.code(), "kernel_error");
        let e = JobError::Repo(RepoError::target_io(
            "/mnt/b",
            "writing x",
            io::Error::from_raw_os_error(nix::libc::ENOSPC),
        ));
        assert_eq!(e.code(), "target_full");
        assert!(chain(&e).starts_with("backup target is full: /mnt/b: writing x: "));
    }
}

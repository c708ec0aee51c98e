//! What the API shows of a job: ids, kinds, states, progress and result records. Every
//! type here serialises to JSON (serde) as the REST layer returns it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use repo::{BackupKind, CbtPosition};
use serde::{Deserialize, Serialize};

pub use crate::session::ErrorInfo;

/// A job's number, unique for the manager's lifetime (1, 2, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for JobId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(JobId)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Backup,
    Restore,
    Verify,
    Export,
}

/// ```text
/// Queued ──► Running ──► Done | Failed | Cancelled
///    └──── cancel ─────────────────────► Cancelled
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    /// Done, failed or cancelled.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

/// Progress of the current phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    /// `queued`, `snapshot`, `backup`, `restore`, `verify`, `export`, `cleanup`, `finished`.
    pub phase: String,
    pub done_bytes: u64,
    /// Bytes the phase processes (for an incremental backup: the chunks it reads).
    pub total_bytes: u64,
    /// Average rate of the phase so far.
    pub bytes_per_sec: u64,
    /// Seconds left at that rate, when known.
    pub eta_secs: Option<u64>,
}

/// Everything known about a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    pub id: JobId,
    pub kind: JobKind,
    pub state: JobState,
    /// `backup of vda (serial:prod0) to /mnt/backup/repo`.
    pub description: String,
    pub created_unix: u64,
    pub started_unix: Option<u64>,
    pub finished_unix: Option<u64>,
    pub progress: JobProgress,
    /// Set when the job finished its work (also for a failed verification).
    pub result: Option<JobResult>,
    /// Set when failed or cancelled.
    pub error: Option<ErrorInfo>,
    pub cancel_requested: bool,
    /// What happened, oldest first: `+1.2s message`.
    pub log: Vec<String>,
}

/// The result record of a finished job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobResult {
    Backup(Box<BackupReport>),
    Restore(RestoreReport),
    Verify(VerifyReport),
    Export(ExportReport),
}

/// A device in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRef {
    pub id: String,
    pub name: String,
    pub serial: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupReport {
    pub backup_id: String,
    /// `full` or `incremental`.
    pub mode: BackupKind,
    pub parent: Option<String>,
    /// Why a backup of a tracked device was full.
    pub full_reason: Option<String>,
    /// The device snapshotted, or `None` for a path source.
    pub device: Option<DeviceRef>,
    /// What was read: the snapshot image, or the path.
    pub source: PathBuf,
    /// The snapshot's uuid.
    pub snapshot: Option<String>,
    pub image_size: u64,
    /// Bytes read from the source (whole chunks around the changed blocks).
    pub read_bytes: u64,
    /// Bytes of tracking blocks the change map named changed (incremental only).
    pub changed_bytes: Option<u64>,
    pub read_chunks: u64,
    pub unchanged_chunks: u64,
    pub zero_chunks: u64,
    pub reused_chunks: u64,
    pub new_chunks: u64,
    pub new_bytes: u64,
    /// Bytes the new chunk objects take on the target (compressed).
    pub stored_bytes: u64,
    /// The change-tracking position recorded in the manifest.
    pub cbt: Option<CbtPosition>,
    /// SHA-256 of the image (full backups).
    pub image_sha256: Option<String>,
    /// Seconds spent reading and storing.
    pub seconds: f64,
    pub bytes_per_sec: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreReport {
    pub backup_id: String,
    pub destination: PathBuf,
    /// `block_device` or `sparse_file`.
    pub destination_kind: String,
    pub image_size: u64,
    pub written_bytes: u64,
    pub image_sha256: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub backup_id: String,
    pub ok: bool,
    pub chunk_count: u64,
    pub checked_chunks: u64,
    pub zero_chunks: u64,
    /// One line per damaged chunk.
    pub problems: Vec<String>,
    pub image_sha256_ok: Option<bool>,
    pub seconds: f64,
}

/// Export file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Raw,
    Qcow2,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportReport {
    pub backup_id: String,
    pub path: PathBuf,
    pub format: ExportFormat,
    pub image_size: u64,
    pub file_size: u64,
    pub image_sha256: String,
    pub seconds: f64,
}

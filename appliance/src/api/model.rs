//! The REST API's own request and response types. They derive [`ToSchema`], so the OpenAPI
//! document is generated from exactly what the handlers send and accept; each response
//! type is built from the core's records with a `From` conversion here and nowhere else.

use serde::{Deserialize, Serialize};
use snapcore::jobs::{JobInfo, JobKind, JobState};
use snapcore::session::SessionInfo;
use snapcore::Device;
use utoipa::ToSchema;

use crate::services::events::Event;
use crate::services::target::{FileArea, TargetConfig};
use crate::services::tokens::TokenRecord;

// --- devices -------------------------------------------------------------------------------

/// A disk or partition.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceView {
    /// Stable id: `serial:<serial>`, `wwn:<wwn>`, `path:<bus path>` or `name:<name>`;
    /// a partition's is its disk's with `-part<N>`.
    pub id: String,
    /// Kernel name (`vda`, `sdb1`).
    pub name: String,
    /// Device node.
    pub path: String,
    /// `MAJOR:MINOR`.
    pub dev: String,
    /// `disk` or `partition`.
    pub kind: String,
    /// A partition's disk (kernel name).
    pub parent: Option<String>,
    pub partition: Option<u32>,
    /// A disk's partitions (kernel names).
    pub partitions: Vec<String>,
    pub size_bytes: u64,
    pub logical_sector_size: u32,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    /// Filesystem or other signature (`ext4`, `LVM2_member`, ...).
    pub fs_type: Option<String>,
    pub fs_label: Option<String>,
    pub fs_uuid: Option<String>,
    /// `gpt` or `mbr`.
    pub partition_table: Option<String>,
    /// Why the content could not be read.
    pub probe_error: Option<String>,
    pub mount_points: Vec<String>,
    /// Devices stacked on it.
    pub holders: Vec<String>,
    pub read_only: bool,
    pub removable: bool,
    /// Why it is in use (mounted, held), if it is.
    pub in_use: Option<String>,
}

impl From<&Device> for DeviceView {
    fn from(d: &Device) -> Self {
        DeviceView {
            id: d.id.clone(),
            name: d.name.clone(),
            path: d.path.display().to_string(),
            dev: d.dev.to_string(),
            kind: serde_plain(&d.kind),
            parent: d.parent.clone(),
            partition: d.partition,
            partitions: d.partitions.clone(),
            size_bytes: d.size_bytes,
            logical_sector_size: d.logical_sector_size,
            model: d.model.clone(),
            vendor: d.vendor.clone(),
            serial: d.serial.clone(),
            wwn: d.wwn.clone(),
            fs_type: d.content.fs_type.map(|t| t.name().to_owned()),
            fs_label: d.content.label.clone(),
            fs_uuid: d.content.uuid.clone(),
            partition_table: d.content.partition_table.as_ref().map(serde_plain),
            probe_error: d.probe_error.clone(),
            mount_points: d
                .mount_points
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            holders: d.holders.clone(),
            read_only: d.read_only,
            removable: d.removable,
            in_use: d.usage(),
        }
    }
}

/// A unit enum's serde name (`"disk"`).
pub fn serde_plain<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

// --- errors inside records -----------------------------------------------------------------

/// A code and a message (a failed job or snapshot).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorView {
    pub code: String,
    pub message: String,
}

impl From<&snapcore::session::ErrorInfo> for ErrorView {
    fn from(e: &snapcore::session::ErrorInfo) -> Self {
        ErrorView {
            code: e.code.clone(),
            message: e.message.clone(),
        }
    }
}

// --- snapshots -----------------------------------------------------------------------------

/// Where a snapshot keeps the original data of blocks written while it is held.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DiffStorageRequest {
    /// A whole scratch device or partition (id, serial or kernel name).
    Device {
        device: String,
        /// Use it even though it holds a filesystem or partition table.
        #[serde(default)]
        overwrite: bool,
    },
    /// A file on a mounted ext4/xfs scratch filesystem, created with this size.
    File { path: String, size_bytes: u64 },
}

impl From<DiffStorageRequest> for snapcore::DiffStorage {
    fn from(r: DiffStorageRequest) -> Self {
        match r {
            DiffStorageRequest::Device { device, overwrite } => {
                snapcore::DiffStorage::Device { device, overwrite }
            }
            DiffStorageRequest::File { path, size_bytes } => {
                snapcore::DiffStorage::file(path, size_bytes)
            }
        }
    }
}

/// `POST /api/v1/snapshots`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshotRequest {
    /// Devices to snapshot together (id, serial or kernel name).
    pub devices: Vec<String>,
    pub storage: DiffStorageRequest,
    /// Take the snapshot at once (the default). `false`: it is only created, and
    /// `POST /api/v1/snapshots/{id}/take` picks the instant.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub take: bool,
}

fn yes() -> bool {
    true
}

/// One device of a snapshot.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SnapshotDeviceView {
    pub device_id: String,
    pub name: String,
    /// The point-in-time image (`/dev/blksnap-imageN`) once taken.
    pub image: Option<String>,
}

/// Difference storage of a snapshot.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StorageView {
    pub description: String,
    pub total_bytes: u64,
    pub given_bytes: u64,
    /// The module asked for more after everything was given.
    pub exhausted: bool,
}

/// A live snapshot.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SnapshotView {
    /// The snapshot's uuid.
    pub id: String,
    /// `created`, `taken`, `failed`, `destroyed`.
    pub state: String,
    pub error: Option<ErrorView>,
    pub devices: Vec<SnapshotDeviceView>,
    pub storage: StorageView,
    pub created_unix: u64,
    pub taken_unix: Option<u64>,
    /// Storage appended, low space, corruption; oldest first.
    pub events: Vec<String>,
    /// The job that owns it (a running backup), if any.
    pub job: Option<u64>,
}

impl SnapshotView {
    /// The view of a session and its owning job.
    pub fn new(s: &SessionInfo, job: Option<u64>) -> Self {
        SnapshotView {
            id: s.id.clone(),
            state: serde_plain(&s.state),
            error: s.error.as_ref().map(ErrorView::from),
            devices: s
                .devices
                .iter()
                .map(|d| SnapshotDeviceView {
                    device_id: d.device.id.clone(),
                    name: d.device.name.clone(),
                    image: d.image.as_ref().map(|p| p.display().to_string()),
                })
                .collect(),
            storage: StorageView {
                description: s.storage.description.clone(),
                total_bytes: s.storage.total_bytes,
                given_bytes: s.storage.given_bytes,
                exhausted: s.storage.exhausted,
            },
            created_unix: s.created_unix,
            taken_unix: s.taken_unix,
            events: s.events.clone(),
            job,
        }
    }
}

// --- jobs ----------------------------------------------------------------------------------

/// Progress of a job's current phase.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgressView {
    /// `queued`, `snapshot`, `backup`, `restore`, `verify`, `export`, `cleanup`, `finished`.
    pub phase: String,
    pub done_bytes: u64,
    pub total_bytes: u64,
    /// 0 to 100 (100 once the job is done).
    pub percent: u8,
    pub bytes_per_sec: u64,
    /// Seconds left at the current rate.
    pub eta_secs: Option<u64>,
}

/// A job and everything known about it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: u64,
    /// `backup`, `restore`, `verify`, `export`.
    pub kind: String,
    /// `queued`, `running`, `done`, `failed`, `cancelled`.
    pub state: String,
    pub finished: bool,
    pub description: String,
    pub created_unix: u64,
    pub started_unix: Option<u64>,
    pub finished_unix: Option<u64>,
    pub progress: ProgressView,
    /// The kind-specific report of a finished job (`kind` names it: `backup`, `restore`,
    /// `verify`, `export`), with `image_sha256` where an image was read or written.
    pub result: Option<serde_json::Value>,
    pub error: Option<ErrorView>,
    pub cancel_requested: bool,
    /// What happened, oldest first.
    pub log: Vec<String>,
    /// Where to download the file an export produced.
    pub download: Option<String>,
}

impl From<&JobInfo> for JobView {
    fn from(j: &JobInfo) -> Self {
        let p = &j.progress;
        let percent = if j.state == JobState::Done {
            100
        } else {
            (p.done_bytes.min(p.total_bytes) * 100)
                .checked_div(p.total_bytes)
                .map_or(0, |pct| u8::try_from(pct).unwrap_or(100))
        };
        let download = match (&j.result, j.kind) {
            (Some(snapcore::jobs::JobResult::Export(e)), JobKind::Export) => e
                .path
                .file_name()
                .map(|n| format!("/api/v1/files/exports/{}", n.to_string_lossy())),
            _ => None,
        };
        JobView {
            id: j.id.0,
            kind: serde_plain(&j.kind),
            state: serde_plain(&j.state),
            finished: j.state.is_finished(),
            description: j.description.clone(),
            created_unix: j.created_unix,
            started_unix: j.started_unix,
            finished_unix: j.finished_unix,
            progress: ProgressView {
                phase: p.phase.clone(),
                done_bytes: p.done_bytes,
                total_bytes: p.total_bytes,
                percent,
                bytes_per_sec: p.bytes_per_sec,
                eta_secs: p.eta_secs,
            },
            result: j.result.as_ref().and_then(|r| serde_json::to_value(r).ok()),
            error: j.error.as_ref().map(ErrorView::from),
            cancel_requested: j.cancel_requested,
            log: j.log.clone(),
            download,
        }
    }
}

// --- backups -------------------------------------------------------------------------------

/// `POST /api/v1/backups`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// The device to back up (id, serial or kernel name).
    pub device: String,
    /// Difference storage for the snapshot taken during the backup.
    pub storage: DiffStorageRequest,
    /// `auto` (incremental when a usable parent exists) or `full`.
    #[serde(default)]
    pub mode: BackupModeRequest,
}

/// Full or incremental.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackupModeRequest {
    #[default]
    Auto,
    Full,
}

/// Where a restore writes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RestoreDestination {
    /// A block device at least as large as the image, not mounted or in use.
    Device { device: String },
    /// A file of this name in the target's `restores` area (created or replaced).
    File { name: String },
}

/// `POST /api/v1/backups/{id}/restore`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    pub destination: RestoreDestination,
}

/// Export file format.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormatRequest {
    #[default]
    Raw,
    Qcow2,
}

/// `POST /api/v1/backups/{id}/export`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    #[serde(default)]
    pub format: ExportFormatRequest,
    /// File name in the `exports` area; default `<backup id>.<raw|qcow2>`.
    pub name: Option<String>,
}

/// The disk a backup was made of.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DiskView {
    pub name: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub size_bytes: u64,
}

/// A backup in the catalogue.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackupView {
    pub backup_id: String,
    /// `full` or `incremental`.
    pub kind: String,
    pub parent: Option<String>,
    pub disk: DiskView,
    pub image_size: u64,
    pub chunk_size: u32,
    pub chunk_count: u64,
    /// RFC 3339 UTC.
    pub created: String,
    pub created_unix: u64,
    /// SHA-256 of the whole image (full backups).
    pub image_sha256: Option<String>,
    pub read_bytes: u64,
    pub new_chunks: u64,
    pub stored_bytes: u64,
    pub tool_version: String,
}

impl From<&repo::Manifest> for BackupView {
    fn from(m: &repo::Manifest) -> Self {
        BackupView {
            backup_id: m.backup_id.to_string(),
            kind: serde_plain(&m.kind),
            parent: m.parent.as_ref().map(|p| p.to_string()),
            disk: DiskView {
                name: m.disk.name.clone(),
                serial: m.disk.serial.clone(),
                model: m.disk.model.clone(),
                size_bytes: m.disk.size_bytes,
            },
            image_size: m.image_size,
            chunk_size: m.chunk_size.bytes(),
            chunk_count: m.chunk_count,
            created: m.created.clone(),
            created_unix: m.created_unix,
            image_sha256: m.image_sha256.map(|d| d.to_hex()),
            read_bytes: m.stats.read_bytes,
            new_chunks: m.stats.new_chunks,
            stored_bytes: m.stats.stored_bytes,
            tool_version: m.tool_version.clone(),
        }
    }
}

/// A published backup whose manifest cannot be read.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnreadableView {
    pub backup_id: String,
    pub error: String,
}

/// `GET /api/v1/backups`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CatalogueView {
    /// The repository's location.
    pub repository: String,
    /// Oldest first.
    pub backups: Vec<BackupView>,
    pub unreadable: Vec<UnreadableView>,
}

// --- target --------------------------------------------------------------------------------

/// A target setting.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetConfigView {
    /// A block device carrying a filesystem (never formatted by the appliance).
    Device { device: String },
    /// An existing directory (absolute path).
    Directory { path: String },
    /// A prefix in an S3-compatible bucket. The secret is never returned (`********`;
    /// sent back as is, it keeps the stored one). Restored and exported files go to the
    /// appliance's local default directory.
    S3(s3target::S3Config),
    /// An export of an NFS server (version 4), mounted by the appliance; the repository and
    /// the restored and exported files live there.
    Nfs(crate::services::nfs::NfsConfig),
}

/// What the API shows instead of a secret.
pub const MASKED_SECRET: &str = "********";

impl From<&TargetConfig> for TargetConfigView {
    fn from(c: &TargetConfig) -> Self {
        match c {
            TargetConfig::Device { device } => TargetConfigView::Device {
                device: device.clone(),
            },
            TargetConfig::Directory { path } => TargetConfigView::Directory {
                path: path.display().to_string(),
            },
            TargetConfig::Nfs(c) => TargetConfigView::Nfs(c.clone()),
            TargetConfig::S3(c) => TargetConfigView::S3(s3target::S3Config {
                secret_key: MASKED_SECRET.to_owned(),
                ..c.clone()
            }),
        }
    }
}

impl From<TargetConfigView> for TargetConfig {
    fn from(c: TargetConfigView) -> Self {
        match c {
            TargetConfigView::Device { device } => TargetConfig::Device { device },
            TargetConfigView::Directory { path } => TargetConfig::Directory { path: path.into() },
            TargetConfigView::S3(c) => TargetConfig::S3(c),
            TargetConfigView::Nfs(c) => TargetConfig::Nfs(c),
        }
    }
}

/// The target in force and whether it works.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TargetStatusView {
    pub config: TargetConfigView,
    /// Chosen by the admin (else it is the default).
    pub configured: bool,
    /// Reachable and writable.
    pub ok: bool,
    /// The mounted directory.
    pub root: Option<String>,
    /// The repository directory.
    pub repository: Option<String>,
    pub free_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
    /// Why it cannot be used.
    pub error: Option<ErrorView>,
    /// Whether settings survive a restart (a config disk exists).
    pub settings_persistent: bool,
}

// --- files ---------------------------------------------------------------------------------

/// A restored or exported file on the target.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FileView {
    /// `restores` or `exports`.
    pub area: String,
    pub name: String,
    pub size_bytes: u64,
    pub modified_unix: u64,
    /// `GET` this to download it.
    pub download: String,
}

impl FileView {
    /// A file's view.
    pub fn new(area: FileArea, name: String, size_bytes: u64, modified_unix: u64) -> Self {
        FileView {
            area: area.dir().to_owned(),
            download: format!("/api/v1/files/{}/{name}", area.dir()),
            name,
            size_bytes,
            modified_unix,
        }
    }
}

// --- events --------------------------------------------------------------------------------

/// One event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    pub id: u64,
    pub time_unix: u64,
    /// `info`, `warning`, `error`.
    pub level: String,
    /// `job`, `snapshot`, `target`, `system`.
    pub source: String,
    pub message: String,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        EventView {
            id: e.id,
            time_unix: e.time_unix,
            level: e.level.as_str().to_owned(),
            source: e.source.to_owned(),
            message: e.message.clone(),
        }
    }
}

/// `GET /api/v1/events`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventList {
    /// Oldest first.
    pub events: Vec<EventView>,
    /// Pass as `after` to get only newer events.
    pub last_id: u64,
}

// --- settings ------------------------------------------------------------------------------

/// `POST /api/v1/settings/password`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    /// At least 8 characters.
    pub new_password: String,
}

/// `PUT /api/v1/settings/certificate`: a certificate for the web UI and REST API.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateInstall {
    /// PEM: the server certificate first, then any intermediate certificates.
    pub certificate: String,
    /// PEM: its private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: String,
}

/// `POST /api/v1/settings/config-disk`: format a disk to keep the settings on.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigDiskRequest {
    /// The disk (id, serial or kernel name); everything on it is lost.
    pub device: String,
    /// Format it even though it holds a filesystem or partition table.
    #[serde(default)]
    pub overwrite: bool,
}

/// `POST /api/v1/settings/tokens`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// What the token is for (1 to 64 characters).
    pub name: String,
}

/// An API token (without its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub created_unix: u64,
}

impl From<&TokenRecord> for TokenView {
    fn from(t: &TokenRecord) -> Self {
        TokenView {
            id: t.id.clone(),
            name: t.name.clone(),
            created_unix: t.created_unix,
        }
    }
}

/// A new API token: the secret is shown only now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenCreated {
    pub id: String,
    pub name: String,
    pub created_unix: u64,
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
}

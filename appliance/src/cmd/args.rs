//! The clap definitions of the verbs that drive the daemon over its local socket.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};

use crate::cli::ClientArgs;

/// Verbs that talk to the running daemon (the same REST API as the web UI).
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// List disks and partitions.
    Devices(ClientArgs),
    /// Create, take, list or destroy snapshots held on request.
    #[command(subcommand)]
    Snapshot(SnapshotVerb),
    /// Start a backup of a device (incremental when a usable parent exists).
    Backup(BackupArgs),
    /// List the backups in the target's repository.
    Backups(ClientArgs),
    /// Restore a backup to a device or to a file in the target's `restores` area.
    Restore(RestoreArgs),
    /// Verify every chunk of a backup.
    Verify(JobStartArgs),
    /// Export a backup as a raw or qcow2 file in the target's `exports` area.
    Export(ExportArgs),
    /// List jobs (running, queued and the latest finished ones).
    Jobs(ClientArgs),
    /// Show one job, wait for it, or cancel it.
    Job(JobArgs),
    /// Show where settings are kept, or format a disk to keep them on (--format).
    ConfigDisk(ConfigDiskArgs),
}

/// `appliance config-disk`.
#[derive(Debug, Clone, Args)]
pub struct ConfigDiskArgs {
    /// Format this disk (id, serial or kernel name) ext4 as APPLIANCE-CONFIG and move the
    /// settings onto it; everything on it is lost.
    #[arg(long, value_name = "DEVICE")]
    pub format: Option<String>,
    /// Format it even though it holds a filesystem or partition table.
    #[arg(long, requires = "format")]
    pub overwrite: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `appliance snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotVerb {
    /// Create and take a snapshot of one or more devices (with --later: only create it).
    Create(SnapshotCreateArgs),
    /// Take a snapshot created with --later: this is its point in time.
    Take(SnapshotIdArgs),
    /// List live snapshots.
    List(ClientArgs),
    /// Destroy a snapshot held on request.
    Destroy(SnapshotIdArgs),
}

/// Where the difference storage goes: a scratch device, or a file on a mounted
/// ext4/xfs scratch filesystem.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("storage").args(["scratch", "scratch_file"])))]
pub struct StorageArgs {
    /// Scratch device for the difference storage (id, serial or kernel name).
    #[arg(long, value_name = "DEVICE")]
    pub scratch: Option<String>,
    /// Use the scratch device even though it holds a filesystem or partition table.
    #[arg(long, requires = "scratch")]
    pub overwrite: bool,
    /// A file for the difference storage instead of a device (needs --scratch-size).
    #[arg(long, value_name = "PATH", requires = "scratch_size_mib")]
    pub scratch_file: Option<PathBuf>,
    /// Size of the --scratch-file in MiB.
    #[arg(long = "scratch-size", value_name = "MIB", requires = "scratch_file")]
    pub scratch_size_mib: Option<u64>,
}

/// `appliance snapshot create`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotCreateArgs {
    /// Device to snapshot (id, serial or kernel name); repeat to snapshot several together.
    #[arg(long = "device", value_name = "DEVICE", required = true)]
    pub devices: Vec<String>,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Only create the snapshot; `snapshot take ID` takes it.
    #[arg(long)]
    pub later: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `appliance snapshot take` and `appliance snapshot destroy`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotIdArgs {
    /// The snapshot's uuid.
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Waiting for a job.
#[derive(Debug, Clone, Copy, Args)]
pub struct WaitArgs {
    /// Wait for the job to finish, showing its progress; fail if the job fails.
    #[arg(long)]
    pub wait: bool,
}

/// `appliance backup`.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The device to back up (id, serial or kernel name).
    pub device: String,
    /// Make a full backup even when an incremental one is possible.
    #[arg(long)]
    pub full: bool,
    /// Difference storage; without it, the unused disk with serial `scratch0` (or one
    /// already prepared as blksnap scratch).
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `appliance restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The backup id.
    pub backup: String,
    /// A device (id, serial or kernel name), or `file:NAME` for a file in the target's
    /// `restores` area.
    #[arg(long, value_name = "DEST")]
    pub to: String,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `appliance verify` (and other verbs that only name a backup).
#[derive(Debug, Clone, Args)]
pub struct JobStartArgs {
    /// The backup id.
    pub backup: String,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Export file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A raw disk image.
    Raw,
    /// A qcow2 image.
    Qcow2,
}

/// `appliance export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The backup id.
    pub backup: String,
    /// File format.
    #[arg(long, value_enum, default_value = "raw")]
    pub format: Format,
    /// File name in the `exports` area (default `<backup id>.<raw|qcow2>`).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `appliance job`.
#[derive(Debug, Clone, Args)]
pub struct JobArgs {
    /// The job number.
    pub id: u64,
    /// Ask the job to stop (a cancelled backup publishes nothing).
    #[arg(long, conflicts_with = "wait")]
    pub cancel: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

//! The backup repository: disk images cut into fixed-size chunks, stored once per content
//! (SHA-256, zstd), with a per-backup index and manifest, on any [`Target`].
//!
//! The crate knows nothing about snapshots, the kernel module or HTTP: callers hand it an
//! [`ImageSource`] (a snapshot image, a file), changed byte ranges (converted from the CBT
//! map) and a [`JobCtl`] for progress and cancellation. The full format is described in
//! `docs/REPOSITORY-FORMAT.md`; every constant lives in [`formats`].
//!
//! # Layout on the target
//!
//! | key                                 | what                                          |
//! |-------------------------------------|-----------------------------------------------|
//! | `repo.json`                         | format name and version, defaults             |
//! | `lock`                              | writer lock (local targets)                   |
//! | `chunks/<2 hex>/<64 hex>`           | one chunk: header + zstd or raw payload       |
//! | `backups/<id>/index`                | ordered chunk digests, checksummed            |
//! | `backups/<id>/manifest.json`        | metadata; its presence publishes the backup   |
//!
//! # Locking and concurrency
//!
//! | operation                                   | writer lock | may run alongside        |
//! |---------------------------------------------|-------------|--------------------------|
//! | backup_full, backup_incremental             | held        | readers                  |
//! | delete_backup, gc, gc_temp                  | held        | readers of other backups |
//! | list_backups, manifest, verify, restore, export_raw, export_qcow2 | none | everything |
//!
//! A second writer gets [`RepoError::Locked`] at once (no waiting).
//!
//! # Modules
//!
//! | module        | what it holds                                              |
//! |---------------|------------------------------------------------------------|
//! | [`formats`]   | magic numbers, versions, names (do not modify)             |
//! | [`target`]    | the [`Target`] trait, [`LocalDir`]                         |
//! | `chunk`       | chunk object encoding, the content-addressed chunk store   |
//! | `index`       | per-backup index                                           |
//! | `manifest`    | per-backup manifest                                        |
//! | `repo`        | [`Repository`]: open/init, catalogue, delete               |
//! | `backup`      | full and incremental backups                               |
//! | `restore`     | ordered chunk reader, restore, raw export                  |
//! | `image`       | random access to a backup's image (NBD export of backups)  |
//! | `verify`      | per-chunk verification                                     |
//! | `qcow2`       | qcow2 v3 writer and export                                 |
//! | `gc`          | garbage collection                                         |
//! | `pipeline`    | ordered parallel pipeline used by all of the above         |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backup;
mod chunk;
mod error;
pub mod formats;
mod gc;
mod image;
mod index;
mod job;
mod manifest;
mod pipeline;
mod qcow2;
mod repo;
mod restore;
mod source;
pub mod target;
mod types;
mod util;
mod verify;

pub use backup::{BackupRequest, BackupResult};
pub use chunk::chunk_key;
pub use error::{ErrorKind, RepoError, Result};
pub use gc::{GcOptions, GcReport};
pub use image::{BackupImage, DEFAULT_CACHED_CHUNKS};
pub use index::{ChunkRef, Index};
pub use job::{CancelToken, JobCtl, Phase, Progress, ProgressFn};
pub use manifest::{BackupKind, BackupStats, CbtPosition, Compression, DiskIdentity, Manifest};
pub use qcow2::Qcow2Export;
pub use repo::{Catalogue, InitOptions, RepoConfig, Repository, UnreadableBackup};
pub use restore::{DestKind, RestoreResult};
pub use source::ImageSource;
pub use target::{LocalDir, ObjectInfo, ObjectKey, Target, TargetLock};
pub use types::{BackupId, ByteRange, ChunkIdx, ChunkSize, Digest};
pub use verify::{ChunkProblem, ProblemKind, VerifyReport};

//! The supervisor core: everything between the kernel interface ([`blksnap`]) and the
//! web/API layer. It finds block devices, holds snapshot sessions with their difference
//! storage, and runs backup, restore, verify and export jobs against a
//! [`repo::Repository`]. It knows nothing about HTTP: the REST handlers and CLI verbs
//! translate their requests into calls of this crate and its JSON-serialisable records
//! back into responses.
//!
//! # Using it from the daemon
//!
//! ```no_run
//! use snapcore::jobs::{BackupSpec, JobManager, JobManagerConfig, JobSpec};
//! use snapcore::storage::DiffStorage;
//!
//! let jobs = JobManager::new(JobManagerConfig::default()); // /sys, /dev, /dev/blksnap
//! // Once, before anything else: release snapshots a crashed daemon left behind.
//! let _ = jobs.kernel().cleanup_leftovers();
//!
//! let disks = jobs.devices()?; // GET /devices
//! let repo = repo::Repository::open_local("/mnt/backup/repo", Default::default())?;
//! let id = jobs.submit(JobSpec::Backup(BackupSpec::device(
//!     repo,
//!     "serial:prod0",
//!     DiffStorage::device("scratch0"),
//! )))?;
//! let info = jobs.wait(id, None)?; // or poll jobs.get(id) for progress
//! println!("{}", serde_json::to_string(&info)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # API
//!
//! | call                                         | for (suggested REST / CLI)                       |
//! |----------------------------------------------|--------------------------------------------------|
//! | [`JobManager::devices`] → `Vec<Device>`      | `GET /devices`, `appliance devices`              |
//! | [`JobManager::device`]`(query)` → `Device`   | `GET /devices/{id}` (id, serial or kernel name)  |
//! | [`JobManager::submit`]`(JobSpec)` → `JobId`  | `POST /backups`, `/restores`, `/verify`, `/exports` |
//! | [`JobManager::list`], [`JobManager::get`] → `JobInfo` | `GET /jobs`, `GET /jobs/{id}` (state, progress, log, result) |
//! | [`JobManager::wait`]                         | CLI without `--detach` (blocking: use `spawn_blocking` in async code) |
//! | [`JobManager::cancel`]                       | `POST /jobs/{id}/cancel`, `DELETE /jobs/{id}`    |
//! | [`JobManager::create_snapshot`] → `SessionInfo` | `POST /snapshots` (held until destroyed)      |
//! | [`JobManager::list_snapshots`], [`JobManager::snapshot`] | `GET /snapshots`, `GET /snapshots/{id}` |
//! | [`JobManager::destroy_snapshot`]             | `DELETE /snapshots/{id}`                         |
//! | [`JobManager::shutdown`]                     | `POST /shutdown` (stop jobs, release snapshots)  |
//! | [`Kernel::cleanup_leftovers`]                | daemon start                                     |
//! | [`Kernel::available`]                        | health/status page: is the module loaded         |
//!
//! Errors: [`DeviceError`], [`SessionError`], [`JobError`]; each has a stable snake_case
//! `code()` for `{"code": ..., "message": ...}` and [`chain`] gives the full message.
//! A failed job carries the same pair in [`jobs::JobInfo::error`]. Suggested HTTP statuses:
//! `unknown_device`/`job_not_found`/`snapshot_not_found`/`not_found` 404;
//! `invalid_argument`/`no_devices`/`duplicate_device`/`ambiguous_device` 400;
//! `storage_*`/`scratch_too_small`/`device_busy`/`destination_in_use`/`snapshot_owned_by_job`/`repository_locked` 409;
//! `module_not_loaded`/`shutting_down` 503; everything else 500.
//!
//! # Modules
//!
//! | module       | what it holds                                                            |
//! |--------------|--------------------------------------------------------------------------|
//! | [`devices`]  | disks and partitions from sysfs: identity, content probe, use, lookup    |
//! | [`driver`]   | [`SnapshotDriver`] (the module's requests) and [`Kernel`] (lazy open)    |
//! | [`storage`]  | difference storage: scratch devices and preallocated files, safety rules |
//! | [`session`]  | [`SnapshotSession`]: create, take, images, event watcher, destroy        |
//! | [`cbt`]      | change map → changed byte ranges; incremental or full                    |
//! | [`jobs`]     | [`JobManager`], job specs, states, progress, result records              |
//! | [`fake`]     | [`fake::FakeDriver`]: the module's behaviour over regular files, for tests |
//! | [`formats`]  | values written to disks (scratch label)                                  |
//! | [`error`]    | the error enums and their codes                                          |
//!
//! This crate knows nothing about HTTP, authentication or configuration; it does not
//! load the module (the appliance's init does).

#![deny(unsafe_code)]

pub mod cbt;
pub mod devices;
pub mod driver;
pub mod error;
pub mod fake;
pub mod formats;
pub mod jobs;
pub mod session;
pub mod storage;
#[cfg(test)]
mod testutil;
mod util;

pub use devices::{Device, Scanner};
pub use driver::{Kernel, SnapshotDriver};
pub use error::{chain, DeviceError, JobError, SessionError};
pub use jobs::{JobManager, JobManagerConfig, Take};
pub use session::{SessionOptions, SnapshotSession};
pub use storage::DiffStorage;

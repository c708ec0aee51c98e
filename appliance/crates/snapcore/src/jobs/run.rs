//! Running one job on a worker thread: the steps of each kind, progress and log plumbing.

use std::fs::{self, File};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use blksnap::{DevId, SnapshotId};
use repo::{BackupRequest, BackupResult, DestKind, DiskIdentity, ImageSource, JobCtl};

use super::model::{
    BackupReport, DeviceRef, ExportFormat, ExportReport, JobResult, RestoreReport, VerifyReport,
};
use super::spec::{BackupSource, BackupSpec, ExportSpec, JobSpec, RestoreSpec, VerifySpec};
use super::{Manager, SessionEntry, Slot};
use crate::cbt::{self, Plan};
use crate::devices::Device;
use crate::error::{chain, JobError, SessionError};
use crate::session::{SessionOptions, SnapshotSession};
use crate::storage::DiffStorage;
use crate::util::{lock, mib};

pub(super) struct Ctx {
    pub mgr: Arc<Manager>,
    pub slot: Arc<Slot>,
}

pub(super) struct Outcome {
    pub result: Option<JobResult>,
    pub error: Option<JobError>,
}

impl Outcome {
    fn from(r: Result<JobResult, JobError>) -> Self {
        match r {
            Ok(result) => Outcome {
                result: Some(result),
                error: None,
            },
            Err(e) => Outcome {
                result: None,
                error: Some(e),
            },
        }
    }
}

impl Ctx {
    fn log(&self, text: impl AsRef<str>) {
        self.slot.log(text);
    }

    fn phase(&self, phase: &str) {
        self.slot.phase(phase);
    }

    fn check(&self) -> Result<(), JobError> {
        if self.slot.cancel.is_cancelled() {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Progress and cancellation for the repository's operations.
    fn ctl(&self) -> JobCtl {
        let slot = self.slot.clone();
        JobCtl::new()
            .with_cancel(self.slot.cancel.clone())
            .with_progress(move |p| slot.progress(p.done_bytes, p.total_bytes))
    }
}

pub(super) fn execute(ctx: &Ctx, spec: JobSpec) -> Outcome {
    match spec {
        JobSpec::Backup(b) => Outcome::from(backup(ctx, b)),
        JobSpec::Restore(r) => Outcome::from(restore(ctx, r)),
        JobSpec::Verify(v) => verify(ctx, v),
        JobSpec::Export(e) => Outcome::from(export(ctx, e)),
    }
}

/// A session listed in the manager's registry while a job uses it; unlisted and destroyed
/// when dropped.
struct Registered {
    mgr: Arc<Manager>,
    slot: Arc<Slot>,
    id: SnapshotId,
    session: Arc<SnapshotSession>,
    /// The session's own events were copied into the job log.
    logged: bool,
}

impl Registered {
    fn log_events(&mut self) {
        if !self.logged {
            self.logged = true;
            for line in self.session.info().events {
                self.slot.log(format!("snapshot: {line}"));
            }
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.mgr.sessions).remove(&self.id);
        // A job that failed: its log shows what the session saw (storage, events).
        self.log_events();
        if let Err(e) = self.session.destroy() {
            self.slot.log(format!("warning: {}", chain(&e)));
        }
    }
}

fn seconds_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn rate(bytes: u64, secs: f64) -> u64 {
    if secs > 0.0 {
        (bytes as f64 / secs) as u64
    } else {
        0
    }
}

fn backup_report(
    r: &BackupResult,
    device: Option<&Device>,
    source: PathBuf,
    snapshot: Option<SnapshotId>,
    changed_bytes: Option<u64>,
    full_reason: Option<String>,
    secs: f64,
) -> BackupReport {
    let m = &r.manifest;
    let s = &m.stats;
    BackupReport {
        backup_id: m.backup_id.to_string(),
        mode: m.kind,
        parent: m.parent.as_ref().map(|p| p.to_string()),
        full_reason,
        device: device.map(|d| DeviceRef {
            id: d.id.clone(),
            name: d.name.clone(),
            serial: d.serial.clone(),
        }),
        source,
        snapshot: snapshot.map(|s| s.to_string()),
        image_size: m.image_size,
        read_bytes: s.read_bytes,
        changed_bytes,
        read_chunks: s.read_chunks,
        unchanged_chunks: s.unchanged_chunks,
        zero_chunks: s.zero_chunks,
        reused_chunks: s.reused_chunks,
        new_chunks: s.new_chunks,
        new_bytes: s.new_bytes,
        stored_bytes: s.stored_bytes,
        cbt: m.cbt.clone(),
        image_sha256: m.image_sha256.map(|d| d.to_hex()),
        seconds: secs,
        bytes_per_sec: rate(s.read_bytes, secs),
    }
}

fn backup(ctx: &Ctx, spec: BackupSpec) -> Result<JobResult, JobError> {
    ctx.check()?;
    match spec.source.clone() {
        BackupSource::Path(path) => {
            ctx.phase("backup");
            let f = File::open(&path).map_err(|source| JobError::Source {
                path: path.clone(),
                source,
            })?;
            let size = f.size().map_err(|source| JobError::Source {
                path: path.clone(),
                source,
            })?;
            let req = BackupRequest {
                disk: DiskIdentity {
                    name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    serial: None,
                    model: None,
                    size_bytes: size,
                },
                id: spec.backup_id.clone(),
                tool_version: Some(ctx.mgr.cfg.tool_version.clone()),
                ..BackupRequest::default()
            };
            let t = Instant::now();
            let r = spec.repo.backup_full(&f, &req, &ctx.ctl())?;
            ctx.log(format!(
                "backup {} published: {} read, {} new",
                r.id(),
                mib(r.read_bytes()),
                mib(r.manifest.stats.new_bytes)
            ));
            Ok(JobResult::Backup(Box::new(backup_report(
                &r,
                None,
                path,
                None,
                None,
                None,
                seconds_since(t),
            ))))
        }
        BackupSource::Device {
            device,
            storage,
            session,
        } => device_backup(ctx, &spec, &device, &storage, &session),
    }
}

fn device_backup(
    ctx: &Ctx,
    spec: &BackupSpec,
    device: &str,
    storage: &DiffStorage,
    opts: &SessionOptions,
) -> Result<JobResult, JobError> {
    ctx.phase("snapshot");
    let kernel = &ctx.mgr.cfg.kernel;
    let session = SnapshotSession::create(kernel, &ctx.mgr.cfg.scanner, &[device], storage, opts)?;
    let mut reg = Registered {
        mgr: ctx.mgr.clone(),
        slot: ctx.slot.clone(),
        id: session.id(),
        session: Arc::new(session),
        logged: false,
    };
    lock(&ctx.mgr.sessions).insert(
        reg.id,
        SessionEntry {
            session: reg.session.clone(),
            owner: Some(ctx.slot.id),
        },
    );
    let s = &reg.session;
    let snap_id = reg.id;
    let info = s.info();
    ctx.log(format!(
        "snapshot {} created; difference storage {} ({} given)",
        info.id,
        info.storage.description,
        mib(info.storage.given_bytes)
    ));
    ctx.check()?;
    let dev = s
        .devices()
        .into_iter()
        .next()
        .map(|d| d.device)
        .ok_or(SessionError::NoDevices)?;
    let devs = [dev.clone()];
    if let Some(h) = &spec.hooks {
        h.before_take(&devs).map_err(JobError::Hook)?;
    }
    let taken = s.take();
    if let Some(h) = &spec.hooks {
        h.after_take(&devs);
    }
    taken?;
    let image = s
        .image_of(dev.dev)
        .ok_or_else(|| SessionError::ImageMissing {
            device: dev.label(),
            path: PathBuf::from("/dev/blksnap-image?"),
        })?;
    ctx.log(format!("snapshot taken; image {}", image.display()));

    let driver = kernel.driver()?;
    let tracker = driver
        .tracker_collect()
        .map_err(|e| SessionError::kernel("reading the change trackers failed", e))?
        .into_iter()
        .find(|i| i.dev == dev.dev);
    let (plan, position) = match tracker {
        Some(info) => {
            let map = driver
                .read_cbt_map(dev.dev, 0, info.blk_count)
                .map_err(|e| SessionError::kernel("reading the change map failed", e))?;
            let catalogue = spec.repo.list_backups()?.backups;
            ctx.log(format!(
                "change tracking: generation {}, snapshot {}, {} blocks of {} bytes",
                info.generation_id, info.snap_number, info.blk_count, info.blk_size
            ));
            (
                cbt::plan(&catalogue, &info, &map, spec.mode),
                Some(cbt::position(&info)),
            )
        }
        None => (
            Plan::Full {
                reason: "the device has no change tracker".to_owned(),
            },
            None,
        ),
    };
    ctx.check()?;

    ctx.phase("backup");
    let req = BackupRequest {
        disk: DiskIdentity {
            name: Some(dev.name.clone()),
            serial: dev.serial.clone(),
            model: dev.model.clone(),
            size_bytes: dev.size_bytes,
        },
        cbt: position,
        id: spec.backup_id.clone(),
        tool_version: Some(ctx.mgr.cfg.tool_version.clone()),
        ..BackupRequest::default()
    };
    let t = Instant::now();
    let read = || -> Result<(BackupResult, Option<u64>, Option<String>), JobError> {
        let f = File::open(&image).map_err(|source| JobError::Source {
            path: image.clone(),
            source,
        })?;
        let ctl = ctx.ctl();
        Ok(match plan {
            Plan::Full { reason } => {
                ctx.log(format!("full backup: {reason}"));
                (spec.repo.backup_full(&f, &req, &ctl)?, None, Some(reason))
            }
            Plan::Incremental { parent, ranges } => {
                let changed = cbt::total_bytes(&ranges);
                ctx.log(format!(
                    "incremental backup on {}: {} changed in {} range(s)",
                    parent.backup_id,
                    mib(changed),
                    ranges.len()
                ));
                let r = spec
                    .repo
                    .backup_incremental(&f, &parent.backup_id, &ranges, &req, &ctl)?;
                (r, Some(changed), None)
            }
        })
    };
    let (r, changed, reason) = match read() {
        Ok(done) => done,
        Err(e) => {
            // A corrupted snapshot makes its image unreadable: say why, not just where.
            s.check()?;
            return Err(e);
        }
    };
    let secs = seconds_since(t);
    ctx.log(format!(
        "backup {} published: {} read, {} new, {} stored",
        r.id(),
        mib(r.read_bytes()),
        mib(r.manifest.stats.new_bytes),
        mib(r.manifest.stats.stored_bytes)
    ));
    if s.check().is_err() {
        ctx.log("the snapshot was reported corrupted after its image had been read completely; the backup is valid");
    }
    ctx.phase("cleanup");
    if let Err(e) = s.destroy() {
        ctx.log(format!("warning: {}", chain(&e)));
    }
    reg.log_events();
    drop(reg);
    Ok(JobResult::Backup(Box::new(backup_report(
        &r,
        Some(&dev),
        image,
        Some(snap_id),
        changed,
        reason,
        secs,
    ))))
}

/// Why writing to `path` would be unsafe, if it would.
fn destination_in_use(ctx: &Ctx, path: &Path) -> Result<Option<String>, JobError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    if !meta.file_type().is_block_device() {
        return Ok(None);
    }
    let dev = DevId::from_path(path).map_err(|e| JobError::InvalidArgument {
        what: "destination",
        detail: e.to_string(),
    })?;
    let all = ctx.mgr.cfg.scanner.scan()?;
    let Some(target) = all.iter().find(|d| d.dev == dev) else {
        return Ok(Some(format!(
            "{dev} is not a listed disk or partition (snapshot images, loop and RAM devices are not restore targets)"
        )));
    };
    Ok(ctx.mgr.why_busy(target, &all))
}

fn restore(ctx: &Ctx, spec: RestoreSpec) -> Result<JobResult, JobError> {
    ctx.check()?;
    if let Some(usage) = destination_in_use(ctx, &spec.destination)? {
        return Err(JobError::DestinationInUse {
            path: spec.destination,
            usage,
        });
    }
    ctx.phase("restore");
    let t = Instant::now();
    let r = spec
        .repo
        .restore(&spec.backup, &spec.destination, &ctx.ctl())?;
    let secs = seconds_since(t);
    ctx.log(format!(
        "restored {} to {}: {} written, sha256 {}",
        spec.backup,
        spec.destination.display(),
        mib(r.written_bytes),
        r.image_sha256.short()
    ));
    Ok(JobResult::Restore(RestoreReport {
        backup_id: spec.backup.to_string(),
        destination: spec.destination,
        destination_kind: match r.destination {
            DestKind::BlockDevice => "block_device",
            DestKind::SparseFile => "sparse_file",
        }
        .to_owned(),
        image_size: r.image_size,
        written_bytes: r.written_bytes,
        image_sha256: r.image_sha256.to_hex(),
        seconds: secs,
    }))
}

fn verify(ctx: &Ctx, spec: VerifySpec) -> Outcome {
    if let Err(e) = ctx.check() {
        return Outcome::from(Err(e));
    }
    ctx.phase("verify");
    let t = Instant::now();
    let r = match spec.repo.verify(&spec.backup, &ctx.ctl()) {
        Ok(r) => r,
        Err(e) => return Outcome::from(Err(e.into())),
    };
    let report = VerifyReport {
        backup_id: spec.backup.to_string(),
        ok: r.is_ok(),
        chunk_count: r.chunk_count,
        checked_chunks: r.checked_chunks,
        zero_chunks: r.zero_chunks,
        problems: r.problems.iter().map(|p| p.to_string()).collect(),
        image_sha256_ok: r.image_sha256_ok,
        seconds: seconds_since(t),
    };
    let error = (!report.ok).then(|| JobError::VerifyFailed {
        backup: spec.backup.to_string(),
        problems: report.problems.len(),
        first: report
            .problems
            .first()
            .cloned()
            .unwrap_or_else(|| "the image checksum differs from the manifest's".to_owned()),
    });
    ctx.log(format!(
        "verified {}: {} chunks checked, {}",
        spec.backup,
        report.checked_chunks,
        if report.ok { "all good" } else { "DAMAGED" }
    ));
    Outcome {
        result: Some(JobResult::Verify(report)),
        error,
    }
}

fn export(ctx: &Ctx, spec: ExportSpec) -> Result<JobResult, JobError> {
    ctx.check()?;
    if let Ok(meta) = fs::metadata(&spec.path) {
        if !meta.is_file() {
            return Err(JobError::InvalidArgument {
                what: "export path",
                detail: format!(
                    "{} exists and is not a regular file (use a restore to write a device)",
                    spec.path.display()
                ),
            });
        }
    }
    ctx.phase("export");
    let t = Instant::now();
    let ctl = ctx.ctl();
    let (size, file_size, sha) = match spec.format {
        ExportFormat::Raw => {
            let r = spec.repo.export_raw(&spec.backup, &spec.path, &ctl)?;
            (r.image_size, r.image_size, r.image_sha256)
        }
        ExportFormat::Qcow2 => {
            let r = spec.repo.export_qcow2(&spec.backup, &spec.path, &ctl)?;
            (r.virtual_size, r.file_size, r.image_sha256)
        }
    };
    ctx.log(format!(
        "exported {} to {} ({:?}, {})",
        spec.backup,
        spec.path.display(),
        spec.format,
        mib(file_size)
    ));
    Ok(JobResult::Export(ExportReport {
        backup_id: spec.backup.to_string(),
        path: spec.path,
        format: spec.format,
        image_size: size,
        file_size,
        image_sha256: sha.to_hex(),
        seconds: seconds_since(t),
    }))
}

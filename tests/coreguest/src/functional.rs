//! The functional scenarios, run in order in one boot (each builds on the backups of the
//! ones before):
//!
//! | scenario            | what it shows                                                        |
//! |---------------------|----------------------------------------------------------------------|
//! | `devices`           | real sysfs: serials (virtio, SCSI VPD), content, mounts, partitions, lookup |
//! | `errors`            | unknown device, storage overlapping/in use/too small/unsuitable      |
//! | `full_under_writes` | full backup while a writer runs, storage appended in pieces; restore to a SCSI disk, verify, export raw/qcow2: all bit-exact to the pre-snapshot hash |
//! | `incremental`       | incremental after writer changes, then after known writes: exact changed and read byte counts; file storage (FIEMAP) under writes; restores bit-exact |
//! | `cancel`            | a backup cancelled mid-read publishes nothing; earlier backups verify |
//! | `target_full`       | a full target fails the job with `target_full`; nothing lost, space given back |
//! | `corruption`        | overflowing storage fails the job with `snapshot_corrupted`; production data intact |
//! | `cli`               | the `appliance` verbs without a daemon: devices, full backup, restore bit-exact, incremental reading the changed 256 KiB chunks, unknown disk |
//! | `leftovers`         | a snapshot left by a "crashed daemon" is destroyed by cleanup_leftovers |
//! | `module_missing`    | with the module unloaded: `module_not_loaded`; devices still listed  |

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use repo::{BackupId, BackupKind, ChunkSize, InitOptions, Repository};
use snapcore::devices::DeviceKind;
use snapcore::jobs::{
    BackupSource, BackupSpec, ExportFormat, ExportSpec, JobResult, JobSpec, JobState, RestoreSpec,
    TakeHooks, VerifySpec,
};
use snapcore::session::SessionState;
use snapcore::{Device, DiffStorage, JobManager, SessionOptions};

use crate::env::{self, backup_done, failed_with, run_job};
use crate::io::{self, Writer, MIB};
use crate::{check, note, proto, run};

/// Serials of the functional disks (the host creates them; see tests/coreguest/README.md).
pub const DISKS: &[&str] = &["prod0", "scratch0", "backup0", "small0", "restore0"];
/// Size of prod0.
const PROD_SIZE: u64 = 48 * MIB;
/// Chunk size of the test repositories: small, so incremental read counts are sharp.
const CHUNK: u32 = 256 * 1024;

struct World {
    jm: Option<JobManager>,
    prod: Device,
    restore: Device,
    repo: Repository,
    full: Option<BackupId>,
}

impl World {
    fn jm(&self) -> Result<&JobManager> {
        self.jm.as_ref().context("the job manager is gone")
    }
}

fn open_repo(dir: &str) -> Result<Repository> {
    Ok(Repository::open_local(
        dir,
        InitOptions {
            chunk_size: ChunkSize::new(CHUNK)?,
            ..InitOptions::default()
        },
    )?)
}

fn setup() -> Result<World> {
    let disks = env::disks(DISKS)?;
    let get = |s: &str| -> Result<Device> {
        disks
            .get(s)
            .cloned()
            .with_context(|| format!("no disk {s}"))
    };
    let prod = get("prod0")?;
    check!(
        prod.size_bytes == PROD_SIZE,
        "prod0 has {} bytes",
        prod.size_bytes
    );
    env::mount_ext4(&get("backup0")?.path, "/mnt/backup")?;
    env::mount_ext4(&get("small0")?.path, "/mnt/small")?;
    // prod0: three MiB of noise, then one of zeros, repeated.
    for i in 0..PROD_SIZE / MIB {
        let data = if i % 4 == 3 {
            vec![0u8; MIB as usize]
        } else {
            io::noise(1000 + i, MIB as usize)
        };
        io::write_sync(&prod.path, i * MIB, &data)?;
    }
    let jm = env::manager();
    let left = jm.kernel().cleanup_leftovers()?;
    check!(left.is_empty(), "leftover snapshots at boot: {left:?}");
    for (s, d) in &disks {
        note!(
            "disk {s}: {} {} {} bytes id {}",
            d.name,
            d.dev,
            d.size_bytes,
            d.id
        );
    }
    Ok(World {
        jm: Some(jm),
        prod,
        restore: get("restore0")?,
        repo: open_repo("/mnt/backup/repo")?,
        full: None,
    })
}

pub fn run_all() {
    let mut w = match setup() {
        Ok(w) => w,
        Err(e) => {
            proto::PROTO.fail("setup", &format!("{e:#}"));
            return;
        }
    };
    run("devices", || devices(&w));
    run("errors", || errors(&w));
    run("full_under_writes", || full_under_writes(&mut w));
    run("incremental", || incremental(&w));
    run("cancel", || cancel(&w));
    run("target_full", || target_full(&w));
    run("corruption", || corruption(&w));
    run("cli", || crate::cli::cli(&w.prod));
    run("leftovers", || leftovers(&w));
    run("module_missing", || module_missing(&mut w));
}

fn devices(w: &World) -> Result<()> {
    let jm = w.jm()?;
    let devs = jm.devices()?;
    let names: Vec<&str> = devs.iter().map(|d| d.name.as_str()).collect();
    check!(
        !names.iter().any(|n| n.starts_with("loop")
            || n.starts_with("blksnap-image")
            || n.starts_with("ram")),
        "excluded devices listed: {names:?}"
    );
    let prod = jm.device("prod0")?;
    check!(
        prod.id == "serial:prod0" && prod.kind == DeviceKind::Disk && prod.size_bytes == PROD_SIZE,
        "prod0: {prod:?}"
    );
    check!(prod.path == Path::new("/dev").join(&prod.name), "{prod:?}");
    check!(
        prod.bus_path
            .as_deref()
            .is_some_and(|p| p.starts_with("pci-")),
        "prod0 bus path {:?}",
        prod.bus_path
    );
    check!(
        jm.device(&prod.name)?.id == prod.id,
        "lookup by kernel name"
    );
    check!(
        jm.device(&format!("/dev/{}", prod.name))?.id == prod.id,
        "lookup by path"
    );

    let backup = jm.device("serial:backup0")?;
    check!(
        backup.content.fs_type == Some(snapcore::devices::FsType::Ext4)
            && backup.content.label.as_deref() == Some("backup0"),
        "backup0 content {:?}",
        backup.content
    );
    check!(
        backup.mount_points == [PathBuf::from("/mnt/backup")],
        "backup0 mounts {:?}",
        backup.mount_points
    );

    // A SCSI disk: serial from VPD page 0x80, model and vendor from the device.
    let r = jm.device("restore0")?;
    check!(r.name.starts_with("sd"), "restore0 is {}", r.name);
    check!(
        r.model.as_deref() == Some("QEMU HARDDISK") && r.vendor.as_deref() == Some("QEMU"),
        "restore0 model {:?} vendor {:?}",
        r.model,
        r.vendor
    );
    check!(
        r.bus_path.as_deref().is_some_and(|p| p.contains("-scsi-")),
        "restore0 bus path {:?}",
        r.bus_path
    );

    // Partitions from the real sysfs: an MBR with one partition.
    let mut mbr = vec![0u8; 512];
    mbr[446 + 4] = 0x83;
    mbr[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
    mbr[446 + 12..446 + 16].copy_from_slice(&8192u32.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    io::write_sync(&r.path, 0, &mbr)?;
    io::reread_partitions(&r.path)?;
    let part = jm.device("serial:restore0-part1")?;
    check!(
        part.kind == DeviceKind::Partition
            && part.parent.as_deref() == Some(r.name.as_str())
            && part.size_bytes == 8192 * 512
            && part.partition == Some(1),
        "restore0-part1: {part:?}"
    );
    let disk = jm.device("restore0")?;
    check!(
        disk.partitions == [part.name.clone()]
            && disk.content.partition_table == Some(snapcore::devices::PartTable::Mbr),
        "restore0 with a partition: {disk:?}"
    );
    io::write_sync(&r.path, 0, &[0u8; 512])?;
    io::reread_partitions(&r.path)?;

    let e = jm.device("nope").unwrap_err();
    check!(
        e.code() == "unknown_device" && e.to_string().contains("serial:prod0"),
        "unknown device error: {e}"
    );
    note!("devices: {}", names.join(" "));
    Ok(())
}

fn device_backup(
    repo: &Repository,
    dev: &str,
    storage: DiffStorage,
    opts: SessionOptions,
) -> BackupSpec {
    BackupSpec {
        source: BackupSource::Device {
            device: dev.to_owned(),
            storage,
            session: opts,
        },
        ..BackupSpec::device(repo.clone(), dev, DiffStorage::device("scratch0"))
    }
}

fn no_snapshots() -> Result<()> {
    let ids = blksnap::Blksnap::open()?.snapshot_collect()?;
    check!(ids.is_empty(), "snapshots left: {ids:?}");
    Ok(())
}

fn errors(w: &World) -> Result<()> {
    let jm = w.jm()?;
    let cases: [(&str, DiffStorage, SessionOptions, &str, &str); 5] = [
        (
            "nope",
            DiffStorage::device("scratch0"),
            SessionOptions::default(),
            "unknown_device",
            "no device matches \"nope\"",
        ),
        (
            "prod0",
            DiffStorage::device("prod0"),
            SessionOptions::default(),
            "storage_is_snapshotted",
            "overlaps the snapshotted device",
        ),
        (
            "prod0",
            DiffStorage::device("backup0"),
            SessionOptions::default(),
            "storage_in_use",
            "mounted at /mnt/backup",
        ),
        (
            "prod0",
            DiffStorage::device("scratch0"),
            SessionOptions {
                min_storage: 1 << 30,
                ..SessionOptions::default()
            },
            "scratch_too_small",
            "bytes available, 1073741824 bytes asked for",
        ),
        (
            "prod0",
            DiffStorage::file("/tmp/diff.img", 8 * MIB),
            SessionOptions::default(),
            "storage_unsuitable",
            "not on a block device",
        ),
    ];
    for (dev, storage, opts, code, text) in cases {
        let info = run_job(
            jm,
            JobSpec::Backup(device_backup(&w.repo, dev, storage, opts)),
        )?;
        let msg = failed_with(&info, code)?;
        check!(msg.contains(text), "{code}: message {msg:?} lacks {text:?}");
        note!("errors: {code}: {msg}");
    }
    no_snapshots()?;
    check!(
        w.repo.list_backups()?.backups.is_empty(),
        "a failed job published a backup"
    );
    Ok(())
}

/// Pauses the writer around TAKE and hashes the device at that instant; after TAKE,
/// checks what the API shows of the live snapshot and optionally writes a burst.
struct Hooks {
    writer: Option<Arc<Writer>>,
    prod: PathBuf,
    pre_hash: Mutex<Option<String>>,
    jm: JobManager,
    burst: Option<(u64, u64, u64)>,
    problems: Mutex<Vec<String>>,
}

impl Hooks {
    fn new(w: &World, writer: Option<Arc<Writer>>) -> Result<Hooks> {
        Ok(Hooks {
            writer,
            prod: w.prod.path.clone(),
            pre_hash: Mutex::new(None),
            jm: w.jm()?.clone(),
            burst: None,
            problems: Mutex::new(Vec::new()),
        })
    }

    fn problem(&self, p: String) {
        if let Ok(mut v) = self.problems.lock() {
            v.push(p);
        }
    }

    fn pre_hash(&self) -> Result<String> {
        self.pre_hash
            .lock()
            .ok()
            .and_then(|h| h.clone())
            .context("the pre-snapshot hash was not taken")
    }

    fn problems(&self) -> Vec<String> {
        self.problems.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl TakeHooks for Hooks {
    fn before_take(&self, _: &[Device]) -> Result<(), String> {
        if let Some(wr) = &self.writer {
            wr.pause().map_err(|e| format!("{e:#}"))?;
        }
        let h = io::sha256_prefix(&self.prod, PROD_SIZE).map_err(|e| format!("{e:#}"))?;
        if let Ok(mut slot) = self.pre_hash.lock() {
            *slot = Some(h);
        }
        Ok(())
    }

    fn after_take(&self, _: &[Device]) {
        if let Some(wr) = &self.writer {
            wr.resume();
        }
        let live = self.jm.list_snapshots();
        match live.as_slice() {
            [s] => {
                let image = s.devices[0].image.clone().unwrap_or_default();
                if s.state != SessionState::Taken
                    || !image.to_string_lossy().starts_with("/dev/blksnap-image")
                    || !image.exists()
                {
                    self.problem(format!("live snapshot looks wrong: {s:?}"));
                }
            }
            other => self.problem(format!("{} live snapshots listed", other.len())),
        }
        match self.jm.devices() {
            Ok(devs) if devs.iter().any(|d| d.name.starts_with("blksnap-image")) => {
                self.problem("an image is listed among the devices".to_owned())
            }
            Ok(_) => {}
            Err(e) => self.problem(format!("devices: {e}")),
        }
        if let Some((from, count, step)) = self.burst {
            for i in 0..count {
                let at = from + i * step;
                if let Err(e) = io::write_sync(&self.prod, at, &io::noise(at, 4096)) {
                    self.problem(format!("burst write at {at}: {e:#}"));
                }
            }
        }
    }
}

fn full_under_writes(w: &mut World) -> Result<()> {
    let jm = w.jm()?.clone();
    let writer = Arc::new(Writer::start(&w.prod.path, PROD_SIZE, 7)?);
    let start = Instant::now();
    while writer.writes.load(std::sync::atomic::Ordering::SeqCst) < 20 {
        check!(
            start.elapsed() < Duration::from_secs(30),
            "the writer does not write"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut hooks = Hooks::new(w, Some(writer.clone()))?;
    // 64 writes 768 KiB apart: 64 chunks (16 MiB) copied, well past the point (4 MiB
    // used of the first 20 MiB piece) where the module asks for more.
    hooks.burst = Some((0, 64, 768 * 1024));
    let hooks = Arc::new(hooks);
    let mut spec = device_backup(
        &w.repo,
        "prod0",
        DiffStorage::device("scratch0"),
        SessionOptions {
            initial_storage: Some(20 * MIB),
            ..SessionOptions::default()
        },
    );
    spec.hooks = Some(hooks.clone());
    let info = run_job(&jm, JobSpec::Backup(spec));
    let writes = writer.stop()?;
    let info = info?;
    let b = backup_done(&info)?;
    let pre = hooks.pre_hash()?;
    note!(
        "full: {} writes by the writer; {} read in {:.1} s; log: {}",
        writes,
        b.read_bytes,
        b.seconds,
        info.log.join(" / ")
    );
    check!(
        hooks.problems().is_empty(),
        "while held: {:?}",
        hooks.problems()
    );
    check!(b.mode == BackupKind::Full, "first backup is {:?}", b.mode);
    check!(b.read_bytes == PROD_SIZE, "read {} bytes", b.read_bytes);
    check!(
        b.image_sha256.as_deref() == Some(pre.as_str()),
        "backup image {:?} != pre-snapshot {pre}",
        b.image_sha256
    );
    check!(
        b.cbt.as_ref().is_some_and(|c| c.snap_number >= 1),
        "cbt position {:?}",
        b.cbt
    );
    check!(
        info.log
            .iter()
            .any(|l| l.contains("low free space: appended")),
        "no storage was appended on low free space: {:?}",
        info.log
    );
    check!(
        jm.list_snapshots().is_empty(),
        "the snapshot is still listed"
    );
    no_snapshots()?;
    let id = BackupId::new(b.backup_id.clone())?;

    // Restore to the SCSI disk (larger than the image).
    let r = run_job(
        &jm,
        JobSpec::Restore(RestoreSpec {
            repo: w.repo.clone(),
            backup: id.clone(),
            destination: w.restore.path.clone(),
        }),
    )?;
    match (&r.state, &r.result) {
        (JobState::Done, Some(JobResult::Restore(rr))) => {
            check!(
                rr.image_sha256 == pre,
                "restore hash {} != {pre}",
                rr.image_sha256
            );
            check!(rr.destination_kind == "block_device", "{rr:?}");
        }
        _ => bail!("restore: {:?} {}", r.state, env::err_of(&r)),
    }
    io::drop_caches();
    let on_disk = io::sha256_prefix(&w.restore.path, PROD_SIZE)?;
    check!(on_disk == pre, "restore0 holds {on_disk}, expected {pre}");

    let v = run_job(
        &jm,
        JobSpec::Verify(VerifySpec {
            repo: w.repo.clone(),
            backup: id.clone(),
        }),
    )?;
    check!(v.state == JobState::Done, "verify: {}", env::err_of(&v));

    for (format, path) in [
        (ExportFormat::Raw, "/mnt/backup/full.raw"),
        (ExportFormat::Qcow2, "/mnt/backup/full.qcow2"),
    ] {
        let e = run_job(
            &jm,
            JobSpec::Export(ExportSpec {
                repo: w.repo.clone(),
                backup: id.clone(),
                path: PathBuf::from(path),
                format,
            }),
        )?;
        match &e.result {
            Some(JobResult::Export(x)) if e.state == JobState::Done => {
                check!(x.image_sha256 == pre, "{path}: {} != {pre}", x.image_sha256)
            }
            _ => bail!("export {path}: {:?} {}", e.state, env::err_of(&e)),
        }
    }
    check!(
        io::sha256_prefix(Path::new("/mnt/backup/full.raw"), PROD_SIZE)? == pre,
        "the raw export differs"
    );
    check!(
        io::read_at(Path::new("/mnt/backup/full.qcow2"), 0, 4)? == b"QFI\xfb",
        "the qcow2 export has no qcow2 magic"
    );
    std::fs::remove_file("/mnt/backup/full.raw")?;
    std::fs::remove_file("/mnt/backup/full.qcow2")?;
    w.full = Some(id);
    Ok(())
}

fn restore_file_hash(w: &World, id: &str, path: &str) -> Result<String> {
    let r = run_job(
        w.jm()?,
        JobSpec::Restore(RestoreSpec {
            repo: w.repo.clone(),
            backup: BackupId::new(id)?,
            destination: PathBuf::from(path),
        }),
    )?;
    check!(
        r.state == JobState::Done,
        "restore of {id}: {}",
        env::err_of(&r)
    );
    let h = io::sha256_prefix(Path::new(path), PROD_SIZE)?;
    std::fs::remove_file(path)?;
    Ok(h)
}

fn incremental(w: &World) -> Result<()> {
    let jm = w.jm()?;
    let full = w
        .full
        .clone()
        .context("no full backup from full_under_writes")?;

    // A: absorbs what the writer changed after the full backup's snapshot.
    let hash_a = io::sha256_prefix(&w.prod.path, PROD_SIZE)?;
    let a = backup_done(&run_job(
        jm,
        JobSpec::Backup(device_backup(
            &w.repo,
            "prod0",
            DiffStorage::device("scratch0"),
            SessionOptions::default(),
        )),
    )?)?;
    check!(
        a.mode == BackupKind::Incremental && a.parent.as_deref() == Some(full.as_str()),
        "A: {:?} on {:?}, expected incremental on {full}",
        a.mode,
        a.parent
    );
    check!(a.changed_bytes.unwrap_or(0) > 0, "A saw no changes");
    check!(
        restore_file_hash(w, &a.backup_id, "/mnt/backup/a.raw")? == hash_a,
        "A does not restore to the disk at its snapshot"
    );

    // Known writes, then B: exactly their tracking blocks and repository chunks are read.
    let ctl = blksnap::Blksnap::open()?;
    let bs = u64::from(
        ctl.tracker_info(w.prod.dev)?
            .context("prod0 is not tracked")?
            .blk_size,
    );
    let writes: [(u64, u64); 4] = [
        (MIB + 100, 4096),
        (20 * MIB, 200 * 1024),
        (30 * MIB, 64 * 1024),
        (PROD_SIZE - 1, 1),
    ];
    for (i, (off, len)) in writes.iter().enumerate() {
        io::write_sync(
            &w.prod.path,
            *off,
            &io::noise(5000 + i as u64, *len as usize),
        )?;
    }
    let blocks: BTreeSet<u64> = writes
        .iter()
        .flat_map(|(o, l)| o / bs..=(o + l - 1) / bs)
        .collect();
    let cs = u64::from(CHUNK);
    let chunks: BTreeSet<u64> = blocks
        .iter()
        .flat_map(|b| b * bs / cs..=((b + 1) * bs).min(PROD_SIZE).saturating_sub(1) / cs)
        .collect();
    let want_changed = blocks.len() as u64 * bs;
    let want_read = chunks.len() as u64 * cs;
    let hash_b = io::sha256_prefix(&w.prod.path, PROD_SIZE)?;

    // B's difference storage is a preallocated file on the backup filesystem; writes
    // after TAKE (4 MiB from 8 MiB) are copied into it.
    let mut hooks = Hooks::new(w, None)?;
    hooks.burst = Some((8 * MIB, 64, 64 * 1024));
    let hooks = Arc::new(hooks);
    let mut spec = device_backup(
        &w.repo,
        "prod0",
        DiffStorage::file("/mnt/backup/diff.img", 32 * MIB),
        SessionOptions::default(),
    );
    spec.hooks = Some(hooks.clone());
    let info = run_job(jm, JobSpec::Backup(spec))?;
    let b = backup_done(&info)?;
    check!(
        hooks.problems().is_empty(),
        "while held: {:?}",
        hooks.problems()
    );
    check!(
        hooks.pre_hash()? == hash_b,
        "the disk changed before B's snapshot"
    );
    note!(
        "incremental B: blocks {blocks:?} of {bs} bytes, chunks {chunks:?}; changed {:?} read {}; log: {}",
        b.changed_bytes,
        b.read_bytes,
        info.log.join(" / ")
    );
    check!(
        b.mode == BackupKind::Incremental && b.parent.as_deref() == Some(a.backup_id.as_str()),
        "B: {:?} on {:?}, expected incremental on {}",
        b.mode,
        b.parent,
        a.backup_id
    );
    check!(
        b.changed_bytes == Some(want_changed),
        "B: changed {:?}, expected {want_changed}",
        b.changed_bytes
    );
    check!(
        b.read_bytes == want_read,
        "B read {} bytes, expected {want_read} ({} chunks)",
        b.read_bytes,
        chunks.len()
    );
    check!(
        info.log.iter().any(|l| l.contains("/mnt/backup/diff.img")),
        "B did not use the storage file: {:?}",
        info.log
    );
    let r = run_job(
        jm,
        JobSpec::Restore(RestoreSpec {
            repo: w.repo.clone(),
            backup: BackupId::new(b.backup_id.clone())?,
            destination: w.restore.path.clone(),
        }),
    )?;
    check!(r.state == JobState::Done, "restore B: {}", env::err_of(&r));
    io::drop_caches();
    check!(
        io::sha256_prefix(&w.restore.path, PROD_SIZE)? == hash_b,
        "B does not restore bit-exact"
    );
    // The storage file's writes went to its own blocks: the filesystem around it (the
    // repository) is intact.
    for id in [&full.to_string(), &a.backup_id, &b.backup_id] {
        let v = run_job(
            jm,
            JobSpec::Verify(VerifySpec {
                repo: w.repo.clone(),
                backup: BackupId::new(id.clone())?,
            }),
        )?;
        check!(
            v.state == JobState::Done,
            "verify {id}: {}",
            env::err_of(&v)
        );
    }
    no_snapshots()?;
    Ok(())
}

fn cancel(w: &World) -> Result<()> {
    let jm = w.jm()?;
    let before = w.repo.list_backups()?.backups;
    let mut spec = device_backup(
        &w.repo,
        "prod0",
        DiffStorage::device("scratch0"),
        SessionOptions::default(),
    );
    spec.mode = snapcore::cbt::BackupMode::Full;
    let id = jm.submit(JobSpec::Backup(spec))?;
    let start = Instant::now();
    loop {
        let i = jm.get(id)?;
        if i.state.is_finished() {
            bail!(
                "the backup ended ({:?}) before it could be cancelled",
                i.state
            );
        }
        if i.progress.phase == "backup" && i.progress.done_bytes > 0 {
            note!(
                "cancel: at {} of {} bytes",
                i.progress.done_bytes,
                i.progress.total_bytes
            );
            break;
        }
        check!(
            start.elapsed() < Duration::from_secs(300),
            "the backup never started reading"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    jm.cancel(id)?;
    let i = jm.wait(id, Some(Duration::from_secs(300)))?;
    check!(
        i.state == JobState::Cancelled,
        "after cancel: {:?} {}",
        i.state,
        env::err_of(&i)
    );
    check!(i.result.is_none(), "a cancelled job has a result");
    let after = w.repo.list_backups()?.backups;
    check!(
        after.len() == before.len(),
        "{} backups before, {} after",
        before.len(),
        after.len()
    );
    for m in &after {
        let v = run_job(
            jm,
            JobSpec::Verify(VerifySpec {
                repo: w.repo.clone(),
                backup: m.backup_id.clone(),
            }),
        )?;
        check!(
            v.state == JobState::Done,
            "verify {}: {}",
            m.backup_id,
            env::err_of(&v)
        );
    }
    check!(
        jm.list_snapshots().is_empty(),
        "the snapshot is still listed"
    );
    no_snapshots()
}

fn free_bytes(path: &str) -> Result<u64> {
    let s = nix::sys::statvfs::statvfs(path)?;
    Ok(s.blocks_available() * s.fragment_size())
}

fn target_full(w: &World) -> Result<()> {
    let jm = w.jm()?;
    let small = open_repo("/mnt/small/repo")?;
    std::fs::write("/tmp/seed.img", io::noise(42, (2 * MIB) as usize))?;
    let seed = backup_done(&run_job(
        jm,
        JobSpec::Backup(BackupSpec::path(small.clone(), "/tmp/seed.img")),
    )?)?;
    nix::unistd::sync();
    let free_before = free_bytes("/mnt/small")?;
    let info = run_job(
        jm,
        JobSpec::Backup(device_backup(
            &small,
            "prod0",
            DiffStorage::device("scratch0"),
            SessionOptions::default(),
        )),
    )?;
    let msg = failed_with(&info, "target_full")?;
    check!(msg.starts_with("backup target is full: "), "message: {msg}");
    note!("target_full: {msg}");
    let cat = small.list_backups()?.backups;
    check!(
        cat.len() == 1 && cat[0].backup_id.as_str() == seed.backup_id,
        "catalogue after the failure: {:?}",
        cat.iter()
            .map(|m| m.backup_id.to_string())
            .collect::<Vec<_>>()
    );
    let v = run_job(
        jm,
        JobSpec::Verify(VerifySpec {
            repo: small.clone(),
            backup: cat[0].backup_id.clone(),
        }),
    )?;
    check!(
        v.state == JobState::Done,
        "verify the seed: {}",
        env::err_of(&v)
    );
    nix::unistd::sync();
    let free_after = free_bytes("/mnt/small")?;
    check!(
        free_after + MIB >= free_before,
        "space not given back: {free_before} free before, {free_after} after"
    );
    no_snapshots()
}

fn corruption(w: &World) -> Result<()> {
    let jm = w.jm()?;
    let before = w.repo.list_backups()?.backups.len();
    let mut expected = io::read_at(&w.prod.path, 0, PROD_SIZE as usize)?;
    // After TAKE: 16 MiB of new data at the start, 64 chunks to copy into 2 MiB.
    struct Overflow {
        prod: PathBuf,
        jm: JobManager,
        problems: Mutex<Vec<String>>,
    }
    impl TakeHooks for Overflow {
        fn after_take(&self, _: &[Device]) {
            let r = io::write_sync(&self.prod, 0, &io::noise(77, (16 * MIB) as usize));
            if let Err(e) = r {
                if let Ok(mut p) = self.problems.lock() {
                    p.push(format!("production write failed: {e:#}"));
                }
            }
            let start = Instant::now();
            while !self
                .jm
                .list_snapshots()
                .first()
                .is_some_and(|s| s.state == SessionState::Failed)
            {
                if start.elapsed() > Duration::from_secs(20) {
                    if let Ok(mut p) = self.problems.lock() {
                        p.push("the session was not marked failed".to_owned());
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let hooks = Arc::new(Overflow {
        prod: w.prod.path.clone(),
        jm: jm.clone(),
        problems: Mutex::new(Vec::new()),
    });
    let mut spec = device_backup(
        &w.repo,
        "prod0",
        DiffStorage::file("/mnt/backup/tiny.img", 2 * MIB),
        SessionOptions::default(),
    );
    spec.hooks = Some(hooks.clone());
    let info = run_job(jm, JobSpec::Backup(spec))?;
    let problems = hooks.problems.lock().map(|p| p.clone()).unwrap_or_default();
    check!(problems.is_empty(), "{problems:?}");
    let msg = failed_with(&info, "snapshot_corrupted")?;
    check!(
        msg.contains("could not be stored in the difference storage"),
        "message: {msg}"
    );
    note!("corruption: {msg}; log: {}", info.log.join(" / "));
    expected[..(16 * MIB) as usize].copy_from_slice(&io::noise(77, (16 * MIB) as usize));
    io::drop_caches();
    check!(
        io::sha256_prefix(&w.prod.path, PROD_SIZE)? == io::sha256(&expected),
        "production data differs from what was written"
    );
    check!(
        w.repo.list_backups()?.backups.len() == before,
        "a backup was published"
    );
    no_snapshots()
}

fn leftovers(w: &World) -> Result<()> {
    let ctl = blksnap::Blksnap::open()?;
    let id = ctl.snapshot_create(&[w.prod.dev])?;
    let destroyed = w.jm()?.kernel().cleanup_leftovers()?;
    check!(
        destroyed == [id],
        "cleanup destroyed {destroyed:?}, expected [{id}]"
    );
    no_snapshots()
}

fn module_missing(w: &mut World) -> Result<()> {
    if let Some(jm) = w.jm.take() {
        jm.shutdown();
    }
    {
        let ctl = blksnap::Blksnap::open()?;
        for t in ctl.tracker_collect()? {
            ctl.tracker_remove(t.dev)
                .with_context(|| format!("remove the tracker of {}", t.dev))?;
        }
    }
    sysboot::modules::unload("blksnap").context("rmmod blksnap")?;
    proto::PROTO.unloaded();
    let jm = env::manager();
    check!(!jm.kernel().available(), "the module still answers");
    check!(
        jm.device("prod0").is_ok(),
        "devices are not listed without the module"
    );
    let info = run_job(
        &jm,
        JobSpec::Backup(device_backup(
            &w.repo,
            "prod0",
            DiffStorage::device("scratch0"),
            SessionOptions::default(),
        )),
    )?;
    let msg = failed_with(&info, "module_not_loaded")?;
    check!(
        msg.contains("/dev/blksnap does not exist"),
        "message: {msg}"
    );
    // Restores need no module.
    let full = w.full.clone().context("no full backup")?;
    let r = run_job(
        &jm,
        JobSpec::Verify(VerifySpec {
            repo: w.repo.clone(),
            backup: full,
        }),
    )?;
    check!(
        r.state == JobState::Done,
        "verify without the module: {}",
        env::err_of(&r)
    );
    env::unmount("/mnt/small")?;
    env::unmount("/mnt/backup")?;
    Ok(())
}

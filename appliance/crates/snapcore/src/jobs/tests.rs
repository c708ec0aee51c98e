//! The job state machine on a fake machine: path sources, device backups through the fake
//! driver (full, incremental, cancelled, failing), restore, verify, export.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blksnap::Event;
use repo::{
    BackupId, ChunkSize, InitOptions, LocalDir, ObjectInfo, ObjectKey, RepoError, Repository,
    Target, TargetLock,
};

use super::*;
use crate::cbt::BackupMode;
use crate::driver::SnapshotDriver;
use crate::session::SessionState;
use crate::testutil::{noise, FakeHost, MIB, PROD};

const WAIT: Option<Duration> = Some(Duration::from_secs(60));

fn repo_at(dir: &Path) -> Repository {
    Repository::open_local(
        dir,
        InitOptions {
            chunk_size: ChunkSize::new(64 * 1024).unwrap(),
            ..InitOptions::default()
        },
    )
    .unwrap()
}

fn manager(h: &FakeHost) -> JobManager {
    JobManager::new(JobManagerConfig {
        kernel: h.kernel.clone(),
        scanner: h.scanner.clone(),
        ..JobManagerConfig::default()
    })
}

fn fast() -> SessionOptions {
    SessionOptions {
        event_poll: Duration::from_millis(20),
        ..SessionOptions::default()
    }
}

fn device_spec(repo: &Repository, dev: &str) -> BackupSpec {
    BackupSpec {
        source: BackupSource::Device {
            device: dev.to_owned(),
            storage: DiffStorage::device("scratch0"),
            session: fast(),
        },
        ..BackupSpec::device(repo.clone(), dev, DiffStorage::device("scratch0"))
    }
}

fn run(jm: &JobManager, spec: JobSpec) -> JobInfo {
    let id = jm.submit(spec).unwrap();
    jm.wait(id, WAIT).unwrap()
}

fn backup_report(info: &JobInfo) -> &BackupReport {
    match &info.result {
        Some(JobResult::Backup(b)) => b,
        other => panic!("no backup result: {other:?}; job: {info:#?}"),
    }
}

fn sha(data: &[u8]) -> String {
    repo::Digest::of(data).to_hex()
}

#[test]
fn path_backup_restore_verify_export() {
    let h = FakeHost::new();
    let jm = manager(&h);
    let repo = repo_at(&h.tmp.path().join("repo"));
    let src = h.tmp.path().join("image.raw");
    let mut data = noise(7, (5 * MIB) as usize);
    data[MIB as usize..2 * MIB as usize].fill(0);
    std::fs::write(&src, &data).unwrap();

    let info = run(&jm, JobSpec::Backup(BackupSpec::path(repo.clone(), &src)));
    assert_eq!(info.state, JobState::Done, "{info:#?}");
    assert_eq!(info.kind, JobKind::Backup);
    let b = backup_report(&info);
    assert_eq!(b.mode, repo::BackupKind::Full);
    assert_eq!(b.read_bytes, 5 * MIB);
    assert_eq!(b.zero_chunks, 16);
    assert_eq!(b.image_sha256.as_deref(), Some(sha(&data).as_str()));
    assert!(b.device.is_none() && b.cbt.is_none());
    assert_eq!(info.progress.phase, "finished");
    // The finished job still shows what it read, not the last phase's empty count.
    assert_eq!(
        (info.progress.done_bytes, info.progress.total_bytes),
        (5 * MIB, 5 * MIB)
    );
    assert!(
        info.log.iter().any(|l| l.contains("published")),
        "{:?}",
        info.log
    );
    let id = BackupId::new(b.backup_id.clone()).unwrap();

    let dest = h.tmp.path().join("restored.raw");
    let r = run(
        &jm,
        JobSpec::Restore(RestoreSpec {
            repo: repo.clone(),
            backup: id.clone(),
            destination: dest.clone(),
        }),
    );
    assert_eq!(r.state, JobState::Done, "{r:#?}");
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    match &r.result {
        Some(JobResult::Restore(rr)) => {
            assert_eq!(rr.image_sha256, sha(&data));
            assert_eq!(rr.destination_kind, "sparse_file");
        }
        other => panic!("{other:?}"),
    }

    let v = run(
        &jm,
        JobSpec::Verify(VerifySpec {
            repo: repo.clone(),
            backup: id.clone(),
        }),
    );
    assert_eq!(v.state, JobState::Done);
    assert!(
        matches!(&v.result, Some(JobResult::Verify(r)) if r.ok && r.image_sha256_ok == Some(true))
    );

    for (format, name) in [
        (ExportFormat::Raw, "x.raw"),
        (ExportFormat::Qcow2, "x.qcow2"),
    ] {
        let path = h.tmp.path().join(name);
        let e = run(
            &jm,
            JobSpec::Export(ExportSpec {
                repo: repo.clone(),
                backup: id.clone(),
                path: path.clone(),
                format,
            }),
        );
        assert_eq!(e.state, JobState::Done, "{e:#?}");
        match &e.result {
            Some(JobResult::Export(x)) => {
                assert_eq!(x.image_sha256, sha(&data));
                assert_eq!(x.image_size, 5 * MIB);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        &std::fs::read(h.tmp.path().join("x.qcow2")).unwrap()[..4],
        b"QFI\xfb"
    );

    // The record is JSON for the API.
    let json = serde_json::to_value(jm.get(info.id).unwrap()).unwrap();
    assert_eq!(json["state"], "done");
    assert_eq!(json["kind"], "backup");
    assert_eq!(json["result"]["kind"], "backup");
    assert_eq!(json["result"]["mode"], "full");
    assert_eq!(jm.list().len(), 5);
}

#[test]
fn device_backups_full_then_incremental_reading_only_changed_blocks() {
    let h = FakeHost::new();
    let jm = manager(&h);
    let repo = repo_at(&h.tmp.path().join("repo"));

    let full = run(&jm, JobSpec::Backup(device_spec(&repo, "prod0")));
    assert_eq!(full.state, JobState::Done, "{full:#?}");
    let f = backup_report(&full);
    assert_eq!(f.mode, repo::BackupKind::Full);
    assert!(f
        .full_reason
        .as_deref()
        .unwrap()
        .starts_with("no earlier backup"));
    assert_eq!(f.read_bytes, 8 * MIB);
    assert_eq!(f.cbt.as_ref().unwrap().snap_number, 1);
    assert_eq!(f.device.as_ref().unwrap().id, "serial:prod0");
    let at_full = std::fs::read(h.dev_path("vda")).unwrap();
    assert_eq!(f.image_sha256.as_deref(), Some(sha(&at_full).as_str()));

    // Known changes: blocks 1, 48-49 and the last (127) of 64 KiB.
    h.fake.write(PROD, 100_000, &[1; 10]).unwrap();
    h.fake.write(PROD, 3 * MIB, &[2; 70_000]).unwrap();
    h.fake.write(PROD, 8 * MIB - 1, &[3]).unwrap();
    let now = std::fs::read(h.dev_path("vda")).unwrap();

    let inc = run(&jm, JobSpec::Backup(device_spec(&repo, "vda")));
    assert_eq!(inc.state, JobState::Done, "{inc:#?}");
    let i = backup_report(&inc);
    assert_eq!(i.mode, repo::BackupKind::Incremental);
    assert_eq!(i.parent.as_deref(), Some(f.backup_id.as_str()));
    assert_eq!(i.changed_bytes, Some(4 * 65536));
    assert_eq!(i.read_bytes, 4 * 65536, "only the changed blocks are read");
    assert_eq!(i.unchanged_chunks, 128 - 4);
    assert_eq!(i.cbt.as_ref().unwrap().snap_number, 2);
    assert!(jm.list_snapshots().is_empty());
    assert!(h.fake.snapshot_collect().unwrap().is_empty());

    // It restores to the disk as it was at the second snapshot.
    let dest = h.tmp.path().join("inc.raw");
    let r = run(
        &jm,
        JobSpec::Restore(RestoreSpec {
            repo: repo.clone(),
            backup: BackupId::new(i.backup_id.clone()).unwrap(),
            destination: dest.clone(),
        }),
    );
    assert_eq!(r.state, JobState::Done);
    assert!(std::fs::read(&dest).unwrap() == now);

    // Asked for full: full. A restarted tracker (new generation): full.
    let mut spec = device_spec(&repo, "prod0");
    spec.mode = BackupMode::Full;
    let f2 = run(&jm, JobSpec::Backup(spec));
    assert_eq!(backup_report(&f2).mode, repo::BackupKind::Full);
    h.fake.reset_tracker(PROD);
    let f3 = run(&jm, JobSpec::Backup(device_spec(&repo, "prod0")));
    let r3 = backup_report(&f3);
    assert_eq!(r3.mode, repo::BackupKind::Full);
    assert_eq!(r3.cbt.as_ref().unwrap().snap_number, 1);
}

/// Blocks in `before_take` until released; records that it ran.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: std::sync::Condvar,
    entered: Mutex<bool>,
}

impl Gate {
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

impl TakeHooks for Gate {
    fn before_take(&self, _: &[Device]) -> Result<(), String> {
        *self.entered.lock().unwrap() = true;
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
        Ok(())
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn cancel_queued_and_running_jobs() {
    let h = FakeHost::new();
    let jm = manager(&h);
    let repo = repo_at(&h.tmp.path().join("repo"));
    let first = run(&jm, JobSpec::Backup(device_spec(&repo, "prod0")));
    assert_eq!(first.state, JobState::Done);

    let gate = Arc::new(Gate::default());
    let mut spec = device_spec(&repo, "prod0");
    spec.hooks = Some(gate.clone());
    let running = jm.submit(JobSpec::Backup(spec)).unwrap();
    let queued = jm
        .submit(JobSpec::Backup(BackupSpec::path(
            repo.clone(),
            h.dev_path("vdd"),
        )))
        .unwrap();
    wait_for("the hook", || *gate.entered.lock().unwrap());
    let live = jm.list_snapshots();
    assert_eq!(live.len(), 1, "the running backup's snapshot is listed");
    let (_, owner) = jm.snapshot(&live[0].id).unwrap();
    assert_eq!(owner, Some(running));
    assert_eq!(
        jm.destroy_snapshot(&live[0].id).unwrap_err().code(),
        "snapshot_owned_by_job"
    );
    assert_eq!(jm.get(queued).unwrap().state, JobState::Queued);

    let q = jm.cancel(queued).unwrap();
    assert_eq!(q.state, JobState::Cancelled);
    let r = jm.cancel(running).unwrap();
    assert_eq!(r.state, JobState::Running);
    assert!(r.cancel_requested);
    gate.release();
    let r = jm.wait(running, WAIT).unwrap();
    assert_eq!(r.state, JobState::Cancelled, "{r:#?}");
    assert_eq!(r.error.as_ref().unwrap().code, "cancelled");
    assert!(r.result.is_none());
    assert!(jm.list_snapshots().is_empty());
    assert!(h.fake.snapshot_collect().unwrap().is_empty());
    // Nothing published; the earlier backup still verifies.
    let cat = repo.list_backups().unwrap();
    assert_eq!(cat.backups.len(), 1);
    let v = run(
        &jm,
        JobSpec::Verify(VerifySpec {
            repo: repo.clone(),
            backup: cat.backups[0].backup_id.clone(),
        }),
    );
    assert_eq!(v.state, JobState::Done);
    // Cancelling a finished job changes nothing.
    assert_eq!(jm.cancel(first.id).unwrap().state, JobState::Done);
    assert_eq!(jm.cancel(JobId(999)).unwrap_err().code(), "job_not_found");
}

/// A local directory that runs out of space after `budget` bytes of chunk objects.
struct SmallTarget {
    inner: LocalDir,
    budget: Mutex<u64>,
}

impl Target for SmallTarget {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn put(&self, key: &ObjectKey, data: &[u8]) -> repo::Result<()> {
        if key.as_str().starts_with("chunks/") {
            let mut b = self.budget.lock().unwrap();
            if *b < data.len() as u64 {
                return Err(RepoError::target_io(
                    &self.describe(),
                    format!("writing {key}"),
                    io::Error::from_raw_os_error(nix::libc::ENOSPC),
                ));
            }
            *b -= data.len() as u64;
        }
        self.inner.put(key, data)
    }
    fn flush(&self) -> repo::Result<()> {
        self.inner.flush()
    }
    fn get(&self, key: &ObjectKey) -> repo::Result<Vec<u8>> {
        self.inner.get(key)
    }
    fn exists(&self, key: &ObjectKey) -> repo::Result<bool> {
        self.inner.exists(key)
    }
    fn list(&self, prefix: &str) -> repo::Result<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &ObjectKey) -> repo::Result<()> {
        self.inner.delete(key)
    }
    fn free_space(&self) -> repo::Result<Option<u64>> {
        Ok(Some(*self.budget.lock().unwrap()))
    }
    fn lock(&self) -> repo::Result<Box<dyn TargetLock>> {
        self.inner.lock()
    }
    fn remove_temp(&self) -> repo::Result<u64> {
        self.inner.remove_temp()
    }
}

#[test]
fn a_full_target_fails_the_job_clearly_and_loses_nothing() {
    let h = FakeHost::new();
    let jm = manager(&h);
    let dir = h.tmp.path().join("repo");
    let target = Arc::new(SmallTarget {
        inner: LocalDir::create(&dir).unwrap(),
        budget: Mutex::new(5 * MIB),
    });
    let repo = Repository::open_or_init(target.clone(), InitOptions::default()).unwrap();
    let small = run(
        &jm,
        JobSpec::Backup(BackupSpec::path(repo.clone(), h.dev_path("vdd"))),
    );
    assert_eq!(small.state, JobState::Done, "{small:#?}");

    let big = run(&jm, JobSpec::Backup(device_spec(&repo, "prod0")));
    assert_eq!(big.state, JobState::Failed, "{big:#?}");
    let err = big.error.as_ref().unwrap();
    assert_eq!(err.code, "target_full");
    assert!(
        err.message.starts_with("backup target is full: "),
        "{}",
        err.message
    );
    assert!(h.fake.snapshot_collect().unwrap().is_empty());
    let cat = repo.list_backups().unwrap();
    assert_eq!(cat.backups.len(), 1);
    let v = repo
        .verify(&cat.backups[0].backup_id, &repo::JobCtl::new())
        .unwrap();
    assert!(v.is_ok());
}

#[test]
fn clear_errors_fail_jobs_with_codes() {
    let h = FakeHost::new();
    let jm = manager(&h);
    let repo = repo_at(&h.tmp.path().join("repo"));
    let j = run(&jm, JobSpec::Backup(device_spec(&repo, "nope")));
    assert_eq!(j.state, JobState::Failed);
    assert_eq!(j.error.as_ref().unwrap().code, "unknown_device");

    let mut spec = device_spec(&repo, "prod0");
    spec.source = BackupSource::Device {
        device: "prod0".into(),
        storage: DiffStorage::device("prod0"),
        session: fast(),
    };
    let j = run(&jm, JobSpec::Backup(spec));
    assert_eq!(j.error.as_ref().unwrap().code, "storage_is_snapshotted");

    let mut spec = device_spec(&repo, "prod0");
    spec.source = BackupSource::Device {
        device: "prod0".into(),
        storage: DiffStorage::device("scratch0"),
        session: SessionOptions {
            min_storage: 1 << 30,
            ..fast()
        },
    };
    let j = run(&jm, JobSpec::Backup(spec));
    assert_eq!(j.error.as_ref().unwrap().code, "scratch_too_small");

    let no_module = JobManager::new(JobManagerConfig {
        kernel: Kernel::at(h.tmp.path().join("dev/blksnap")),
        scanner: h.scanner.clone(),
        ..JobManagerConfig::default()
    });
    let j = run(&no_module, JobSpec::Backup(device_spec(&repo, "prod0")));
    let e = j.error.as_ref().unwrap();
    assert_eq!(e.code, "module_not_loaded");
    assert!(
        e.message.contains("dev/blksnap does not exist"),
        "{}",
        e.message
    );

    let j = run(
        &jm,
        JobSpec::Verify(VerifySpec {
            repo: repo.clone(),
            backup: BackupId::new("missing").unwrap(),
        }),
    );
    assert_eq!(j.error.as_ref().unwrap().code, "not_found");

    let j = run(
        &jm,
        JobSpec::Backup(BackupSpec::path(repo.clone(), "/nonexistent/x")),
    );
    assert_eq!(j.error.as_ref().unwrap().code, "source_read_failed");
    assert!(repo.list_backups().unwrap().backups.is_empty());
}

/// Reports a corruption right after TAKE and makes the image unreadable, as the module
/// does; waits until the session shows it.
struct Corrupter {
    fake: Arc<crate::fake::FakeDriver>,
    jm: JobManager,
    image: std::path::PathBuf,
}

impl TakeHooks for Corrupter {
    fn after_take(&self, _: &[Device]) {
        let live = self.jm.list_snapshots();
        let id: blksnap::SnapshotId = live[0].id.parse().unwrap();
        self.fake.inject_event(
            id,
            Event::Corrupted {
                dev: PROD,
                errno: 28,
            },
        );
        std::fs::remove_file(&self.image).unwrap();
        wait_for("the session to fail", || {
            self.jm.list_snapshots()[0].state == crate::session::SessionState::Failed
        });
    }
}

#[test]
fn a_corrupted_snapshot_fails_the_backup_with_the_modules_reason() {
    let h = FakeHost::new();
    let jm = manager(&h);
    let repo = repo_at(&h.tmp.path().join("repo"));
    let mut spec = device_spec(&repo, "prod0");
    spec.hooks = Some(Arc::new(Corrupter {
        fake: h.fake.clone(),
        jm: jm.clone(),
        image: h.dev_path("blksnap-image0"),
    }));
    let j = run(&jm, JobSpec::Backup(spec));
    assert_eq!(j.state, JobState::Failed, "{j:#?}");
    let e = j.error.as_ref().unwrap();
    assert_eq!(e.code, "snapshot_corrupted");
    assert!(e.message.contains("(ENOSPC)"), "{}", e.message);
    assert!(repo.list_backups().unwrap().backups.is_empty());
    assert!(h.fake.snapshot_collect().unwrap().is_empty());
}

/// A held snapshot of prod0 with scratch0 as its difference storage.
fn hold_prod0(jm: &JobManager, take: Take) -> crate::session::SessionInfo {
    jm.create_snapshot(&["prod0"], &DiffStorage::device("scratch0"), &fast(), take)
        .unwrap()
}

#[test]
fn held_snapshots_and_shutdown() {
    let h = FakeHost::new();
    let jm = manager(&h);
    let info = hold_prod0(&jm, Take::Now);
    assert_eq!(
        info.devices[0].image.as_deref(),
        Some(h.dev_path("blksnap-image0").as_path())
    );
    assert_eq!(jm.list_snapshots().len(), 1);
    assert_eq!(jm.snapshot(&info.id).unwrap().1, None);
    jm.destroy_snapshot(&info.id).unwrap();
    assert_eq!(
        jm.destroy_snapshot(&info.id).unwrap_err().code(),
        "snapshot_not_found"
    );
    assert_eq!(
        jm.destroy_snapshot("zz").unwrap_err().code(),
        "invalid_argument"
    );

    hold_prod0(&jm, Take::Now);
    jm.shutdown();
    assert!(h.fake.snapshot_collect().unwrap().is_empty());
    let repo = repo_at(&h.tmp.path().join("repo"));
    assert_eq!(
        jm.submit(JobSpec::Backup(BackupSpec::path(repo, h.dev_path("vdd"))))
            .unwrap_err()
            .code(),
        "shutting_down"
    );
}

#[test]
fn a_snapshot_created_for_later_is_taken_on_request_once() {
    let h = FakeHost::new();
    let jm = manager(&h);
    let info = hold_prod0(&jm, Take::Later);
    assert_eq!(info.state, SessionState::Created);
    assert_eq!(info.taken_unix, None);
    assert_eq!(info.devices[0].image, None);
    assert_eq!(jm.list_snapshots()[0].state, SessionState::Created);

    let taken = jm.take_snapshot(&info.id).unwrap();
    assert_eq!(taken.state, SessionState::Taken);
    assert!(taken.taken_unix.is_some());
    assert_eq!(
        taken.devices[0].image.as_deref(),
        Some(h.dev_path("blksnap-image0").as_path())
    );
    let again = jm.take_snapshot(&info.id).unwrap_err();
    assert_eq!(again.code(), "invalid_state");
    assert!(again.to_string().contains("taken"), "{again}");
    assert_eq!(
        jm.take_snapshot("5d1b3c1e-0000-4000-8000-000000000000")
            .unwrap_err()
            .code(),
        "snapshot_not_found"
    );
    assert_eq!(
        jm.take_snapshot("zz").unwrap_err().code(),
        "invalid_argument"
    );

    jm.destroy_snapshot(&info.id).unwrap();

    // One never taken is destroyed like any other.
    let later = hold_prod0(&jm, Take::Later);
    jm.destroy_snapshot(&later.id).unwrap();
    assert!(h.fake.snapshot_collect().unwrap().is_empty());
}

use std::time::Duration;

use super::*;
use crate::testutil::{FakeHost, MIB, PROD};

fn opts() -> SessionOptions {
    SessionOptions {
        event_poll: Duration::from_millis(20),
        ..SessionOptions::default()
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn create_take_image_destroy() {
    let h = FakeHost::new();
    let s = SnapshotSession::create(
        &h.kernel,
        &h.scanner,
        &["prod0"],
        &DiffStorage::device("scratch0"),
        &opts(),
    )
    .unwrap();
    assert_eq!(s.state(), SessionState::Created);
    // Everything given at once by default: 64 MiB minus 1 MiB at each end.
    assert_eq!(h.fake.storage_sectors(s.id()), Some(62 * 2048));
    assert_eq!(s.image_of(PROD), None);
    s.take().unwrap();
    assert_eq!(s.state(), SessionState::Taken);
    let image = s.image_of(PROD).unwrap();
    assert_eq!(image, h.dev_path("blksnap-image0"));
    assert_eq!(
        std::fs::read(&image).unwrap(),
        std::fs::read(h.dev_path("vda")).unwrap()
    );
    let info = s.info();
    assert_eq!(info.devices[0].device.id, "serial:prod0");
    assert_eq!(info.storage.total_bytes, 62 * MIB);
    assert_eq!(info.storage.given_bytes, 62 * MIB);
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["state"], "taken");

    // A second take is refused; destroy removes the image and is idempotent.
    assert_eq!(s.take().unwrap_err().code(), "invalid_state");
    s.destroy().unwrap();
    s.destroy().unwrap();
    assert!(!image.exists());
    assert_eq!(s.state(), SessionState::Destroyed);
    assert!(h.fake.snapshot_collect().unwrap().is_empty());
}

#[test]
fn drop_destroys_the_snapshot() {
    let h = FakeHost::new();
    {
        let s = SnapshotSession::create(
            &h.kernel,
            &h.scanner,
            &["vda"],
            &DiffStorage::device("vdb"),
            &opts(),
        )
        .unwrap();
        s.take().unwrap();
        assert_eq!(h.fake.snapshot_collect().unwrap().len(), 1);
    }
    assert!(h.fake.snapshot_collect().unwrap().is_empty());
    assert!(!h.dev_path("blksnap-image0").exists());
}

#[test]
fn storage_is_appended_in_pieces_on_low_free_space() {
    let h = FakeHost::new();
    let o = SessionOptions {
        initial_storage: Some(8 * MIB),
        append_step: Some(20 * MIB),
        ..opts()
    };
    let s = SnapshotSession::create(
        &h.kernel,
        &h.scanner,
        &["prod0"],
        &DiffStorage::device("scratch0"),
        &o,
    )
    .unwrap();
    // The event CREATE queues is answered by the first piece, not by a second one.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(h.fake.storage_sectors(s.id()), Some(8 * 2048));
    s.take().unwrap();
    let low = Event::LowFreeSpace {
        requested_sectors: 1,
    };
    for (i, want_mib) in [28u64, 48, 62].into_iter().enumerate() {
        h.fake.inject_event(s.id(), low);
        wait_until(&format!("append {i}"), || {
            h.fake.storage_sectors(s.id()) == Some(want_mib * 2048)
        });
    }
    h.fake.inject_event(s.id(), low);
    wait_until("exhausted", || s.info().storage.exhausted);
    let info = s.info();
    assert_eq!(info.storage.given_bytes, 62 * MIB);
    assert_eq!(info.state, SessionState::Taken);
    assert!(
        info.events
            .iter()
            .any(|e| e.contains("appended 20.0 MiB (now 28.0 MiB of 62.0 MiB)")),
        "{:?}",
        info.events
    );
    assert!(info
        .events
        .iter()
        .any(|e| e.contains("nothing left to append")));
}

#[test]
fn corruption_fails_the_session_with_a_clear_error() {
    let h = FakeHost::new();
    let s = SnapshotSession::create(
        &h.kernel,
        &h.scanner,
        &["prod0"],
        &DiffStorage::device("scratch0"),
        &opts(),
    )
    .unwrap();
    s.take().unwrap();
    s.check().unwrap();
    h.fake.inject_event(
        s.id(),
        Event::Corrupted {
            dev: PROD,
            errno: 28,
        },
    );
    wait_until("failed", || s.state() == SessionState::Failed);
    let err = s.check().unwrap_err();
    assert_eq!(err.code(), "snapshot_corrupted");
    assert_eq!(
        err.to_string(),
        "the snapshot is corrupted: a chunk of vda (serial:prod0) (254:0) could not be stored in the difference storage (ENOSPC); its image is no longer readable"
    );
    let info = s.info();
    assert_eq!(info.error.as_ref().unwrap().code, "snapshot_corrupted");
    s.destroy().unwrap();
    assert_eq!(s.state(), SessionState::Destroyed);
    assert!(s.check().is_err(), "the corruption stays reported");
}

#[test]
fn clear_errors_before_anything_is_created() {
    let h = FakeHost::new();
    let create = |devs: &[&str], st: DiffStorage, o: SessionOptions| {
        SnapshotSession::create(&h.kernel, &h.scanner, devs, &st, &o).unwrap_err()
    };
    let e = create(&["nope"], DiffStorage::device("scratch0"), opts());
    assert_eq!(e.code(), "unknown_device");
    assert!(e.to_string().starts_with("no device matches \"nope\""));
    let e = create(&[], DiffStorage::device("scratch0"), opts());
    assert_eq!(e.code(), "no_devices");
    let e = create(&["vda", "prod0"], DiffStorage::device("scratch0"), opts());
    assert_eq!(e.code(), "duplicate_device");
    let e = create(&["prod0"], DiffStorage::device("prod0"), opts());
    assert_eq!(e.code(), "storage_is_snapshotted");
    let e = create(
        &["prod0"],
        DiffStorage::device("scratch0"),
        SessionOptions {
            min_storage: 100 * MIB,
            ..opts()
        },
    );
    assert_eq!(e.code(), "scratch_too_small");
    assert!(e
        .to_string()
        .contains("65011712 bytes available, 104857600 bytes asked for"));
    let e = create(
        &["prod0"],
        DiffStorage::device("tiny0"),
        SessionOptions {
            min_storage: 2 * MIB,
            ..opts()
        },
    );
    assert_eq!(e.code(), "scratch_too_small");
    assert!(h.fake.snapshot_collect().unwrap().is_empty());

    // The module not loaded.
    let k = Kernel::at(h.tmp.path().join("no-blksnap"));
    let e = SnapshotSession::create(
        &k,
        &h.scanner,
        &["prod0"],
        &DiffStorage::device("scratch0"),
        &opts(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "module_not_loaded");
    assert!(e
        .to_string()
        .starts_with("the blksnap module is not loaded"));
}

#[test]
fn a_device_in_another_snapshot_is_busy() {
    let h = FakeHost::new();
    let _first = SnapshotSession::create(
        &h.kernel,
        &h.scanner,
        &["prod0"],
        &DiffStorage::device("scratch0"),
        &opts(),
    )
    .unwrap();
    let e = SnapshotSession::create(
        &h.kernel,
        &h.scanner,
        &["prod0"],
        &DiffStorage::device("tiny0"),
        &opts(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "device_busy");
}

#[test]
fn failures_after_create_destroy_the_snapshot() {
    let h = FakeHost::new();
    h.fake.fail_next("SNAPSHOT_APPEND_STORAGE", Errno::EINVAL);
    let e = SnapshotSession::create(
        &h.kernel,
        &h.scanner,
        &["prod0"],
        &DiffStorage::device("scratch0"),
        &opts(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "kernel_error");
    assert!(h.fake.snapshot_collect().unwrap().is_empty());

    let s = SnapshotSession::create(
        &h.kernel,
        &h.scanner,
        &["prod0"],
        &DiffStorage::device("scratch0"),
        &opts(),
    )
    .unwrap();
    h.fake.fail_next("SNAPSHOT_TAKE", Errno::ENOMEM);
    let e = s.take().unwrap_err();
    assert_eq!(
        chain(&e),
        "taking the snapshot failed: SNAPSHOT_TAKE failed: Out of memory (ENOMEM)"
    );
    drop(s);
    assert!(h.fake.snapshot_collect().unwrap().is_empty());
}

#[test]
fn leftovers_of_a_crashed_daemon_are_destroyed() {
    let h = FakeHost::new();
    let s = SnapshotSession::create(
        &h.kernel,
        &h.scanner,
        &["prod0"],
        &DiffStorage::device("scratch0"),
        &opts(),
    )
    .unwrap();
    let id = s.id();
    std::mem::forget(s); // as if the daemon died
    assert_eq!(h.kernel.cleanup_leftovers().unwrap(), [id]);
    assert!(h.fake.snapshot_collect().unwrap().is_empty());
    assert!(h.kernel.cleanup_leftovers().unwrap().is_empty());
}

#[test]
fn storage_used_by_another_session_is_refused() {
    let h = FakeHost::new();
    let st = DiffStorage::device("scratch0");
    let first = SnapshotSession::create(&h.kernel, &h.scanner, &["prod0"], &st, &opts()).unwrap();
    let e = SnapshotSession::create(&h.kernel, &h.scanner, &["prod1"], &st, &opts()).unwrap_err();
    assert_eq!(e.code(), "storage_in_use");
    assert!(
        e.to_string()
            .contains("is difference storage of another snapshot"),
        "{e}"
    );
    drop(first);
    SnapshotSession::create(&h.kernel, &h.scanner, &["prod1"], &st, &opts()).unwrap();
}

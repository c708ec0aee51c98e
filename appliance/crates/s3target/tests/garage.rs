//! The S3 target against a real Garage server: backups, restore, verify, list, interrupted
//! uploads, clear errors, several repositories in one bucket.

mod common;

use std::sync::Arc;

use common::*;
use repo::{
    BackupRequest, ByteRange, ChunkSize, DiskIdentity, ErrorKind, InitOptions, JobCtl, ObjectKey,
    Repository, Target,
};
use s3target::S3Target;

const MIB: usize = 1 << 20;

fn opts() -> InitOptions {
    InitOptions {
        chunk_size: ChunkSize::new(MIB as u32).unwrap(),
        ..InitOptions::default()
    }
}

fn req() -> BackupRequest {
    BackupRequest::new(DiskIdentity {
        serial: Some("prod0".into()),
        ..DiskIdentity::default()
    })
}

fn restore_sha(repo: &Repository, id: &repo::BackupId, dir: &std::path::Path) -> String {
    let out = dir.join(format!("{id}.img"));
    repo.restore(id, &out, &JobCtl::new()).unwrap();
    sha256_hex(&std::fs::read(out).unwrap())
}

#[test]
fn full_and_incremental_backup_restore_verify_list() {
    let g = Garage::start();
    let work = tempfile::tempdir().unwrap();
    let target = Arc::new(S3Target::connect(&g.config("appliance-1")).unwrap());
    let repo = Repository::open_or_init(target.clone(), opts()).unwrap();

    // 20 MiB + a tail: noise, a zero area, and one 17 MiB object path via multipart below.
    let mut img = noise(20 * MIB + 4321, 7);
    img[4 * MIB..8 * MIB].fill(0);
    let path = work.path().join("disk.img");
    std::fs::write(&path, &img).unwrap();
    let full = repo
        .backup_full(&std::fs::File::open(&path).unwrap(), &req(), &JobCtl::new())
        .unwrap();
    assert_eq!(full.manifest.stats.zero_chunks, 4);
    assert_eq!(full.manifest.stats.new_chunks, 17);
    assert_eq!(restore_sha(&repo, full.id(), work.path()), sha256_hex(&img));

    // Change 2 MiB in the middle; the incremental reads only those chunks.
    img[10 * MIB..12 * MIB].copy_from_slice(&noise(2 * MIB, 99));
    std::fs::write(&path, &img).unwrap();
    let changed = [ByteRange {
        offset: 10 * MIB as u64,
        len: 2 * MIB as u64,
    }];
    let inc = repo
        .backup_incremental(
            &std::fs::File::open(&path).unwrap(),
            full.id(),
            &changed,
            &req(),
            &JobCtl::new(),
        )
        .unwrap();
    assert_eq!(inc.read_bytes(), 2 * MIB as u64);
    assert_eq!(inc.manifest.stats.new_chunks, 2);
    assert_eq!(restore_sha(&repo, inc.id(), work.path()), sha256_hex(&img));

    for id in [full.id(), inc.id()] {
        let report = repo.verify(id, &JobCtl::new()).unwrap();
        assert!(report.is_ok(), "{report:?}");
    }
    // A fresh client sees both backups.
    let again = Repository::open(Arc::new(
        S3Target::connect(&g.config("appliance-1")).unwrap(),
    ))
    .unwrap();
    let ids: Vec<String> = again
        .list_backups()
        .unwrap()
        .backups
        .iter()
        .map(|m| m.backup_id.to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&full.id().to_string()) && ids.contains(&inc.id().to_string()));
    // 17 + 2 chunk objects, listed through pagination.
    assert_eq!(target.list("chunks").unwrap().len(), 19);

    // A large object goes through a multipart upload and reads back intact.
    let big = noise(17 * MIB + 5, 3);
    let key = ObjectKey::new("misc/big").unwrap();
    target.put(&key, &big).unwrap();
    assert_eq!(sha256_hex(&target.get(&key).unwrap()), sha256_hex(&big));
    target.delete(&key).unwrap();
    target.delete(&key).unwrap();
    assert!(!target.exists(&key).unwrap());
    assert_eq!(target.get(&key).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn an_upload_killed_midway_is_completed_by_a_rerun() {
    let g = Garage::start();
    let work = tempfile::tempdir().unwrap();
    let cfg = g.config("killed");
    let repo =
        Repository::open_or_init(Arc::new(S3Target::connect(&cfg).unwrap()), opts()).unwrap();
    let first = noise(4 * MIB, 1);
    let first_id = repo.backup_full(&first, &req(), &JobCtl::new()).unwrap();

    let img = noise(48 * MIB, 2);
    let path = work.path().join("disk.img");
    std::fs::write(&path, &img).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_s3target-backup"))
        .arg(&path)
        .arg(MIB.to_string())
        .env("S3_ENDPOINT", &cfg.endpoint)
        .env("S3_REGION", &cfg.region)
        .env("S3_BUCKET", &cfg.bucket)
        .env("S3_PREFIX", &cfg.prefix)
        .env("S3_ACCESS_KEY", &cfg.access_key)
        .env("S3_SECRET_KEY", &cfg.secret_key)
        .env("S3_READ_DELAY_MS", "100")
        .spawn()
        .unwrap();
    let target = S3Target::connect(&cfg).unwrap();
    // Wait until the child has uploaded some of the new chunks, then SIGKILL it.
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the helper exited early"
        );
        if target.list("chunks").unwrap().len() >= 4 + 5 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    let uploaded = target.list("chunks").unwrap().len() - 4;
    assert!(uploaded < 48, "{uploaded}");
    // Nothing was published; the earlier backup is intact.
    assert_eq!(repo.list_backups().unwrap().backups.len(), 1);
    assert!(repo.verify(first_id.id(), &JobCtl::new()).unwrap().is_ok());

    // The re-run takes over the dead writer's lease and uploads only what is missing.
    let rerun = repo
        .backup_full(&std::fs::File::open(&path).unwrap(), &req(), &JobCtl::new())
        .unwrap();
    assert!(rerun.manifest.stats.reused_chunks >= uploaded as u64 - 4);
    assert_eq!(
        rerun.manifest.stats.new_chunks + rerun.manifest.stats.reused_chunks,
        48
    );
    assert_eq!(
        restore_sha(&repo, rerun.id(), work.path()),
        sha256_hex(&img)
    );
    assert!(repo.verify(rerun.id(), &JobCtl::new()).unwrap().is_ok());
    assert!(repo.verify(first_id.id(), &JobCtl::new()).unwrap().is_ok());
    assert_eq!(repo.list_backups().unwrap().backups.len(), 2);
}

#[test]
fn wrong_secret_is_access_denied() {
    let g = Garage::start();
    let mut cfg = g.config("x");
    cfg.secret_key = "1".repeat(64);
    let e = S3Target::connect(&cfg).unwrap_err();
    assert!(
        e.to_string()
            .contains("access denied: check the access key and secret"),
        "{e}"
    );
}

#[test]
fn unreachable_endpoint_names_host_port_and_cause() {
    let g = Garage::start();
    let mut cfg = g.config("x");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    cfg.endpoint = format!("http://127.0.0.1:{port}");
    let e = S3Target::connect(&cfg).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("cannot reach the S3 endpoint 127.0.0.1:{port}: ")),
        "{msg}"
    );
    assert!(msg.contains("refused"), "{msg}");
}

#[test]
fn an_endpoint_that_accepts_but_never_answers_fails_the_check_in_bounded_time() {
    let g = Garage::start();
    let mut cfg = g.config("x");
    // Accepts connections (the queue does it) and never reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    cfg.endpoint = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let e = S3Target::connect(&cfg).unwrap_err();
    let took = started.elapsed();
    let msg = e.to_string();
    assert!(
        msg.contains("no S3 answer to a bucket listing within 20 s"),
        "{msg}"
    );
    assert!(
        took < s3target::CHECK_LIST + std::time::Duration::from_secs(10),
        "{took:?}"
    );
    drop(silent);
}

#[test]
fn missing_bucket_is_reported() {
    let g = Garage::start();
    let mut cfg = g.config("x");
    cfg.bucket = "nosuchbucket".into();
    let e = S3Target::connect(&cfg).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("the bucket nosuchbucket") && msg.contains("does not exist"),
        "{msg}"
    );
}

#[test]
fn two_prefixes_are_independent_repositories_and_lock_separately() {
    let g = Garage::start();
    let a = Repository::open_or_init(Arc::new(S3Target::connect(&g.config("a")).unwrap()), opts())
        .unwrap();
    let b_target = Arc::new(S3Target::connect(&g.config("b")).unwrap());
    let b = Repository::open_or_init(b_target.clone(), opts()).unwrap();
    assert_ne!(a.config().repo_id, b.config().repo_id);
    let ra = a
        .backup_full(&noise(3 * MIB, 5), &req(), &JobCtl::new())
        .unwrap();
    assert_eq!(a.list_backups().unwrap().backups.len(), 1);
    assert!(b.list_backups().unwrap().backups.is_empty());
    // The same data in b is stored again there: no sharing across prefixes.
    let rb = b
        .backup_full(&noise(3 * MIB, 5), &req(), &JobCtl::new())
        .unwrap();
    assert_eq!(rb.manifest.stats.new_chunks, 3);
    assert_eq!(ra.manifest.content_digest, rb.manifest.content_digest);

    // A second writer on one prefix is refused while the first holds the lease.
    let held = b_target.lock().unwrap();
    let other = S3Target::connect(&g.config("b")).unwrap();
    // Same process: the lease's owner id differs per lock call, and the pid is alive.
    let e = other.lock().err().expect("second lock must fail");
    assert_eq!(e.kind(), ErrorKind::Locked);
    let _lock_a = S3Target::connect(&g.config("a")).unwrap().lock().unwrap();
    drop(held);
    other.lock().unwrap();
}

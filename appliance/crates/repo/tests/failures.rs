//! Interrupted and failed backups: cancel, crash between chunks and index, a full target,
//! damaged chunks, manifests and indexes.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::Arc;

use common::*;
use repo::{
    CancelToken, ErrorKind, GcOptions, JobCtl, LocalDir, ProblemKind, RepoError, Repository,
};

/// A repository holding one good backup of `img`; returns (dir, root, backup id).
fn repo_with_one_backup(img: &[u8]) -> (tempfile::TempDir, std::path::PathBuf, repo::BackupId) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let repo = Repository::open_local(&root, init_opts(64 << 10)).unwrap();
    let id = backup_bytes(&repo, img, "d", 64 << 10).id().clone();
    (dir, root, id)
}

fn assert_only(repo: &Repository, id: &repo::BackupId) {
    let cat = repo.list_backups().unwrap();
    let ids: Vec<_> = cat.backups.iter().map(|m| m.backup_id.clone()).collect();
    assert_eq!(ids, std::slice::from_ref(id));
    assert!(cat.unreadable.is_empty());
    let report = repo.verify(id, &JobCtl::new()).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.image_sha256_ok, Some(true));
}

#[test]
fn cancelled_backup_publishes_nothing_and_leaves_no_chunks() {
    let (_dir, root, first) = repo_with_one_backup(&mixed_image(MIB as usize, 1));
    let repo = open_plain(&root);
    let chunks_before = chunk_files(&root);
    let token = CancelToken::new();
    let t2 = token.clone();
    let ctl = JobCtl::new().with_cancel(token).with_progress(move |p| {
        if p.done_bytes >= 4 * MIB {
            t2.cancel();
        }
    });
    let img = random_bytes(16 * MIB as usize, 2);
    let e = repo
        .backup_full(&img, &request("d", 0, 64 << 10), &ctl)
        .unwrap_err();
    assert!(matches!(e, RepoError::Cancelled), "{e}");
    assert_eq!(
        e.to_string(),
        "the job was cancelled; nothing was published"
    );
    assert_only(&repo, &first);
    assert_eq!(chunk_files(&root), chunks_before);
    assert!(temp_files(&root).is_empty());
    // The lock was released: the next backup runs.
    backup_bytes(&repo, &img[..MIB as usize], "d", 64 << 10);
}

#[test]
fn failure_writing_the_index_publishes_nothing() {
    let img = mixed_image(MIB as usize, 3);
    let (_dir, root, first) = repo_with_one_backup(&img);
    let chunks_before = chunk_files(&root);
    let faulty = Repository::open(FaultyTarget::new(&root, Fault::FailPrefix("backups/"))).unwrap();
    let e = faulty
        .backup_full(
            &random_bytes(MIB as usize, 4),
            &request("d", 0, 64 << 10),
            &JobCtl::new(),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    let repo = open_plain(&root);
    assert_only(&repo, &first);
    assert_eq!(
        chunk_files(&root),
        chunks_before,
        "the job removes its chunks"
    );
}

#[test]
fn crash_between_chunks_and_index_leaves_earlier_backups_intact() {
    let img = mixed_image(MIB as usize, 5);
    let (_dir, root, first) = repo_with_one_backup(&img);
    let chunks_before = chunk_files(&root).len();
    // A panic while writing the index skips every cleanup, like a crash would.
    let crashing =
        Repository::open(FaultyTarget::new(&root, Fault::PanicPrefix("backups/"))).unwrap();
    let new_data = random_bytes(MIB as usize, 6);
    let r = catch_unwind(AssertUnwindSafe(|| {
        crashing.backup_full(&new_data, &request("d", 0, 64 << 10), &JobCtl::new())
    }));
    assert!(r.is_err(), "the simulated crash did not happen");
    // A write torn by the crash leaves a temporary file.
    std::fs::write(root.join("chunks/.torn.tmp-0123456789abcdef"), b"partial").unwrap();

    let repo = open_plain(&root);
    assert_only(&repo, &first);
    assert_eq!(
        chunk_files(&root).len(),
        chunks_before + 16,
        "orphan chunks remain"
    );
    let report = repo.gc_temp().unwrap();
    assert_eq!(report.removed_temp, 1);
    assert!(temp_files(&root).is_empty());
    let report = repo.gc(&GcOptions::default()).unwrap();
    assert_eq!(report.removed_chunks, 16);
    assert_eq!(chunk_files(&root).len(), chunks_before);
    assert_only(&repo, &first);
}

/// Runs in a child process (see the test below): backs up into the repository named by
/// `REPO_CRASH_ROOT` through a target that aborts the process when the index is written.
#[test]
fn crash_child() {
    let Ok(root) = std::env::var("REPO_CRASH_ROOT") else {
        return;
    };
    let repo = Repository::open(FaultyTarget::new(
        std::path::Path::new(&root),
        Fault::AbortPrefix("backups/"),
    ))
    .unwrap();
    let _ = repo.backup_full(
        &random_bytes(MIB as usize, 8),
        &request("d", 0, 64 << 10),
        &JobCtl::new(),
    );
    // Not reached: the process aborts before the index is written.
    std::process::exit(0);
}

#[test]
fn killed_process_between_chunks_and_index_leaves_earlier_backups_intact() {
    let img = mixed_image(MIB as usize, 7);
    let (_dir, root, first) = repo_with_one_backup(&img);
    let chunks_before = chunk_files(&root).len();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--test-threads=1", "--nocapture"])
        .env("REPO_CRASH_ROOT", &root)
        .output()
        .unwrap();
    assert!(
        !status.status.success(),
        "the child was meant to die: {}",
        String::from_utf8_lossy(&status.stdout)
    );
    assert_eq!(chunk_files(&root).len(), chunks_before + 16);
    let repo = open_plain(&root);
    assert_only(&repo, &first);
    // The lock died with the process.
    let report = repo.gc(&GcOptions::default()).unwrap();
    assert_eq!(report.removed_chunks, 16);
    assert_only(&repo, &first);
}

#[test]
fn full_target_fails_with_a_clear_message_emulated() {
    let img = mixed_image(MIB as usize, 9);
    let (_dir, root, first) = repo_with_one_backup(&img);
    let chunks_before = chunk_files(&root);
    // Room for about 1 MiB more of incompressible chunks.
    let full = Repository::open(FaultyTarget::new(&root, Fault::FullAfter(MIB))).unwrap();
    let e = full
        .backup_full(
            &random_bytes(4 * MIB as usize, 10),
            &request("d", 0, 64 << 10),
            &JobCtl::new(),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TargetFull);
    assert!(e.to_string().starts_with("backup target is full: "), "{e}");
    let repo = open_plain(&root);
    assert_only(&repo, &first);
    assert_eq!(chunk_files(&root), chunks_before);
    assert!(temp_files(&root).is_empty());
}

#[test]
fn full_target_fails_with_a_clear_message_on_a_real_filesystem() {
    let Some(fs) = LoopFs::new(32 * MIB) else {
        return;
    };
    let root = fs.mountpoint.join("repo");
    let repo = Repository::open_local(&root, init_opts(1 << 20)).unwrap();
    let first_img = random_bytes(8 * MIB as usize, 11);
    let first = backup_bytes(&repo, &first_img, "d", 1 << 20);
    let free_before = repo.target().free_space().unwrap().unwrap();
    let chunks_before = chunk_files(&root);

    let e = repo
        .backup_full(
            &random_bytes(40 * MIB as usize, 12),
            &request("d", 0, 1 << 20),
            &JobCtl::new(),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TargetFull, "{e}");
    let msg = e.to_string();
    eprintln!("error as users see it: {msg}");
    assert!(msg.starts_with("backup target is full: "), "{msg}");
    assert!(msg.contains(&root.display().to_string()), "{msg}");
    assert!(temp_files(&root).is_empty(), "{:?}", temp_files(&root));
    assert_eq!(chunk_files(&root), chunks_before);
    let free_after = repo.target().free_space().unwrap().unwrap();
    assert!(
        free_after + MIB >= free_before,
        "{free_after} < {free_before}"
    );

    assert_only(&repo, first.id());
    let out = fs.mountpoint.join("restored.img");
    let r = repo.restore(first.id(), &out, &JobCtl::new()).unwrap();
    assert_eq!(r.image_sha256, sha256(&first_img));
    // And once there is room again, backups work.
    std::fs::remove_file(&out).unwrap();
    backup_bytes(&repo, &random_bytes(4 * MIB as usize, 13), "d", 1 << 20);
}

#[test]
fn verify_names_the_chunk_with_a_flipped_byte() {
    let img = mixed_image(MIB as usize, 14);
    let (dir, root, id) = repo_with_one_backup(&img);
    let repo = open_plain(&root);
    let m = repo.manifest(&id).unwrap();
    let index = repo.index(&m).unwrap();
    let (bad_idx, bad_digest) = index
        .iter()
        .find_map(|(i, r)| match r {
            repo::ChunkRef::Data(d) if i.0 == 5 => Some((i, d)),
            _ => None,
        })
        .expect("chunk 5 holds data");
    let path = root.join(repo::chunk_key(&bad_digest).as_str());
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let report = repo.verify(&id, &JobCtl::new()).unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.problems.len(), 1);
    let p = &report.problems[0];
    assert_eq!(p.index, bad_idx);
    assert_eq!(p.kind, ProblemKind::Corrupt);
    assert!(p.to_string().starts_with("chunk 5 ("), "{p}");
    assert_eq!(report.image_sha256_ok, None);

    // Restore refuses to write a damaged image and says which chunk.
    let e = repo
        .restore(&id, &dir.path().join("out.img"), &JobCtl::new())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(
        e.to_string()
            .starts_with(&format!("chunk 5 of backup {id}")),
        "{e}"
    );

    // A deleted chunk is reported as missing.
    std::fs::remove_file(&path).unwrap();
    let report = repo.verify(&id, &JobCtl::new()).unwrap();
    assert_eq!(report.problems[0].kind, ProblemKind::Missing);
    assert_eq!(report.problems[0].index, bad_idx);
}

#[test]
fn corrupted_manifest_gives_a_clear_error_and_hides_nothing_else() {
    let img = mixed_image(MIB as usize, 15);
    let (_dir, root, first) = repo_with_one_backup(&img);
    let repo = open_plain(&root);
    let second = backup_bytes(&repo, &random_bytes(100_000, 16), "d", 64 << 10);
    let mpath = root.join(format!("backups/{}/manifest.json", second.id()));
    let text = std::fs::read(&mpath).unwrap();
    std::fs::write(&mpath, &text[..text.len() / 2]).unwrap();

    let e = repo.manifest(second.id()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(
        e.to_string().starts_with(&format!(
            "manifest of backup {} is corrupt: not valid JSON",
            second.id()
        )),
        "{e}"
    );
    let cat = repo.list_backups().unwrap();
    assert_eq!(cat.backups.len(), 1);
    assert_eq!(cat.backups[0].backup_id, first);
    assert_eq!(cat.unreadable.len(), 1);
    assert_eq!(cat.unreadable[0].id, second.id().as_str());
    assert!(repo
        .restore(second.id(), &root.join("x"), &JobCtl::new())
        .is_err());
    // gc keeps the chunks of a backup whose manifest is damaged.
    let before = chunk_files(&root).len();
    repo.gc(&GcOptions::default()).unwrap();
    assert_eq!(chunk_files(&root).len(), before);
}

#[test]
fn tampered_index_is_detected() {
    let img = mixed_image(MIB as usize, 17);
    let (_dir, root, id) = repo_with_one_backup(&img);
    let ipath = root.join(format!("backups/{id}/index"));
    let mut bytes = std::fs::read(&ipath).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&ipath, &bytes).unwrap();
    let repo = open_plain(&root);
    let e = repo.verify(&id, &JobCtl::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(
        e.to_string()
            .starts_with(&format!("index of backup {id} is corrupt")),
        "{e}"
    );
}

#[test]
fn newer_repository_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    Repository::open_local(&root, init_opts(64 << 10)).unwrap();
    let cfg = std::fs::read_to_string(root.join("repo.json")).unwrap();
    std::fs::write(
        root.join("repo.json"),
        cfg.replace("\"version\": 1", "\"version\": 2"),
    )
    .unwrap();
    let e = Repository::open(Arc::new(LocalDir::open(&root).unwrap())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FormatVersion, "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = Repository::open(Arc::new(LocalDir::open(empty.path()).unwrap())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[test]
fn delete_and_gc_free_only_unreferenced_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let repo = Repository::open_local(&root, init_opts(64 << 10)).unwrap();
    let shared = random_bytes(512 << 10, 20);
    let mut a = shared.clone();
    a.extend_from_slice(&random_bytes(256 << 10, 21));
    let mut b = shared.clone();
    b.extend_from_slice(&random_bytes(256 << 10, 22));
    let ra = backup_bytes(&repo, &a, "a", 64 << 10);
    let rb = backup_bytes(&repo, &b, "b", 64 << 10);
    assert_eq!(chunk_files(&root).len(), 8 + 4 + 4);

    repo.delete_backup(ra.id()).unwrap();
    assert!(matches!(
        repo.delete_backup(ra.id()),
        Err(RepoError::NotFound { .. })
    ));
    assert!(!root.join(format!("backups/{}", ra.id())).exists());
    // With a grace period, the young chunks stay.
    let r = repo
        .gc(&GcOptions {
            grace: std::time::Duration::from_secs(3600),
        })
        .unwrap();
    assert_eq!((r.removed_chunks, r.recent_chunks), (0, 4));
    let r = repo.gc(&GcOptions::default()).unwrap();
    assert_eq!((r.removed_chunks, r.kept_chunks), (4, 12));
    assert_eq!(chunk_files(&root).len(), 12);
    assert_only(&repo, rb.id());
}

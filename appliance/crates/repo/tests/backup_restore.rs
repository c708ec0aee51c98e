//! Full backups, restore, dedup, incrementals, catalogue.

mod common;

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use common::*;
use repo::{
    BackupKind, ByteRange, CbtPosition, ChunkRef, DestKind, JobCtl, LocalDir, Phase, RepoError,
    Repository,
};

#[test]
fn full_backup_of_a_file_restores_with_identical_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let size = 10 * MIB as usize + 12_345;
    let mut data = mixed_image(size, 1);
    // A large zero area so the restored file can be sparse.
    data[2 * MIB as usize..6 * MIB as usize].fill(0);
    let (_, src) = image_file(dir.path(), "disk.img", &data);
    let expected = sha256(&data);

    let repo_dir = dir.path().join("repo");
    let repo = Repository::open_local(&repo_dir, init_opts(1 << 20)).unwrap();
    let progress = Arc::new(std::sync::Mutex::new(Vec::new()));
    let p2 = progress.clone();
    let ctl = JobCtl::new().with_progress(move |p| p2.lock().unwrap().push(*p));
    let mut req = request("prod0", size as u64, 1 << 20);
    req.cbt = Some(CbtPosition {
        generation_id: "6c9b7ba2-8f43-4b8f-9c9e-2a2f1d0e5b11".into(),
        snap_number: 1,
    });
    let res = repo.backup_full(&src, &req, &ctl).unwrap();
    let m = &res.manifest;
    assert_eq!(m.kind, BackupKind::Full);
    assert_eq!(m.image_size, size as u64);
    assert_eq!(m.chunk_count, 11);
    assert_eq!(m.image_sha256, Some(expected));
    assert_eq!(m.disk.serial.as_deref(), Some("prod0"));
    assert_eq!(res.read_bytes(), size as u64);
    assert!(m.stats.zero_chunks >= 4, "{:?}", m.stats);
    assert!(m.stats.stored_bytes < m.stats.new_bytes, "{:?}", m.stats);
    {
        let p = progress.lock().unwrap();
        let last = p.last().unwrap();
        assert_eq!(last.phase, Phase::Backup);
        assert_eq!(
            (last.done_bytes, last.total_bytes),
            (size as u64, size as u64)
        );
        assert!(p.windows(2).all(|w| w[0].done_bytes <= w[1].done_bytes));
    }

    let out = dir.path().join("restored.img");
    let r = repo.restore(res.id(), &out, &JobCtl::new()).unwrap();
    assert_eq!(r.image_sha256, expected);
    assert_eq!(r.destination, DestKind::SparseFile);
    assert_eq!(sha256_file(&out), expected);
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.len(), size as u64);
    assert!(
        meta.blocks() * 512 < size as u64 - 3 * MIB,
        "zero chunks must be holes: {} blocks",
        meta.blocks()
    );

    // Restoring over an existing, larger file gives the exact image again.
    std::fs::write(&out, vec![0xAAu8; size + 5000]).unwrap();
    repo.restore(res.id(), &out, &JobCtl::new()).unwrap();
    assert_eq!(sha256_file(&out), expected);

    // A fresh appliance pointed at the repository sees the backup.
    let again = open_plain(&repo_dir);
    let cat = again.list_backups().unwrap();
    assert_eq!(cat.backups.len(), 1);
    assert!(cat.unreadable.is_empty());
    assert_eq!(cat.backups[0], *m);
    assert_eq!(again.config().default_chunk_size.bytes(), 1 << 20);
}

#[test]
fn identical_data_adds_no_chunk_objects_and_disks_share_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let repo = Repository::open_local(&repo_dir, init_opts(64 << 10)).unwrap();
    let a = mixed_image(4 * MIB as usize, 7);

    let first = backup_bytes(&repo, &a, "diskA", 64 << 10);
    let after_first = chunk_files(&repo_dir);
    assert_eq!(first.manifest.stats.new_chunks, after_first.len() as u64);
    let second = backup_bytes(&repo, &a, "diskA", 64 << 10);
    assert_eq!(
        chunk_files(&repo_dir),
        after_first,
        "second backup wrote chunks"
    );
    assert_eq!(second.manifest.stats.new_chunks, 0);
    assert_eq!(second.manifest.stats.stored_bytes, 0);
    assert_eq!(
        second.manifest.content_digest,
        first.manifest.content_digest
    );

    // Disk B: the first half of A, then new data.
    let mut b = a[..2 * MIB as usize].to_vec();
    b.extend_from_slice(&random_bytes(2 * MIB as usize, 99));
    let third = backup_bytes(&repo, &b, "diskB", 64 << 10);
    let new_chunks = (2 * MIB / (64 << 10)) as usize;
    assert_eq!(third.manifest.stats.new_chunks, new_chunks as u64);
    assert_eq!(chunk_files(&repo_dir).len(), after_first.len() + new_chunks);
    assert_eq!(repo.list_backups().unwrap().backups.len(), 3);

    // A repeated block within one image is stored once.
    let block = random_bytes(64 << 10, 5);
    let repeated: Vec<u8> = block.repeat(8);
    let r = backup_bytes(&repo, &repeated, "diskC", 64 << 10);
    assert_eq!(r.manifest.stats.new_chunks, 1);
    assert_eq!(r.manifest.stats.reused_chunks, 7);
}

/// Chunk size of the incremental test.
const CS: u64 = 256 << 10;

#[test]
fn incremental_reads_only_changed_chunks_and_restores_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_local(dir.path().join("repo"), init_opts(CS as u32)).unwrap();
    let cs = CS;
    let size = 16 * CS as usize;
    let original = mixed_image(size, 3);
    let (path, _) = image_file(dir.path(), "disk.img", &original);
    let full = repo
        .backup_full(
            &File::open(&path).unwrap(),
            &request("prod0", size as u64, CS as u32),
            &JobCtl::new(),
        )
        .unwrap();

    // Known changes: 100 bytes inside chunk 3, 1 byte at the start of chunk 9,
    // and a write that straddles chunks 12 and 13.
    patch_file(&path, 3 * cs + 500, &[0x5A; 100]);
    patch_file(&path, 9 * cs, &[0xFF]);
    patch_file(&path, 13 * cs - 10, &[0x11; 20]);
    let changed = [
        ByteRange::new(3 * cs + 500, 100),
        ByteRange::new(9 * cs, 1),
        ByteRange::new(13 * cs - 10, 20),
        ByteRange::new(3 * cs + 510, 10), // overlaps the first: still one chunk
    ];
    let modified = std::fs::read(&path).unwrap();
    let src = CountingSource::new(File::open(&path).unwrap());
    let inc = repo
        .backup_incremental(
            &src,
            full.id(),
            &changed,
            &request("prod0", size as u64, CS as u32),
            &JobCtl::new(),
        )
        .unwrap();
    let m = &inc.manifest;
    assert_eq!(m.kind, BackupKind::Incremental);
    assert_eq!(m.parent.as_ref(), Some(full.id()));
    assert_eq!(inc.read_bytes(), 4 * cs, "chunks 3, 9, 12, 13");
    assert_eq!(src.read_bytes(), 4 * cs);
    assert_eq!(m.stats.read_chunks, 4);
    assert_eq!(m.stats.unchanged_chunks, 12);
    assert_eq!(m.image_sha256, None);

    let out = dir.path().join("inc.img");
    let r = repo.restore(inc.id(), &out, &JobCtl::new()).unwrap();
    assert_eq!(r.image_sha256, sha256(&modified));
    assert_eq!(std::fs::read(&out).unwrap(), modified);
    // The parent still restores the original.
    let r = repo
        .restore(full.id(), &dir.path().join("full.img"), &JobCtl::new())
        .unwrap();
    assert_eq!(r.image_sha256, sha256(&original));

    // The content digest of the incremental equals that of a full backup of the same data.
    let full2 = backup_bytes(&repo, &modified, "prod0", CS as u32);
    assert_eq!(full2.manifest.content_digest, m.content_digest);

    // An incremental with no changes reads nothing.
    let none = repo
        .backup_incremental(
            &modified,
            inc.id(),
            &[],
            &request("prod0", size as u64, CS as u32),
            &JobCtl::new(),
        )
        .unwrap();
    assert_eq!(none.read_bytes(), 0);
    assert_eq!(none.manifest.content_digest, m.content_digest);
    assert!(repo.verify(none.id(), &JobCtl::new()).unwrap().is_ok());
}

#[test]
fn incremental_follows_a_grown_or_shrunk_disk() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_local(dir.path().join("repo"), init_opts(64 << 10)).unwrap();
    let cs = 64u64 << 10;
    let base = mixed_image((10 * cs + 100) as usize, 11);
    let full = backup_bytes(&repo, &base, "d", 64 << 10);

    let mut grown = base.clone();
    grown.extend_from_slice(&random_bytes((3 * cs) as usize, 12));
    let inc = repo
        .backup_incremental(
            &grown,
            full.id(),
            &[],
            &request("d", 0, 64 << 10),
            &JobCtl::new(),
        )
        .unwrap();
    // Chunk 10 (was partial) and the new chunks 11..=13 are read.
    assert_eq!(inc.read_bytes(), grown.len() as u64 - 10 * cs);
    let out = dir.path().join("g.img");
    assert_eq!(
        repo.restore(inc.id(), &out, &JobCtl::new())
            .unwrap()
            .image_sha256,
        sha256(&grown)
    );

    let shrunk = base[..(5 * cs + 7) as usize].to_vec();
    let inc2 = repo
        .backup_incremental(
            &shrunk,
            inc.id(),
            &[],
            &request("d", 0, 64 << 10),
            &JobCtl::new(),
        )
        .unwrap();
    assert_eq!(inc2.read_bytes(), 7, "only the new partial last chunk");
    assert_eq!(
        repo.restore(inc2.id(), &out, &JobCtl::new())
            .unwrap()
            .image_sha256,
        sha256(&shrunk)
    );
}

#[test]
fn changed_ranges_past_the_end_are_clipped() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_local(dir.path().join("repo"), init_opts(64 << 10)).unwrap();
    let img = mixed_image(200_000, 4);
    let full = backup_bytes(&repo, &img, "d", 64 << 10);
    // A CBT block overhanging the end of the disk.
    let inc = repo
        .backup_incremental(
            &img,
            full.id(),
            &[
                ByteRange::new(199_000, 1 << 20),
                ByteRange::new(1 << 30, 10),
            ],
            &request("d", 0, 64 << 10),
            &JobCtl::new(),
        )
        .unwrap();
    assert_eq!(inc.read_bytes(), 200_000 - 3 * (64 << 10));
}

#[test]
fn incremental_of_a_missing_parent_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_local(dir.path().join("repo"), init_opts(64 << 10)).unwrap();
    let e = repo
        .backup_incremental(
            &vec![1u8; 4096],
            &"nope".parse().unwrap(),
            &[],
            &request("d", 0, 64 << 10),
            &JobCtl::new(),
        )
        .unwrap_err();
    assert!(matches!(e, RepoError::NotFound { .. }), "{e}");
    assert_eq!(e.to_string(), "backup nope does not exist");
}

#[test]
fn index_entries_mark_zero_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_local(dir.path().join("repo"), init_opts(64 << 10)).unwrap();
    let mut img = vec![0u8; 4 * (64 << 10)];
    img[(64 << 10) + 3] = 1;
    let r = backup_bytes(&repo, &img, "d", 64 << 10);
    let index = repo.index(&r.manifest).unwrap();
    let kinds: Vec<bool> = index
        .entries()
        .iter()
        .map(|e| matches!(e, ChunkRef::Zero))
        .collect();
    assert_eq!(kinds, [true, false, true, true]);
    assert_eq!(chunk_files(&dir.path().join("repo")).len(), 1);
}

#[test]
fn ids_are_unique_and_explicit_ids_are_refused_twice() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_local(dir.path().join("repo"), init_opts(64 << 10)).unwrap();
    let img = random_bytes(70_000, 1);
    let mut req = request("d", 0, 64 << 10);
    req.id = Some("nightly-1".parse().unwrap());
    repo.backup_full(&img, &req, &JobCtl::new()).unwrap();
    let e = repo.backup_full(&img, &req, &JobCtl::new()).unwrap_err();
    assert!(matches!(e, RepoError::AlreadyExists { .. }), "{e}");
    let a = backup_bytes(&repo, &img, "d", 64 << 10);
    let b = backup_bytes(&repo, &img, "d", 64 << 10);
    assert_ne!(a.id(), b.id());
    let cat = repo.list_backups().unwrap();
    assert_eq!(cat.backups.len(), 3);
}

#[test]
fn a_second_writer_is_refused_while_one_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let repo = Repository::open_local(&root, init_opts(64 << 10)).unwrap();
    let other = Arc::new(LocalDir::open(&root).unwrap());
    let held = repo::Target::lock(other.as_ref()).unwrap();
    let e = repo
        .backup_full(&vec![1u8; 8192], &request("d", 0, 64 << 10), &JobCtl::new())
        .unwrap_err();
    assert!(matches!(e, RepoError::Locked { .. }), "{e}");
    assert!(e.to_string().contains("locked by another writer"));
    drop(held);
    backup_bytes(&repo, &vec![1u8; 8192], "d", 64 << 10);
}

#[test]
fn restore_to_a_block_device_writes_every_byte() {
    let mut img = mixed_image(3 * MIB as usize, 21);
    img[MIB as usize..2 * MIB as usize].fill(0);
    // The device starts full of garbage: zero chunks must be written, not skipped.
    let garbage = vec![0xEEu8; 4 * MIB as usize];
    let Some(dev) = LoopDev::new(4 * MIB, Some(&garbage)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_local(dir.path().join("repo"), init_opts(1 << 20)).unwrap();
    let r = backup_bytes(&repo, &img, "d", 1 << 20);
    let res = repo.restore(r.id(), &dev.path, &JobCtl::new()).unwrap();
    assert_eq!(res.destination, DestKind::BlockDevice);
    assert_eq!(res.zero_chunks, 1);
    assert_eq!(res.image_sha256, sha256(&img));
    let mut back = vec![0u8; img.len()];
    std::os::unix::fs::FileExt::read_exact_at(&File::open(&dev.path).unwrap(), &mut back, 0)
        .unwrap();
    assert_eq!(sha256(&back), sha256(&img));

    // And a block device is a backup source too (its size comes from seeking).
    let from_dev = repo
        .backup_full(
            &File::open(&dev.path).unwrap(),
            &request("loop", 0, 1 << 20),
            &JobCtl::new(),
        )
        .unwrap();
    assert_eq!(from_dev.manifest.image_size, 4 * MIB);

    // A device smaller than the image is refused before anything is written.
    let Some(small) = LoopDev::new(MIB, None) else {
        return;
    };
    let e = repo
        .restore(r.id(), &small.path, &JobCtl::new())
        .unwrap_err();
    assert!(matches!(e, RepoError::InvalidArgument { .. }), "{e}");
}

//! Random access to a backup's image (what the NBD export of a backup serves).

mod common;

use common::*;
use repo::{BackupImage, ErrorKind, Repository};

#[test]
fn reads_at_any_offset_match_the_backed_up_image() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_local(dir.path().join("repo"), init_opts(1 << 20)).unwrap();
    // 3 MiB + 1000 bytes: data chunks, a zero chunk, a short last chunk.
    let mut img = mixed_image(3 * MIB as usize + 1000, 41);
    img[MIB as usize..2 * MIB as usize].fill(0);
    let r = backup_bytes(&repo, &img, "d", 1 << 20);

    let image = BackupImage::open(repo.clone(), r.id(), 2).unwrap();
    assert_eq!(image.size(), img.len() as u64);
    assert_eq!(image.manifest().backup_id, *r.id());
    let len = img.len() as u64;
    // Unaligned reads, reads across chunk borders, the zero chunk, the very end, and
    // a read spanning every chunk.
    let ranges: &[(u64, usize)] = &[
        (0, 512),
        (7, 4093),
        (MIB - 100, 300),
        (MIB + 17, 4096),
        (2 * MIB - 1, 2),
        (len - 1000, 1000),
        (len - 1, 1),
        (0, img.len()),
        (5, 0),
    ];
    for &(offset, n) in ranges {
        let mut buf = vec![0xa5u8; n];
        image.read_at(&mut buf, offset).unwrap();
        assert!(
            buf == img[offset as usize..offset as usize + n],
            "{n} bytes at {offset} differ from the image"
        );
    }
    // The whole image, read in 64 KiB requests, hashes like the original.
    let mut all = Vec::with_capacity(img.len());
    let mut buf = vec![0u8; 65536];
    let mut pos = 0u64;
    while pos < len {
        let n = (len - pos).min(buf.len() as u64) as usize;
        image.read_at(&mut buf[..n], pos).unwrap();
        all.extend_from_slice(&buf[..n]);
        pos += n as u64;
    }
    assert_eq!(sha256(&all), sha256(&img));
}

#[test]
fn a_read_past_the_end_is_refused_and_a_damaged_chunk_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let repo = Repository::open_local(&root, init_opts(1 << 20)).unwrap();
    let img = random_bytes(2 * MIB as usize, 42);
    let r = backup_bytes(&repo, &img, "d", 1 << 20);
    let image = BackupImage::open(repo.clone(), r.id(), 1).unwrap();

    let mut buf = vec![0u8; 4096];
    let err = image.read_at(&mut buf, 2 * MIB - 100).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("past the end"), "{err}");

    // Damage every chunk object: a read of a chunk not in the cache names it as corrupt.
    for path in chunk_files(&root) {
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let err = image.read_at(&mut buf, MIB).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("chunk 1 of backup {}", r.id())),
        "{err}"
    );

    let err = BackupImage::open(repo, &repo::BackupId::new("no-such").unwrap(), 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

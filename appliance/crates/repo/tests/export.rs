//! Raw and qcow2 export, checked with qemu-img.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use common::*;
use repo::{JobCtl, Repository};

fn qemu_img(args: &[&str]) -> (bool, String) {
    let out = Command::new("qemu-img").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn check_qcow2_matches_raw(qcow2: &Path, raw: &Path) {
    let (ok, text) = qemu_img(&["check", "-f", "qcow2", qcow2.to_str().unwrap()]);
    assert!(ok, "qemu-img check failed:\n{text}");
    assert!(text.contains("No errors were found"), "{text}");
    let (ok, text) = qemu_img(&[
        "compare",
        "-f",
        "qcow2",
        "-F",
        "raw",
        qcow2.to_str().unwrap(),
        raw.to_str().unwrap(),
    ]);
    assert!(ok, "qemu-img compare failed:\n{text}");
    assert!(text.contains("Images are identical"), "{text}");
}

#[test]
fn qcow2_export_passes_qemu_img_check_and_compare() {
    if !have_tool("qemu-img") {
        eprintln!("skipping: qemu-img is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_local(dir.path().join("repo"), init_opts(1 << 20)).unwrap();
    // 5 MiB + 512 bytes: a partial last cluster, zero clusters inside data chunks.
    let mut img = mixed_image(5 * MIB as usize + 512, 30);
    img[100_000..100_000 + 200_000].fill(0);
    let r = backup_bytes(&repo, &img, "d", 1 << 20);

    let raw = dir.path().join("restored.raw");
    let restored = repo.restore(r.id(), &raw, &JobCtl::new()).unwrap();
    let q = dir.path().join("export.qcow2");
    let exp = repo.export_qcow2(r.id(), &q, &JobCtl::new()).unwrap();
    assert_eq!(exp.image_sha256, restored.image_sha256);
    assert_eq!(exp.virtual_size, img.len() as u64);
    assert!(exp.file_size < img.len() as u64 + MIB);
    check_qcow2_matches_raw(&q, &raw);

    let (ok, info) = qemu_img(&["info", "--output=json", q.to_str().unwrap()]);
    assert!(ok, "{info}");
    assert!(
        info.contains(&format!("\"virtual-size\": {}", img.len())),
        "{info}"
    );
    assert!(info.contains("\"compat\": \"1.1\""), "qcow2 v3: {info}");

    // Converting back with qemu-img gives the original bytes.
    let back = dir.path().join("back.raw");
    let (ok, text) = qemu_img(&[
        "convert",
        "-f",
        "qcow2",
        "-O",
        "raw",
        q.to_str().unwrap(),
        back.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert_eq!(sha256_file(&back), sha256(&img));
}

#[test]
fn qcow2_and_raw_export_of_a_sparse_disk() {
    if !have_tool("qemu-img") {
        eprintln!("skipping: qemu-img is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A 40 MiB sparse disk with a little data at both ends and in the middle. (The qcow2
    // writer's unit tests cover many L2 tables and refcount blocks with small clusters.)
    let src = dir.path().join("sparse.img");
    let size = 40 * MIB;
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&src)
        .unwrap();
    f.set_len(size).unwrap();
    for (i, off) in [0, 13 * MIB + 4096, 25 * MIB, size - 4096]
        .into_iter()
        .enumerate()
    {
        f.write_all_at(
            &random_bytes(8192.min((size - off) as usize), i as u64),
            off,
        )
        .unwrap();
    }
    let repo = Repository::open_local(dir.path().join("repo"), init_opts(4 << 20)).unwrap();
    let r = repo
        .backup_full(&f, &request("big", size, 4 << 20), &JobCtl::new())
        .unwrap();
    assert_eq!(r.manifest.stats.zero_chunks, 10 - 4);

    let q = dir.path().join("big.qcow2");
    let exp = repo.export_qcow2(r.id(), &q, &JobCtl::new()).unwrap();
    assert!(
        exp.file_size < MIB,
        "sparse export is {} bytes",
        exp.file_size
    );
    check_qcow2_matches_raw(&q, &src);

    let raw = dir.path().join("export.raw");
    let res = repo.export_raw(r.id(), &raw, &JobCtl::new()).unwrap();
    assert_eq!(res.image_sha256, sha256_file(&src));
    let meta = std::fs::metadata(&raw).unwrap();
    assert_eq!(meta.len(), size);
    assert!(
        std::os::unix::fs::MetadataExt::blocks(&meta) * 512 <= 16 * MIB + MIB,
        "raw export keeps zero chunks as holes"
    );
}

#[test]
fn qcow2_export_refuses_sizes_qemu_cannot_represent() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_local(dir.path().join("repo"), init_opts(64 << 10)).unwrap();
    let r = backup_bytes(&repo, &random_bytes(1000, 1), "d", 64 << 10);
    let e = repo
        .export_qcow2(r.id(), &dir.path().join("x.qcow2"), &JobCtl::new())
        .unwrap_err();
    assert_eq!(e.kind(), repo::ErrorKind::InvalidArgument, "{e}");
}

use std::fs;
use std::path::Path;

use super::file::extents_to_ranges;
use super::fsioctl::{Extent, EXTENT_LAST, EXTENT_MERGED, EXTENT_UNWRITTEN};
use super::*;
use crate::devices::probe::samples;
use crate::devices::tests::{add_disk, add_node, add_partition, FakeDisk};

const MIB: u64 = 1 << 20;

#[test]
fn range_pool_hands_out_pieces_in_order() {
    let mut p = RangePool::new(vec![
        SectorRange::new(100, 10),
        SectorRange::new(0, 0),
        SectorRange::new(500, 20),
    ]);
    assert_eq!(p.total_sectors(), 30);
    assert_eq!(p.take(4), [SectorRange::new(100, 4)]);
    assert_eq!(
        p.take(10),
        [SectorRange::new(104, 6), SectorRange::new(500, 4)]
    );
    assert_eq!(p.remaining_sectors(), 16);
    assert_eq!(p.take(100), [SectorRange::new(504, 16)]);
    assert_eq!(p.remaining_sectors(), 0);
    assert!(p.take(1).is_empty());
}

fn ext(logical: u64, physical: u64, length: u64, flags: u32) -> Extent {
    Extent {
        logical,
        physical,
        length,
        flags,
    }
}

#[test]
fn extents_become_merged_sector_ranges() {
    let e = [
        ext(0, 1 << 20, 4096, 0),
        ext(4096, (1 << 20) + 4096, 8192, EXTENT_MERGED),
        ext(12288, 8 << 20, 4096, EXTENT_LAST),
    ];
    assert_eq!(
        extents_to_ranges(&e, 16384).unwrap(),
        [SectorRange::new(2048, 24), SectorRange::new(16384, 8)]
    );
    // Only `size` bytes are used even when the last extent is longer.
    assert_eq!(
        extents_to_ranges(&e, 8192).unwrap(),
        [SectorRange::new(2048, 16)]
    );
}

#[test]
fn unusable_extents_are_refused() {
    let unwritten = [ext(0, 4096, 4096, EXTENT_UNWRITTEN | EXTENT_LAST)];
    assert!(extents_to_ranges(&unwritten, 4096)
        .unwrap_err()
        .contains("flags 0x800"));
    let shared = [ext(0, 4096, 4096, 0x2000)];
    assert!(extents_to_ranges(&shared, 4096).is_err());
    let hole = [ext(0, 4096, 4096, 0), ext(8192, 65536, 4096, EXTENT_LAST)];
    assert!(extents_to_ranges(&hole, 12288)
        .unwrap_err()
        .contains("hole at offset 4096"));
    let short = [ext(0, 4096, 4096, EXTENT_LAST)];
    assert!(extents_to_ranges(&short, 8192)
        .unwrap_err()
        .contains("only 4096 of 8192"));
    let odd = [ext(0, 100, 4096, EXTENT_LAST)];
    assert!(extents_to_ranges(&odd, 4096)
        .unwrap_err()
        .contains("not sector-aligned"));
}

/// prod0 (vda: vda1 mounted, vda2 under dm-0), blank scratch disks, one with ext4, one
/// with a mounted partition, a tiny one.
fn tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let disk =
        |name: &'static str, slot: u32, dev: &'static str, mib: u64, serial: &'static [u8]| {
            let devpath = format!("pci0000:00/0000:00:{slot:02x}.0/virtio{slot}/block");
            let attrs: Vec<(&str, &[u8])> = vec![("serial", serial)];
            add_disk(
                root,
                &FakeDisk {
                    name,
                    devpath: &devpath,
                    dev,
                    sectors: mib * MIB / 512,
                    attrs: &attrs,
                },
            );
            let f = fs::File::create(root.join("dev").join(name)).unwrap();
            f.set_len(mib * MIB).unwrap();
        };
    fs::create_dir_all(root.join("dev")).unwrap();
    disk("vda", 2, "254:0", 64, b"prod0");
    disk("vdb", 3, "254:16", 64, b"scratch0");
    disk("vdc", 4, "254:32", 64, b"fs0");
    disk("vdd", 5, "254:48", 64, b"parts0");
    disk("vde", 6, "254:64", 3, b"tiny0");
    add_partition(root, "vda", "vda1", 1, "254:1", 32 * 2048);
    add_partition(root, "vda", "vda2", 2, "254:2", 30 * 2048);
    add_partition(root, "vdd", "vdd1", 1, "254:49", 32 * 2048);
    add_disk(
        root,
        &FakeDisk {
            name: "dm-0",
            devpath: "virtual/block",
            dev: "253:0",
            sectors: 30 * 2048,
            attrs: &[],
        },
    );
    fs::create_dir_all(root.join("sys/block/dm-0/slaves/vda2")).unwrap();
    fs::create_dir_all(root.join("sys/block/vda/vda2/holders/dm-0")).unwrap();
    add_node(root, "vdc", &samples::ext4("data"));
    add_node(root, "vdd", &samples::mbr());
    for (name, mib) in [("vda1", 32), ("vda2", 30), ("vdd1", 32), ("dm-0", 30)] {
        let f = fs::File::create(root.join("dev").join(name)).unwrap();
        f.set_len(mib * MIB).unwrap();
    }
    fs::write(
        root.join("mountinfo"),
        "27 1 254:1 / / rw - ext4 /dev/vda1 rw\n28 27 254:49 / /mnt/x rw - ext4 /dev/vdd1 rw\n",
    )
    .unwrap();
    tmp
}

fn prep(
    root: &Path,
    storage: DiffStorage,
    snap: &[&str],
    required: u64,
) -> Result<Prepared, SessionError> {
    let scanner = Scanner::rooted(root);
    let all = scanner.scan().unwrap();
    let snapshotted: Vec<Device> = snap
        .iter()
        .map(|q| devices::find(&all, q).unwrap().clone())
        .collect();
    prepare(&storage, &scanner, &snapshotted, required)
}

#[test]
fn a_blank_scratch_disk_is_labelled_and_used_minus_the_reserved_ends() {
    let tmp = tree();
    let p = prep(
        tmp.path(),
        DiffStorage::device("scratch0"),
        &["prod0"],
        32 * MIB,
    )
    .unwrap();
    assert_eq!(p.dev, DevId::new(254, 16));
    assert_eq!(p.description, "vdb (serial:scratch0)");
    assert_eq!(p.pool.total_sectors(), (64 - 2) * 2048);
    let mut pool = p.pool.clone();
    assert_eq!(pool.take(u64::MAX), [SectorRange::new(2048, 62 * 2048)]);
    let data = fs::read(tmp.path().join("dev/vdb")).unwrap();
    assert!(data.starts_with(SCRATCH_MAGIC));
    // It is recognised as scratch afterwards, and reused without `overwrite`.
    let scanner = Scanner::rooted(tmp.path());
    let vdb = scanner.find("vdb").unwrap();
    assert_eq!(vdb.content.fs_type, Some(FsType::BlksnapScratch));
    // Not while the first claim holds it (nor its partition-less disk as a whole).
    let e = prep(tmp.path(), DiffStorage::device("vdb"), &["vda"], 0)
        .err()
        .unwrap();
    assert_eq!(e.code(), "storage_in_use");
    drop(p);
    prep(tmp.path(), DiffStorage::device("vdb"), &["vda"], 0).unwrap();
}

#[test]
fn a_partition_and_its_disk_are_not_both_storage() {
    let tmp = tree();
    let root = tmp.path();
    add_partition(root, "vdb", "vdb1", 1, "254:17", 16 * 2048);
    fs::File::create(root.join("dev/vdb1"))
        .unwrap()
        .set_len(16 * MIB)
        .unwrap();
    let part = prep(root, DiffStorage::device("vdb1"), &["vda"], 0).unwrap();
    let whole = DiffStorage::Device {
        device: "vdb".into(),
        overwrite: true,
    };
    let e = prep(root, whole.clone(), &["vda"], 0).err().unwrap();
    assert_eq!(e.code(), "storage_in_use");
    assert!(e.to_string().contains("another snapshot"), "{e}");
    drop(part);
    prep(root, whole, &["vda"], 0).unwrap();
}

#[test]
fn storage_rules_give_clear_errors() {
    let tmp = tree();
    let root = tmp.path();
    let code = |r: Result<Prepared, SessionError>| r.err().map(|e| (e.code(), e.to_string()));

    // The snapshotted disk itself, its partition, or a dm device on it.
    for (storage, snap) in [
        ("prod0", "prod0"),
        ("vda2", "vda"),
        ("vda", "vda1"),
        ("dm-0", "vda"),
    ] {
        let (c, msg) = code(prep(root, DiffStorage::device(storage), &[snap], 0)).unwrap();
        assert_eq!(c, "storage_is_snapshotted", "{storage} vs {snap}: {msg}");
        assert!(msg.contains("overlaps the snapshotted device"), "{msg}");
    }
    // Mounted, held, or a disk with a mounted partition.
    let (c, msg) = code(prep(root, DiffStorage::device("vdd"), &["vda"], 0)).unwrap();
    assert_eq!(c, "storage_in_use");
    assert!(msg.contains("partition vdd1 mounted at /mnt/x"), "{msg}");
    let (c, _) = code(prep(root, DiffStorage::device("vdd1"), &["vdb"], 0)).unwrap();
    assert_eq!(c, "storage_in_use");
    // A filesystem: refused, unless overwrite.
    let (c, msg) = code(prep(root, DiffStorage::device("fs0"), &["vda"], 0)).unwrap();
    assert_eq!(c, "storage_has_data");
    assert!(msg.contains("ext4 filesystem labelled \"data\""), "{msg}");
    let over = DiffStorage::Device {
        device: "fs0".into(),
        overwrite: true,
    };
    prep(root, over, &["vda"], 0).unwrap();
    // Too small for what is asked, or too small to hold anything past the reserved ends.
    let (c, msg) = code(prep(
        root,
        DiffStorage::device("scratch0"),
        &["vda"],
        100 * MIB,
    ))
    .unwrap();
    assert_eq!(c, "scratch_too_small");
    assert_eq!(
        msg,
        "the difference storage vdb (serial:scratch0) is too small: 65011712 bytes available, 104857600 bytes asked for"
    );
    let (c, _) = code(prep(root, DiffStorage::device("tiny0"), &["vda"], 2 * MIB)).unwrap();
    assert_eq!(c, "scratch_too_small");
    // Unknown scratch device.
    let (c, _) = code(prep(root, DiffStorage::device("nope"), &["vda"], 0)).unwrap();
    assert_eq!(c, "unknown_device");
    // A relative file path.
    let (c, _) = code(prep(root, DiffStorage::file("diff.img", MIB), &["vda"], 0)).unwrap();
    assert_eq!(c, "storage_unsuitable");
}

#[test]
fn files_on_filesystems_that_are_not_on_a_listed_block_device_are_refused() {
    let tmp = tree();
    let dir = tempfile::tempdir().unwrap();
    let err = prep(
        tmp.path(),
        DiffStorage::file(dir.path().join("diff.img"), 4 * MIB),
        &["vda"],
        0,
    )
    .err()
    .unwrap();
    assert_eq!(err.code(), "storage_unsuitable", "{err}");
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// On the build machine's own filesystem (when it is ext4/xfs on a listed disk, and we
/// are root): the file is mapped, made immutable while held, and its mapped sectors on
/// the device hold exactly the file's bytes.
#[test]
fn file_storage_maps_exactly_the_files_blocks() {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("diff.img");
    let scanner = Scanner::system();
    let prepared = match prepare(&DiffStorage::file(&path, 3 * MIB + 1), &scanner, &[], 0) {
        Ok(p) => p,
        Err(e) if !is_root() || e.code() == "storage_unsuitable" => {
            eprintln!("skipped: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        prepared.pool.total_sectors(),
        4 * MIB / 512,
        "rounded up to whole MiB"
    );
    assert!(
        fs::OpenOptions::new().write(true).open(&path).is_err(),
        "the file is immutable while held"
    );
    let dev_path = scanner
        .by_dev(prepared.dev)
        .unwrap()
        .expect("the holding device is listed")
        .path;
    let mut pool = prepared.pool.clone();
    let ranges = pool.take(u64::MAX);
    drop(prepared);

    // Released: writable again. Fill it with a pattern and read it back from the device.
    let pattern: Vec<u8> = (0..4 * MIB).map(|i| (i / 512 % 251) as u8).collect();
    {
        use std::os::unix::fs::FileExt;
        // In place (no truncation), so the blocks stay where they were mapped.
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&pattern, 0).unwrap();
        f.sync_all().unwrap();
    }
    let mut dev = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECT)
        .open(&dev_path)
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "mapping not compared: cannot open {}: {e}",
                dev_path.display()
            );
            return;
        }
    };
    let mut seen = Vec::new();
    for r in ranges {
        use std::io::{Seek, SeekFrom};
        dev.seek(SeekFrom::Start(r.start.0 * 512)).unwrap();
        // O_DIRECT wants an aligned buffer: read through a page-aligned Vec slice.
        let mut buf = AlignedBuf::new((r.count * 512) as usize);
        dev.read_exact(buf.as_mut()).unwrap();
        seen.extend_from_slice(buf.as_mut());
    }
    assert!(
        seen == pattern,
        "the mapped sectors do not hold the file's bytes"
    );
}

/// A heap buffer aligned to 4096 bytes, for O_DIRECT reads.
struct AlignedBuf {
    raw: Vec<u8>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> Self {
        let raw = vec![0u8; len + 4096];
        let off = raw.as_ptr().align_offset(4096);
        AlignedBuf { raw, off, len }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.off..self.off + self.len]
    }
}

/// On the build machine: a storage file on the filesystem of a device being snapshotted is
/// refused before anything is created.
#[test]
fn a_file_on_a_snapshotted_filesystem_is_refused() {
    use std::os::unix::fs::MetadataExt;

    let dir = tempfile::tempdir().unwrap();
    let scanner = Scanner::system();
    let dev = DevId::from_dev_t(fs::metadata(dir.path()).unwrap().dev());
    let Ok(Some(device)) = scanner.by_dev(dev) else {
        eprintln!("skipped: the temporary directory is not on a listed device");
        return;
    };
    let path = dir.path().join("diff.img");
    let err = prepare(&DiffStorage::file(&path, MIB), &scanner, &[device], 0)
        .err()
        .unwrap();
    if err.code() == "storage_unsuitable" {
        eprintln!("skipped: {err}");
        return;
    }
    assert_eq!(err.code(), "storage_is_snapshotted", "{err}");
    assert!(!path.exists());
}

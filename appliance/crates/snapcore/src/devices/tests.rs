//! Scanning a fake sysfs tree built in a temporary directory.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::probe::samples;
use super::*;

pub(crate) struct FakeDisk<'a> {
    pub name: &'a str,
    /// Resolved location under `sys/devices/`.
    pub devpath: &'a str,
    pub dev: &'a str,
    pub sectors: u64,
    pub attrs: &'a [(&'a str, &'a [u8])],
}

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

/// Adds a disk to the fake tree: its directory under `sys/devices`, the `sys/block` link,
/// `sys/dev/block/MAJ:MIN`, and the given attributes (paths relative to the disk dir).
pub(crate) fn add_disk(root: &Path, d: &FakeDisk) {
    let dir = root.join("sys/devices").join(d.devpath).join(d.name);
    fs::create_dir_all(dir.join("holders")).unwrap();
    write(&dir.join("dev"), format!("{}\n", d.dev).as_bytes());
    write(&dir.join("size"), format!("{}\n", d.sectors).as_bytes());
    write(&dir.join("ro"), b"0\n");
    write(&dir.join("removable"), b"0\n");
    for (name, value) in d.attrs {
        write(&dir.join(name), value);
    }
    fs::create_dir_all(root.join("sys/block")).unwrap();
    symlink(&dir, root.join("sys/block").join(d.name)).unwrap();
    fs::create_dir_all(root.join("sys/dev/block")).unwrap();
    symlink(&dir, root.join("sys/dev/block").join(d.dev)).unwrap();
}

pub(crate) fn add_partition(
    root: &Path,
    disk: &str,
    name: &str,
    number: u32,
    dev: &str,
    sectors: u64,
) {
    let dir = root.join("sys/block").join(disk).join(name);
    fs::create_dir_all(dir.join("holders")).unwrap();
    write(&dir.join("dev"), format!("{dev}\n").as_bytes());
    write(&dir.join("size"), format!("{sectors}\n").as_bytes());
    write(&dir.join("partition"), format!("{number}\n").as_bytes());
    write(&dir.join("start"), b"2048\n");
    write(&dir.join("ro"), b"0\n");
    symlink(&dir, root.join("sys/dev/block").join(dev)).unwrap();
}

pub(crate) fn add_node(root: &Path, name: &str, data: &[u8]) {
    write(&root.join("dev").join(name), data);
}

fn vpd80(serial: &str) -> Vec<u8> {
    let mut v = vec![0x00, 0x80, 0x00, serial.len() as u8];
    v.extend_from_slice(serial.as_bytes());
    v
}

fn tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let vpd = vpd80("scsi0   ");
    let disks = [
        FakeDisk {
            name: "vda",
            devpath: "pci0000:00/0000:00:02.0/virtio1/block",
            dev: "254:0",
            sectors: 131072,
            attrs: &[
                ("serial", b"prod0\n"),
                ("queue/logical_block_size", b"512\n"),
                ("device/vendor", b"0x1af4\n"),
            ],
        },
        FakeDisk {
            name: "sda",
            devpath: "pci0000:00/0000:00:05.0/virtio3/host0/target0:0:1/0:0:1:0/block",
            dev: "8:0",
            sectors: 65536,
            attrs: &[
                ("device/model", b"QEMU HARDDISK   \n"),
                ("device/vendor", b"QEMU    \n"),
                ("device/vpd_pg80", &vpd),
                ("queue/logical_block_size", b"4096\n"),
            ],
        },
        FakeDisk {
            name: "nvme0n1",
            devpath: "pci0000:00/0000:00:06.0/nvme/nvme0",
            dev: "259:0",
            sectors: 32768,
            attrs: &[
                ("wwid", b"eui.0011223344556677\n"),
                ("device/model", b"QEMU NVMe Ctrl\n"),
            ],
        },
        FakeDisk {
            name: "vdc",
            devpath: "pci0000:00/0000:00:07.0/virtio4/block",
            dev: "254:32",
            sectors: 2048,
            attrs: &[],
        },
        FakeDisk {
            name: "dm-0",
            devpath: "virtual/block",
            dev: "253:0",
            sectors: 4096,
            attrs: &[],
        },
        FakeDisk {
            name: "loop0",
            devpath: "virtual/block",
            dev: "7:0",
            sectors: 4096,
            attrs: &[],
        },
        FakeDisk {
            name: "zram0",
            devpath: "virtual/block",
            dev: "252:0",
            sectors: 4096,
            attrs: &[],
        },
        FakeDisk {
            name: "blksnap-image0",
            devpath: "virtual/block",
            dev: "251:0",
            sectors: 131072,
            attrs: &[],
        },
        FakeDisk {
            name: "sr0",
            devpath: "pci0000:00/0000:00:1f.2/ata1/host1/target1:0:0/1:0:0:0/block",
            dev: "11:0",
            sectors: 0,
            attrs: &[],
        },
    ];
    for d in &disks {
        add_disk(root, d);
    }
    add_partition(root, "vda", "vda2", 2, "254:2", 65536);
    add_partition(root, "vda", "vda1", 1, "254:1", 61440);
    fs::create_dir_all(root.join("sys/block/vda/vda2/holders/dm-0")).unwrap();

    add_node(root, "vda", &samples::gpt());
    add_node(root, "vda1", &samples::ext4("root"));
    let mut lvm = samples::blank();
    samples::put(&mut lvm, 512, b"LABELONE");
    samples::put(&mut lvm, 512 + 24, b"LVM2 001");
    add_node(root, "vda2", &lvm);
    add_node(root, "sda", &samples::blank());
    let mut xfs = samples::blank();
    samples::put(&mut xfs, 0, b"XFSB");
    add_node(root, "nvme0n1", &xfs);
    add_node(root, "dm-0", &samples::ext4("data"));
    // vdc has no node: its probe fails and says so.
    fs::write(
        root.join("mountinfo"),
        "27 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n\
         30 27 253:0 / /srv rw - ext4 /dev/mapper/vg-data rw\n",
    )
    .unwrap();
    tmp
}

fn by_name<'a>(devs: &'a [Device], name: &str) -> &'a Device {
    devs.iter().find(|d| d.name == name).unwrap()
}

#[test]
fn lists_disks_then_partitions_without_excluded_devices() {
    let tmp = tree();
    let devs = Scanner::rooted(tmp.path()).scan().unwrap();
    let names: Vec<&str> = devs.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        ["dm-0", "nvme0n1", "sda", "vda", "vda1", "vda2", "vdc"]
    );
}

#[test]
fn identity_size_and_content() {
    let tmp = tree();
    let devs = Scanner::rooted(tmp.path()).scan().unwrap();

    let vda = by_name(&devs, "vda");
    assert_eq!(vda.id, "serial:prod0");
    assert_eq!(vda.serial.as_deref(), Some("prod0"));
    assert_eq!(vda.dev, DevId::new(254, 0));
    assert_eq!(vda.size_bytes, 64 << 20);
    assert_eq!(vda.kind, DeviceKind::Disk);
    assert_eq!(vda.vendor, None, "a PCI vendor id is not a vendor name");
    assert_eq!(vda.bus_path.as_deref(), Some("pci-0000:00:02.0"));
    assert_eq!(vda.content.partition_table, Some(PartTable::Gpt));
    assert_eq!(vda.partitions, ["vda1", "vda2"]);
    assert_eq!(vda.path, tmp.path().join("dev/vda"));

    let vda1 = by_name(&devs, "vda1");
    assert_eq!(vda1.id, "serial:prod0-part1");
    assert_eq!(vda1.kind, DeviceKind::Partition);
    assert_eq!(vda1.parent.as_deref(), Some("vda"));
    assert_eq!(vda1.partition, Some(1));
    assert_eq!(vda1.size_bytes, 61440 * 512);
    assert_eq!(vda1.content.fs_type, Some(FsType::Ext4));
    assert_eq!(vda1.content.label.as_deref(), Some("root"));
    assert_eq!(vda1.mount_points, [PathBuf::from("/")]);
    assert_eq!(vda1.usage().as_deref(), Some("mounted at /"));

    let vda2 = by_name(&devs, "vda2");
    assert_eq!(vda2.content.fs_type, Some(FsType::Lvm2Member));
    assert_eq!(vda2.holders, ["dm-0"]);
    assert_eq!(vda2.usage().as_deref(), Some("held by dm-0"));
    assert!(
        vda.usage().is_none(),
        "the disk itself is neither mounted nor held"
    );

    let sda = by_name(&devs, "sda");
    assert_eq!(sda.id, "serial:scsi0");
    assert_eq!(sda.model.as_deref(), Some("QEMU HARDDISK"));
    assert_eq!(sda.vendor.as_deref(), Some("QEMU"));
    assert_eq!(sda.logical_sector_size, 4096);
    assert_eq!(
        sda.bus_path.as_deref(),
        Some("pci-0000:00:05.0-scsi-0:0:1:0")
    );
    assert!(sda.content.is_empty());

    let nvme = by_name(&devs, "nvme0n1");
    assert_eq!(nvme.id, "wwn:eui.0011223344556677");
    assert_eq!(nvme.content.fs_type, Some(FsType::Xfs));
    assert_eq!(nvme.bus_path.as_deref(), Some("pci-0000:00:06.0-nvme-1"));

    let vdc = by_name(&devs, "vdc");
    assert_eq!(vdc.id, "path:pci-0000:00:07.0");
    assert!(vdc.probe_error.as_deref().unwrap().contains("cannot read"));

    let dm = by_name(&devs, "dm-0");
    assert_eq!(dm.id, "name:dm-0");
    assert_eq!(dm.mount_points, [PathBuf::from("/srv")]);

    // JSON for the API: the device number as text.
    let json = serde_json::to_value(vda1).unwrap();
    assert_eq!(json["dev"], "254:1");
    assert_eq!(json["kind"], "partition");
    assert_eq!(json["content"]["fs_type"], "ext4");
    let back: Device = serde_json::from_value(json).unwrap();
    assert_eq!(&back, vda1);
}

#[test]
fn lookup_by_id_serial_name_and_path() {
    let tmp = tree();
    let devs = Scanner::rooted(tmp.path()).scan().unwrap();
    for q in ["serial:prod0", "prod0", "vda", "/dev/vda", " vda "] {
        assert_eq!(find(&devs, q).unwrap().name, "vda", "{q}");
    }
    assert_eq!(find(&devs, "serial:prod0-part2").unwrap().name, "vda2");
    assert_eq!(find(&devs, "eui.0011223344556677").unwrap().name, "nvme0n1");
    assert_eq!(find(&devs, "scsi0").unwrap().name, "sda");

    let err = find(&devs, "nope").unwrap_err();
    assert_eq!(err.code(), "unknown_device");
    let msg = err.to_string();
    assert!(
        msg.starts_with("no device matches \"nope\" (known: name:dm-0, "),
        "{msg}"
    );
    assert!(msg.contains("serial:prod0-part1"), "{msg}");
    assert!(matches!(
        find(&devs, "blksnap-image0"),
        Err(DeviceError::Unknown { .. })
    ));
}

#[test]
fn duplicate_serials_are_ambiguous() {
    let tmp = tree();
    add_disk(
        tmp.path(),
        &FakeDisk {
            name: "vdd",
            devpath: "pci0000:00/0000:00:08.0/virtio5/block",
            dev: "254:48",
            sectors: 2048,
            attrs: &[("serial", b"prod0\n")],
        },
    );
    let devs = Scanner::rooted(tmp.path()).scan().unwrap();
    let err = find(&devs, "prod0").unwrap_err();
    assert_eq!(err.code(), "ambiguous_device");
    assert!(err
        .to_string()
        .contains("vda (serial:prod0), vdd (serial:prod0)"));
}

#[test]
fn overlap_of_disks_and_partitions() {
    let tmp = tree();
    let devs = Scanner::rooted(tmp.path()).scan().unwrap();
    let (vda, vda1, vda2, sda) = (
        by_name(&devs, "vda"),
        by_name(&devs, "vda1"),
        by_name(&devs, "vda2"),
        by_name(&devs, "sda"),
    );
    assert!(vda.overlaps(vda1) && vda1.overlaps(vda) && vda.overlaps(vda));
    assert!(!vda1.overlaps(vda2) && !sda.overlaps(vda));
}

#[test]
fn missing_sysfs_is_a_clear_error() {
    let err = Scanner::rooted(Path::new("/nonexistent-root"))
        .scan()
        .unwrap_err();
    assert_eq!(err.code(), "device_scan_failed");
    assert!(err.to_string().contains("/nonexistent-root/sys/block"));
}

#[test]
fn block_device_numbers_known_to_sysfs() {
    let tmp = tree();
    let s = Scanner::rooted(tmp.path());
    assert!(s.is_block_device(DevId::new(254, 1)));
    assert!(!s.is_block_device(DevId::new(0, 45)));
    assert_eq!(s.by_dev(DevId::new(8, 0)).unwrap().unwrap().name, "sda");
}

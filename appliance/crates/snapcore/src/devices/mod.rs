//! Disks and partitions from sysfs: identity, size, content, and whether they are in use.
//!
//! A [`Scanner`] reads three places, each a parameter so tests can point it at a fake tree:
//!
//! | place                    | default                | what is read                              |
//! |--------------------------|------------------------|-------------------------------------------|
//! | sysfs root               | `/sys`                 | `block/<disk>/{dev,size,ro,removable,serial,wwid,hidden,queue/logical_block_size,holders/}`, `block/<disk>/<part>/{dev,size,partition,ro,holders/}`, `block/<disk>/device/{model,vendor,serial,wwid,vpd_pg80}` |
//! | device directory         | `/dev`                 | the first [`probe::PROBE_LEN`] bytes of `<name>` |
//! | mount table              | `/proc/self/mountinfo` | mounted devices                           |
//!
//! Loop, RAM, zram and blksnap image devices, hidden NVMe paths and devices of size 0
//! (empty drives, unconnected NBD) are not listed.
//!
//! Each device gets a stable [`Device::id`] for the UI and API: `serial:<serial>` when the
//! disk has a serial, else `wwn:<wwn>`, else `path:<bus path>`, else `name:<kernel name>`;
//! a partition's id is its disk's id with `-part<N>`. [`find`] accepts an id, a serial, a
//! WWN, a kernel name or a `/dev/` path.

pub mod mountinfo;
pub mod probe;
mod sysfs;

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use blksnap::DevId;
use serde::{Deserialize, Serialize};

use crate::error::DeviceError;
use crate::formats::SECTOR;
use mountinfo::Mount;
pub use probe::{Content, FsType, PartTable};

/// Kernel name prefixes that are never listed.
const EXCLUDED_PREFIXES: &[&str] = &["loop", "ram", "zram", blksnap::uapi::BLK_SNAP_IMAGE_NAME];

/// Whole disk or partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Disk,
    Partition,
}

/// One block device as the appliance shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Stable id for the UI and API (see the module docs).
    pub id: String,
    /// Kernel name (`vda`, `vda1`, `sdb`, `nvme0n1p2`).
    pub name: String,
    /// Device node (`/dev/<name>` under the scanner's device directory).
    pub path: PathBuf,
    /// `MAJOR:MINOR`.
    #[serde(with = "dev_id_text")]
    pub dev: DevId,
    pub kind: DeviceKind,
    /// Kernel name of the disk a partition belongs to.
    pub parent: Option<String>,
    /// Partition number.
    pub partition: Option<u32>,
    /// Kernel names of a disk's partitions.
    pub partitions: Vec<String>,
    pub size_bytes: u64,
    pub logical_sector_size: u32,
    pub model: Option<String>,
    pub vendor: Option<String>,
    /// Serial number (QEMU `serial=`); a partition shows its disk's.
    pub serial: Option<String>,
    pub wwn: Option<String>,
    /// udev-style bus path (`pci-0000:00:04.0`).
    pub bus_path: Option<String>,
    /// Filesystem or other signature, and partition table.
    pub content: Content,
    /// Why the content could not be read, if it could not.
    pub probe_error: Option<String>,
    /// Where it is mounted.
    pub mount_points: Vec<PathBuf>,
    /// Devices stacked on it (dm, md).
    pub holders: Vec<String>,
    /// Devices it is stacked on (for dm and md devices).
    pub slaves: Vec<String>,
    pub read_only: bool,
    pub removable: bool,
}

impl Device {
    /// Why the device is in use (mounted, held, or a partition of it is), or `None`.
    pub fn usage(&self) -> Option<String> {
        let mut why = Vec::new();
        if !self.mount_points.is_empty() {
            let mps: Vec<String> = self
                .mount_points
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            why.push(format!("mounted at {}", mps.join(", ")));
        }
        if !self.holders.is_empty() {
            why.push(format!("held by {}", self.holders.join(", ")));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// Every reason the device, or (for a disk) one of its partitions in `all`, is in use:
    /// `mounted at /x`, `partition vda1 held by dm-0`.
    pub fn usage_in(&self, all: &[Device]) -> Vec<String> {
        let mut why: Vec<String> = self.usage().into_iter().collect();
        if self.kind == DeviceKind::Disk {
            for p in all
                .iter()
                .filter(|p| p.parent.as_deref() == Some(self.name.as_str()))
            {
                if let Some(u) = p.usage() {
                    why.push(format!("partition {} {u}", p.name));
                }
            }
        }
        why
    }

    /// What the device holds (a filesystem or other signature, a partition table,
    /// partitions), or `None` when it looks blank.
    pub fn data(&self) -> Option<String> {
        let mut content = self.content.clone();
        if content.partition_table.is_none() && !self.partitions.is_empty() {
            content.partition_table = Some(PartTable::Mbr);
        }
        if content.is_empty() {
            return None;
        }
        let what = content.describe();
        Some(if self.partitions.is_empty() {
            what
        } else {
            format!("{what} (partitions {})", self.partitions.join(", "))
        })
    }

    /// Whether `self` and `other` share sectors: the same device, or a disk and one of its
    /// partitions.
    pub fn overlaps(&self, other: &Device) -> bool {
        self.dev == other.dev
            || self.parent.as_deref() == Some(other.name.as_str())
            || other.parent.as_deref() == Some(self.name.as_str())
    }

    /// A short description for messages: `vdb (serial:scratch0)`.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.id)
    }
}

mod dev_id_text {
    use blksnap::DevId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &DevId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(d)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DevId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a [`Scanner`] looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanner {
    pub sysfs: PathBuf,
    pub dev_dir: PathBuf,
    pub mountinfo: PathBuf,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::system()
    }
}

impl Scanner {
    /// `/sys`, `/dev`, `/proc/self/mountinfo`.
    pub fn system() -> Self {
        Scanner {
            sysfs: PathBuf::from("/sys"),
            dev_dir: PathBuf::from("/dev"),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
        }
    }

    /// A scanner for a fake tree: `<root>/sys`, `<root>/dev`, `<root>/mountinfo`.
    pub fn rooted(root: &Path) -> Self {
        Scanner {
            sysfs: root.join("sys"),
            dev_dir: root.join("dev"),
            mountinfo: root.join("mountinfo"),
        }
    }

    /// The mount table (empty when unreadable).
    pub fn mounts(&self) -> Vec<Mount> {
        fs::read_to_string(&self.mountinfo)
            .map(|t| mountinfo::parse(&t))
            .unwrap_or_default()
    }

    /// The topmost mount on `path`, if something is mounted there.
    pub fn mount_at(&self, path: &Path) -> Option<Mount> {
        self.mounts()
            .into_iter()
            .rev()
            .find(|m| m.mount_point == path)
    }

    /// Every listed disk, each followed by its partitions, disks sorted by name.
    pub fn scan(&self) -> Result<Vec<Device>, DeviceError> {
        let block = self.sysfs.join("block");
        let rd = fs::read_dir(&block).map_err(|source| DeviceError::Scan {
            path: block.clone(),
            source,
        })?;
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !EXCLUDED_PREFIXES.iter().any(|p| n.starts_with(p)))
            .collect();
        names.sort();
        let mounts = self.mounts();
        let mut out = Vec::new();
        for name in names {
            if let Some(disk) = self.disk(&block.join(&name), &name, &mounts) {
                let parts = self.partitions(&disk, &mounts);
                let mut disk = disk;
                disk.partitions = parts.iter().map(|p| p.name.clone()).collect();
                out.push(disk);
                out.extend(parts);
            }
        }
        Ok(out)
    }

    /// Scans and looks `query` up (see [`find`]).
    pub fn find(&self, query: &str) -> Result<Device, DeviceError> {
        find(&self.scan()?, query).cloned()
    }

    /// The listed device with this major:minor, if any.
    pub fn by_dev(&self, dev: DevId) -> Result<Option<Device>, DeviceError> {
        Ok(self.scan()?.into_iter().find(|d| d.dev == dev))
    }

    /// Whether sysfs knows a block device with this number (`dev/block/MAJ:MIN`).
    pub fn is_block_device(&self, dev: DevId) -> bool {
        self.sysfs
            .join("dev")
            .join("block")
            .join(dev.to_string())
            .exists()
    }

    fn disk(&self, dir: &Path, name: &str, mounts: &[Mount]) -> Option<Device> {
        let dev: DevId = sysfs::attr(dir, "dev")?.parse().ok()?;
        let size_bytes = sysfs::attr_u64(dir, "size")?.saturating_mul(SECTOR);
        if size_bytes == 0 || sysfs::attr(dir, "hidden").as_deref() == Some("1") {
            return None;
        }
        let logical_sector_size = sysfs::attr_u64(&dir.join("queue"), "logical_block_size")
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(512);
        let serial = sysfs::serial(dir);
        let wwn = sysfs::wwn(dir);
        let (model, vendor) = sysfs::model_vendor(dir);
        let resolved = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let bus_path = sysfs::bus_path(&resolved, name);
        let id = sysfs::stable_id(serial.as_deref(), wwn.as_deref(), bus_path.as_deref(), name);
        let path = self.dev_dir.join(name);
        let (content, probe_error) = self.probe(&path, logical_sector_size);
        Some(Device {
            id,
            name: name.to_owned(),
            mount_points: mount_points(mounts, dev, name),
            holders: sysfs::links(dir, "holders"),
            slaves: sysfs::links(dir, "slaves"),
            path,
            dev,
            kind: DeviceKind::Disk,
            parent: None,
            partition: None,
            partitions: Vec::new(),
            size_bytes,
            logical_sector_size,
            model,
            vendor,
            serial,
            wwn,
            bus_path,
            content,
            probe_error,
            read_only: sysfs::attr(dir, "ro").as_deref() == Some("1"),
            removable: sysfs::attr(dir, "removable").as_deref() == Some("1"),
        })
    }

    fn partitions(&self, disk: &Device, mounts: &[Mount]) -> Vec<Device> {
        let dir = self.sysfs.join("block").join(&disk.name);
        let Ok(rd) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut parts: Vec<Device> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("partition").exists())
            .filter_map(|e| {
                let pdir = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                let number = u32::try_from(sysfs::attr_u64(&pdir, "partition")?).ok()?;
                let dev: DevId = sysfs::attr(&pdir, "dev")?.parse().ok()?;
                let size_bytes = sysfs::attr_u64(&pdir, "size")?.saturating_mul(SECTOR);
                let path = self.dev_dir.join(&name);
                let (content, probe_error) = self.probe(&path, disk.logical_sector_size);
                Some(Device {
                    id: format!("{}-part{number}", disk.id),
                    mount_points: mount_points(mounts, dev, &name),
                    holders: sysfs::links(&pdir, "holders"),
                    slaves: Vec::new(),
                    name,
                    path,
                    dev,
                    kind: DeviceKind::Partition,
                    parent: Some(disk.name.clone()),
                    partition: Some(number),
                    partitions: Vec::new(),
                    size_bytes,
                    logical_sector_size: disk.logical_sector_size,
                    model: disk.model.clone(),
                    vendor: disk.vendor.clone(),
                    serial: disk.serial.clone(),
                    wwn: None,
                    bus_path: disk.bus_path.clone(),
                    content,
                    probe_error,
                    read_only: disk.read_only || sysfs::attr(&pdir, "ro").as_deref() == Some("1"),
                    removable: disk.removable,
                })
            })
            .collect();
        parts.sort_by_key(|p| p.partition);
        parts
    }

    fn probe(&self, path: &Path, sector: u32) -> (Content, Option<String>) {
        let mut buf = Vec::with_capacity(probe::PROBE_LEN);
        let read = File::open(path).and_then(|f| {
            f.take(probe::PROBE_LEN as u64).read_to_end(&mut buf)?;
            Ok(())
        });
        match read {
            Ok(()) => (probe::probe(&buf, sector), None),
            Err(e) => (
                Content::default(),
                Some(format!("cannot read {}: {e}", path.display())),
            ),
        }
    }
}

fn mount_points(mounts: &[Mount], dev: DevId, name: &str) -> Vec<PathBuf> {
    let source = format!("/dev/{name}");
    let mut out: Vec<PathBuf> = mounts
        .iter()
        .filter(|m| m.dev == dev || m.source == source)
        .map(|m| m.mount_point.clone())
        .collect();
    out.dedup();
    out
}

/// Looks a device up by stable id, serial, WWN, kernel name or `/dev/<name>` path.
/// A serial names its disk, not the disk's partitions.
pub fn find<'a>(devices: &'a [Device], query: &str) -> Result<&'a Device, DeviceError> {
    let q = query.trim();
    let name = q.strip_prefix("/dev/").unwrap_or(q);
    let hits: Vec<&Device> = devices
        .iter()
        .filter(|d| {
            d.id == q
                || d.name == name
                || (d.kind == DeviceKind::Disk
                    && (d.serial.as_deref() == Some(q) || d.wwn.as_deref() == Some(q)))
        })
        .collect();
    match hits.as_slice() {
        [one] => Ok(one),
        [] => Err(DeviceError::Unknown {
            query: q.to_owned(),
            known: if devices.is_empty() {
                "none".to_owned()
            } else {
                devices
                    .iter()
                    .map(|d| d.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        }),
        many => Err(DeviceError::Ambiguous {
            query: q.to_owned(),
            matches: many
                .iter()
                .map(|d| d.label())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests;

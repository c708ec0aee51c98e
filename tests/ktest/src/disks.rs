//! The guest's test disks (virtio-blk, found by serial) and the block-device
//! ioctls the scenarios use.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use blksnap::DevId;

/// One block device: a whole disk or a partition.
#[derive(Debug, Clone)]
pub struct Disk {
    /// Kernel name (`vdb`, `vdb1`).
    pub name: String,
    /// `/dev/<name>`.
    pub path: PathBuf,
    pub dev: DevId,
    /// Capacity in bytes.
    pub size: u64,
}

fn read_trimmed(path: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("read {}", path.display()))?
        .trim()
        .to_owned())
}

impl Disk {
    /// The device described by a sysfs directory (`/sys/block/vdb` or
    /// `/sys/block/vdb/vdb1`).
    pub fn from_sysfs(dir: &Path) -> Result<Self> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .context("sysfs dir name")?
            .to_owned();
        let dev: DevId = read_trimmed(&dir.join("dev"))?
            .parse()
            .with_context(|| format!("{}/dev", dir.display()))?;
        let sectors: u64 = read_trimmed(&dir.join("size"))?.parse()?;
        Ok(Self {
            path: PathBuf::from("/dev").join(&name),
            name,
            dev,
            size: sectors * 512,
        })
    }

    /// Partition `n` of this disk (`vdb1`), as the kernel currently sees it.
    pub fn partition(&self, n: u32) -> Result<Disk> {
        let dir = Path::new("/sys/block")
            .join(&self.name)
            .join(format!("{}{n}", self.name));
        Disk::from_sysfs(&dir).with_context(|| format!("partition {n} of {}", self.name))
    }

    /// Reads `/sys/block/<name>/queue/<attr>` (whole disks only).
    pub fn queue_attr(&self, attr: &str) -> Result<String> {
        read_trimmed(
            &Path::new("/sys/block")
                .join(&self.name)
                .join("queue")
                .join(attr),
        )
    }
}

/// The disks of the VM keyed by serial.
pub fn by_serial() -> Result<BTreeMap<String, Disk>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir("/sys/block").context("read /sys/block")? {
        let dir = entry?.path();
        let serial = match std::fs::read_to_string(dir.join("serial")) {
            Ok(s) => s.trim().to_owned(),
            Err(_) => continue,
        };
        if serial.is_empty() {
            continue;
        }
        out.insert(serial, Disk::from_sysfs(&dir)?);
    }
    Ok(out)
}

/// Waits until disks with every serial in `wanted` are present.
pub fn wait_for(wanted: &[&str], timeout: Duration) -> Result<BTreeMap<String, Disk>> {
    let start = Instant::now();
    loop {
        let found = by_serial()?;
        if wanted.iter().all(|s| found.contains_key(*s)) {
            return Ok(found);
        }
        if start.elapsed() > timeout {
            let missing: Vec<_> = wanted.iter().filter(|s| !found.contains_key(**s)).collect();
            bail!(
                "disks with serials {missing:?} did not appear (found {:?})",
                found.keys().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

mod ioctl {
    use nix::{ioctl_none, ioctl_read, ioctl_write_ptr_bad, request_code_none};

    ioctl_none!(blkrrpart, 0x12, 95);
    ioctl_read!(blkgetsize64, 0x12, 114, u64);
    ioctl_write_ptr_bad!(blkdiscard, request_code_none!(0x12, 119), [u64; 2]);
    ioctl_write_ptr_bad!(blkzeroout, request_code_none!(0x12, 127), [u64; 2]);
}

/// BLKRRPART: re-read the partition table.
pub fn reread_partitions(file: &File) -> nix::Result<()> {
    // SAFETY: the request takes no argument; the descriptor is open.
    unsafe { ioctl::blkrrpart(file.as_raw_fd()) }.map(drop)
}

/// BLKGETSIZE64: capacity in bytes.
pub fn size_of(file: &File) -> nix::Result<u64> {
    let mut size = 0u64;
    // SAFETY: `size` is a live u64 the kernel fills.
    unsafe { ioctl::blkgetsize64(file.as_raw_fd(), &mut size) }?;
    Ok(size)
}

/// BLKDISCARD of `len` bytes from `offset`.
pub fn discard(file: &File, offset: u64, len: u64) -> nix::Result<()> {
    let range = [offset, len];
    // SAFETY: `range` is a live [u64; 2] the kernel only reads.
    unsafe { ioctl::blkdiscard(file.as_raw_fd(), &range) }.map(drop)
}

/// BLKZEROOUT of `len` bytes from `offset`.
pub fn zero_out(file: &File, offset: u64, len: u64) -> nix::Result<()> {
    let range = [offset, len];
    // SAFETY: `range` is a live [u64; 2] the kernel only reads.
    unsafe { ioctl::blkzeroout(file.as_raw_fd(), &range) }.map(drop)
}

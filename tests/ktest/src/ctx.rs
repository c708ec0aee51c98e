//! What every scenario gets: the disks, the module's load parameters, and
//! helpers to (re)load the module and hold snapshots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use blksnap::{Blksnap, DevId, ImageInfo, SectorRange, SnapshotId};

use crate::disks::Disk;
use crate::note;

pub struct Ctx {
    pub disks: BTreeMap<String, Disk>,
    /// `/lib/modules/<release>`.
    pub modules_dir: PathBuf,
    /// Parameters blksnap is loaded with (`key=value key=value`).
    pub modparams: String,
    /// Rounds of the consistency scenario.
    pub rounds: usize,
}

impl Ctx {
    pub fn disk(&self, serial: &str) -> Result<&Disk> {
        self.disks
            .get(serial)
            .with_context(|| format!("no disk with serial {serial}"))
    }

    pub fn ctl(&self) -> Result<Blksnap> {
        Ok(Blksnap::open()?)
    }

    pub fn blksnap_ko(&self) -> PathBuf {
        self.modules_dir.join("extra/blksnap.ko")
    }

    /// insmod blksnap.ko with the boot's parameters and wait for
    /// /dev/blksnap.
    pub fn load_blksnap(&self) -> Result<()> {
        sysboot::modules::load_file(&self.blksnap_ko(), &self.modparams).with_context(|| {
            format!("insmod {} {}", self.blksnap_ko().display(), self.modparams)
        })?;
        wait_path(Path::new(blksnap::DEFAULT_PATH), Duration::from_secs(10))
    }

    /// rmmod blksnap.
    pub fn unload_blksnap(&self) -> Result<()> {
        sysboot::modules::unload("blksnap").context("rmmod blksnap")?;
        Ok(())
    }
}

/// Waits for a path (a device node from devtmpfs) to appear.
pub fn wait_path(path: &Path, timeout: Duration) -> Result<()> {
    if !sysboot::testguest::wait_for_path(path, timeout) {
        bail!("{} did not appear within {timeout:?}", path.display());
    }
    Ok(())
}

/// Whether /proc/modules lists blksnap.
pub fn blksnap_in_proc_modules() -> Result<bool> {
    let text = std::fs::read_to_string("/proc/modules").context("read /proc/modules")?;
    Ok(text
        .lines()
        .any(|l| l.split_whitespace().next() == Some("blksnap")))
}

/// A snapshot that is destroyed when dropped (so a failing scenario leaves
/// nothing behind).
pub struct Snap<'a> {
    pub ctl: &'a Blksnap,
    pub id: SnapshotId,
    live: bool,
}

impl<'a> Snap<'a> {
    /// SNAPSHOT_CREATE of `devs`.
    pub fn create(ctl: &'a Blksnap, devs: &[DevId]) -> Result<Self> {
        let id = ctl.snapshot_create(devs)?;
        Ok(Self {
            ctl,
            id,
            live: true,
        })
    }

    /// Create, append `ranges` of `store`, take.
    pub fn take_new(
        ctl: &'a Blksnap,
        devs: &[DevId],
        store: &Disk,
        ranges: &[SectorRange],
    ) -> Result<Self> {
        let snap = Self::create(ctl, devs)?;
        snap.append(store, ranges)?;
        snap.take()?;
        Ok(snap)
    }

    pub fn append(&self, store: &Disk, ranges: &[SectorRange]) -> Result<()> {
        self.ctl
            .append_storage(self.id, store.dev, ranges)
            .with_context(|| format!("append {} ranges of {}", ranges.len(), store.name))
    }

    pub fn take(&self) -> Result<()> {
        Ok(self.ctl.take(self.id)?)
    }

    pub fn images(&self) -> Result<Vec<ImageInfo>> {
        Ok(self.ctl.collect_images(self.id)?)
    }

    /// The image device node of original `dev`, once it exists.
    pub fn image_of(&self, dev: DevId) -> Result<PathBuf> {
        let info = self
            .images()?
            .into_iter()
            .find(|i| i.orig == dev)
            .with_context(|| format!("snapshot {} has no image of {dev}", self.id))?;
        let path = info.image_path();
        wait_path(&path, Duration::from_secs(10))?;
        Ok(path)
    }

    /// SNAPSHOT_DESTROY now, reporting its result.
    pub fn destroy(mut self) -> Result<()> {
        self.live = false;
        Ok(self.ctl.snapshot_destroy(self.id)?)
    }
}

impl Drop for Snap<'_> {
    fn drop(&mut self) {
        if self.live {
            if let Err(e) = self.ctl.snapshot_destroy(self.id) {
                note!("cleanup: destroy {} failed: {e}", self.id);
            }
        }
    }
}

/// The whole of `disk` as one range, or split into `n` ranges given in an
/// order that is not ascending (the storage must not care).
pub fn storage_ranges(disk: &Disk, n: u64) -> Vec<SectorRange> {
    let sectors = disk.size / 512;
    let n = n.max(1);
    let step = sectors / n;
    let mut ranges: Vec<SectorRange> = (0..n)
        .map(|i| {
            let start = i * step;
            let count = if i + 1 == n { sectors - start } else { step };
            SectorRange::new(start, count)
        })
        .collect();
    ranges.reverse();
    if ranges.len() > 2 {
        ranges.swap(0, 1);
    }
    ranges
}

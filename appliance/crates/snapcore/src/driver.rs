//! The kernel side as sessions and jobs see it: the [`SnapshotDriver`] trait (implemented
//! by [`blksnap::Blksnap`], and by fakes in tests) and [`Kernel`], which opens the control
//! device when first needed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blksnap::{Blksnap, CbtInfo, DevId, Event, ImageInfo, SectorRange, SnapshotId};
use nix::errno::Errno;

use crate::error::SessionError;

/// The module's requests that the core uses. Every method maps to one ioctl of
/// [`blksnap::Blksnap`]; see blksnap-uapi.md for their semantics.
pub trait SnapshotDriver: Send + Sync {
    fn snapshot_create(&self, devs: &[DevId]) -> blksnap::Result<SnapshotId>;
    fn snapshot_destroy(&self, id: SnapshotId) -> blksnap::Result<()>;
    fn append_storage(
        &self,
        id: SnapshotId,
        dev: DevId,
        ranges: &[SectorRange],
    ) -> blksnap::Result<()>;
    fn take(&self, id: SnapshotId) -> blksnap::Result<()>;
    fn collect_images(&self, id: SnapshotId) -> blksnap::Result<Vec<ImageInfo>>;
    /// The next event, or `None` after `timeout`.
    fn wait_event(&self, id: SnapshotId, timeout: Duration) -> blksnap::Result<Option<Event>>;
    fn snapshot_collect(&self) -> blksnap::Result<Vec<SnapshotId>>;
    fn tracker_collect(&self) -> blksnap::Result<Vec<CbtInfo>>;
    fn read_cbt_map(&self, dev: DevId, offset: u32, len: u32) -> blksnap::Result<Vec<u8>>;
}

impl SnapshotDriver for Blksnap {
    fn snapshot_create(&self, devs: &[DevId]) -> blksnap::Result<SnapshotId> {
        Blksnap::snapshot_create(self, devs)
    }
    fn snapshot_destroy(&self, id: SnapshotId) -> blksnap::Result<()> {
        Blksnap::snapshot_destroy(self, id)
    }
    fn append_storage(
        &self,
        id: SnapshotId,
        dev: DevId,
        ranges: &[SectorRange],
    ) -> blksnap::Result<()> {
        Blksnap::append_storage(self, id, dev, ranges)
    }
    fn take(&self, id: SnapshotId) -> blksnap::Result<()> {
        Blksnap::take(self, id)
    }
    fn collect_images(&self, id: SnapshotId) -> blksnap::Result<Vec<ImageInfo>> {
        Blksnap::collect_images(self, id)
    }
    fn wait_event(&self, id: SnapshotId, timeout: Duration) -> blksnap::Result<Option<Event>> {
        Blksnap::wait_event(self, id, timeout)
    }
    fn snapshot_collect(&self) -> blksnap::Result<Vec<SnapshotId>> {
        Blksnap::snapshot_collect(self)
    }
    fn tracker_collect(&self) -> blksnap::Result<Vec<CbtInfo>> {
        Blksnap::tracker_collect(self)
    }
    fn read_cbt_map(&self, dev: DevId, offset: u32, len: u32) -> blksnap::Result<Vec<u8>> {
        Blksnap::read_cbt_map(self, dev, offset, len)
    }
}

/// Access to the module: opens the control device on first use (so the daemon can start,
/// list devices and restore backups without the module), or wraps a given driver.
#[derive(Clone)]
pub struct Kernel {
    path: PathBuf,
    driver: Arc<Mutex<Option<Arc<dyn SnapshotDriver>>>>,
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel").field("path", &self.path).finish()
    }
}

impl Default for Kernel {
    fn default() -> Self {
        Self::system()
    }
}

impl Kernel {
    /// `/dev/blksnap`, opened when first needed.
    pub fn system() -> Self {
        Self::at(blksnap::DEFAULT_PATH)
    }

    /// The control device at `path`, opened when first needed.
    pub fn at(path: impl AsRef<Path>) -> Self {
        Kernel {
            path: path.as_ref().to_path_buf(),
            driver: Arc::new(Mutex::new(None)),
        }
    }

    /// A kernel that is this driver (tests, other front ends).
    pub fn with_driver(driver: Arc<dyn SnapshotDriver>) -> Self {
        Kernel {
            path: PathBuf::from("(given driver)"),
            driver: Arc::new(Mutex::new(Some(driver))),
        }
    }

    /// The driver, opening the control device if needed. A missing device node gives
    /// [`SessionError::ModuleNotLoaded`].
    pub fn driver(&self) -> Result<Arc<dyn SnapshotDriver>, SessionError> {
        let mut slot = self.driver.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let opened = Blksnap::open_path(&self.path).map_err(|e| match e.errno {
            Errno::ENOENT | Errno::ENXIO | Errno::ENODEV => SessionError::ModuleNotLoaded {
                path: self.path.clone(),
            },
            _ => SessionError::kernel(format!("cannot open {}", self.path.display()), e),
        })?;
        let d: Arc<dyn SnapshotDriver> = Arc::new(opened);
        *slot = Some(d.clone());
        Ok(d)
    }

    /// Whether the module is reachable (the control device opens).
    pub fn available(&self) -> bool {
        self.driver().is_ok()
    }

    /// Destroys every snapshot the module holds: run once when the daemon starts, before
    /// any session of its own exists, to release snapshots left by a daemon that crashed
    /// (their images, difference storage and held memory). Trackers stay attached, so
    /// change tracking continues. Returns the ids destroyed; ids that vanished meanwhile
    /// (ESRCH) are skipped.
    pub fn cleanup_leftovers(&self) -> Result<Vec<SnapshotId>, SessionError> {
        let d = self.driver()?;
        let ids = d
            .snapshot_collect()
            .map_err(|e| SessionError::kernel("listing snapshots failed", e))?;
        let mut out = Vec::new();
        for id in ids {
            match d.snapshot_destroy(id) {
                Ok(()) => out.push(id),
                Err(e) if e.errno == Errno::ESRCH || e.errno == Errno::ENODEV => {}
                Err(e) => {
                    return Err(SessionError::kernel(
                        format!("destroying leftover snapshot {id} failed"),
                        e,
                    ))
                }
            }
        }
        Ok(out)
    }
}

//! [`FakeDriver`]: an in-memory stand-in for the kernel module, over regular files, for
//! tests of sessions, jobs and the layers above them (REST handlers) on machines without
//! the module.
//!
//! A "device" is a regular file registered with a [`DevId`]. Writes made through
//! [`FakeDriver::write`] mark the change map like the module's tracker does (each tracking
//! block holds the snap number current when it was last written). TAKE copies every device
//! of the snapshot to `<dev_dir>/blksnap-image<minor>` (the point-in-time image), freezes
//! the maps and increments the snap numbers; DESTROY removes the copies.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use blksnap::{CbtInfo, DevId, Event, ImageInfo, SectorRange, SnapshotId};
use nix::errno::Errno;

use crate::driver::SnapshotDriver;
use crate::session::image_path;

/// Tracking block size of fake trackers.
pub const FAKE_BLOCK: u32 = 64 * 1024;
/// Major number of fake image devices.
pub const FAKE_IMAGE_MAJOR: u32 = 251;

#[derive(Debug)]
struct Tracker {
    generation: SnapshotId,
    snap_number: u8,
    map: Vec<u8>,
    frozen: Vec<u8>,
    capacity: u64,
}

#[derive(Debug)]
struct Snap {
    devs: Vec<DevId>,
    storage_sectors: u64,
    images: Vec<ImageInfo>,
    events: VecDeque<Event>,
}

#[derive(Debug, Default)]
struct State {
    devices: BTreeMap<DevId, PathBuf>,
    trackers: BTreeMap<DevId, Tracker>,
    snaps: BTreeMap<SnapshotId, Snap>,
    next_id: u64,
    /// Requests that fail once with the given errno (by call name, e.g. "SNAPSHOT_TAKE").
    fail_next: BTreeMap<&'static str, Errno>,
}

/// An in-memory snapshot driver over regular files (see the module docs).
#[derive(Debug)]
pub struct FakeDriver {
    dev_dir: PathBuf,
    state: Mutex<State>,
    wake: Condvar,
}

fn err(call: &'static str, errno: Errno) -> blksnap::Error {
    blksnap::Error::new(call, errno)
}

fn uuid(n: u64, tag: u8) -> SnapshotId {
    let mut b = [tag; 16];
    b[8..].copy_from_slice(&n.to_be_bytes());
    SnapshotId(b)
}

impl FakeDriver {
    /// Images are created in `dev_dir`.
    pub fn new(dev_dir: impl Into<PathBuf>) -> Self {
        FakeDriver {
            dev_dir: dev_dir.into(),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the regular file `path` the device `dev`.
    pub fn add_device(&self, dev: DevId, path: impl Into<PathBuf>) {
        self.lock().devices.insert(dev, path.into());
    }

    /// Writes `data` at `offset` of device `dev` and marks the tracking blocks it covers
    /// with the current (next) snap number, as the module's tracker does.
    pub fn write(&self, dev: DevId, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut st = self.lock();
        let path = st
            .devices
            .get(&dev)
            .cloned()
            .ok_or_else(|| std::io::Error::from_raw_os_error(nix::libc::ENODEV))?;
        let f = fs::OpenOptions::new().write(true).open(&path)?;
        f.write_all_at(data, offset)?;
        if let Some(t) = st.trackers.get_mut(&dev) {
            if !data.is_empty() {
                let first = (offset / u64::from(FAKE_BLOCK)) as usize;
                let last = ((offset + data.len() as u64 - 1) / u64::from(FAKE_BLOCK)) as usize;
                let current = t.snap_number.saturating_add(1);
                for b in first..=last.min(t.map.len().saturating_sub(1)) {
                    t.map[b] = current;
                }
            }
        }
        Ok(())
    }

    /// Queues `event` for snapshot `id` (e.g. a corruption).
    pub fn inject_event(&self, id: SnapshotId, event: Event) {
        if let Some(s) = self.lock().snaps.get_mut(&id) {
            s.events.push_back(event);
        }
        self.wake.notify_all();
    }

    /// Makes the next request named `call` fail with `errno`.
    pub fn fail_next(&self, call: &'static str, errno: Errno) {
        self.lock().fail_next.insert(call, errno);
    }

    /// Restarts the tracker of `dev` with a new generation (as when the snap number would
    /// pass 255, or the module was reloaded).
    pub fn reset_tracker(&self, dev: DevId) {
        let mut st = self.lock();
        st.next_id += 1;
        let n = st.next_id;
        if let Some(t) = st.trackers.get_mut(&dev) {
            t.generation = uuid(n, 0xee);
            t.snap_number = 0;
            t.map.iter_mut().for_each(|b| *b = 0);
            t.frozen.iter_mut().for_each(|b| *b = 0);
        }
    }

    /// Sectors of difference storage appended to snapshot `id`.
    pub fn storage_sectors(&self, id: SnapshotId) -> Option<u64> {
        self.lock().snaps.get(&id).map(|s| s.storage_sectors)
    }

    fn check_fail(st: &mut State, call: &'static str) -> blksnap::Result<()> {
        match st.fail_next.remove(call) {
            Some(errno) => Err(err(call, errno)),
            None => Ok(()),
        }
    }
}

impl SnapshotDriver for FakeDriver {
    fn snapshot_create(&self, devs: &[DevId]) -> blksnap::Result<SnapshotId> {
        const CALL: &str = "SNAPSHOT_CREATE";
        let mut st = self.lock();
        Self::check_fail(&mut st, CALL)?;
        if devs.is_empty() {
            return Err(err(CALL, Errno::EINVAL));
        }
        for d in devs {
            if !st.devices.contains_key(d) {
                return Err(err(CALL, Errno::ENODEV));
            }
            if st.snaps.values().any(|s| s.devs.contains(d)) {
                return Err(err(CALL, Errno::EBUSY));
            }
        }
        for d in devs {
            if !st.trackers.contains_key(d) {
                let capacity = st
                    .devices
                    .get(d)
                    .and_then(|p| fs::metadata(p).ok())
                    .map(|m| m.len())
                    .unwrap_or(0);
                let blocks = capacity.div_ceil(u64::from(FAKE_BLOCK)) as usize;
                st.next_id += 1;
                let generation = uuid(st.next_id, 0x6e);
                st.trackers.insert(
                    *d,
                    Tracker {
                        generation,
                        snap_number: 0,
                        map: vec![0; blocks],
                        frozen: vec![0; blocks],
                        capacity,
                    },
                );
            }
        }
        st.next_id += 1;
        let id = uuid(st.next_id, 0x5a);
        st.snaps.insert(
            id,
            Snap {
                devs: devs.to_vec(),
                storage_sectors: 0,
                images: Vec::new(),
                events: VecDeque::from([Event::LowFreeSpace {
                    requested_sectors: 2_097_152,
                }]),
            },
        );
        Ok(id)
    }

    fn snapshot_destroy(&self, id: SnapshotId) -> blksnap::Result<()> {
        let mut st = self.lock();
        Self::check_fail(&mut st, "SNAPSHOT_DESTROY")?;
        let snap = st
            .snaps
            .remove(&id)
            .ok_or_else(|| err("SNAPSHOT_DESTROY", Errno::ESRCH))?;
        for i in snap.images {
            let _ = fs::remove_file(image_path(&self.dev_dir, &i));
        }
        self.wake.notify_all();
        Ok(())
    }

    fn append_storage(
        &self,
        id: SnapshotId,
        _dev: DevId,
        ranges: &[SectorRange],
    ) -> blksnap::Result<()> {
        const CALL: &str = "SNAPSHOT_APPEND_STORAGE";
        let mut st = self.lock();
        Self::check_fail(&mut st, CALL)?;
        let s = st
            .snaps
            .get_mut(&id)
            .ok_or_else(|| err(CALL, Errno::ESRCH))?;
        s.storage_sectors += ranges.iter().map(|r| r.count).sum::<u64>();
        Ok(())
    }

    fn take(&self, id: SnapshotId) -> blksnap::Result<()> {
        const CALL: &str = "SNAPSHOT_TAKE";
        let mut st = self.lock();
        Self::check_fail(&mut st, CALL)?;
        let (devs, taken, storage) = {
            let s = st.snaps.get(&id).ok_or_else(|| err(CALL, Errno::ESRCH))?;
            (s.devs.clone(), !s.images.is_empty(), s.storage_sectors)
        };
        if taken {
            return Err(err(CALL, Errno::EALREADY));
        }
        if storage == 0 {
            return Err(err(CALL, Errno::EINVAL));
        }
        let used: Vec<u32> = st
            .snaps
            .values()
            .flat_map(|s| s.images.iter().map(|i| i.image.minor))
            .collect();
        let mut images = Vec::new();
        let mut minor = 0u32;
        for d in &devs {
            while used.contains(&minor) {
                minor += 1;
            }
            let info = ImageInfo {
                orig: *d,
                image: DevId::new(FAKE_IMAGE_MAJOR, minor),
            };
            minor += 1;
            let src = st.devices.get(d).cloned().unwrap_or_default();
            fs::copy(&src, image_path(&self.dev_dir, &info)).map_err(|_| err(CALL, Errno::EIO))?;
            if let Some(t) = st.trackers.get_mut(d) {
                t.snap_number = t.snap_number.saturating_add(1);
                t.frozen = t.map.clone();
            }
            images.push(info);
        }
        if let Some(s) = st.snaps.get_mut(&id) {
            s.images = images;
        }
        Ok(())
    }

    fn collect_images(&self, id: SnapshotId) -> blksnap::Result<Vec<ImageInfo>> {
        const CALL: &str = "SNAPSHOT_COLLECT_IMAGES";
        let st = self.lock();
        let s = st.snaps.get(&id).ok_or_else(|| err(CALL, Errno::ESRCH))?;
        if s.images.is_empty() {
            return Err(err(CALL, Errno::ENODEV));
        }
        Ok(s.images.clone())
    }

    fn wait_event(&self, id: SnapshotId, timeout: Duration) -> blksnap::Result<Option<Event>> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            let s = st
                .snaps
                .get_mut(&id)
                .ok_or_else(|| err("SNAPSHOT_WAIT_EVENT", Errno::ESRCH))?;
            if let Some(e) = s.events.pop_front() {
                return Ok(Some(e));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            st = self
                .wake
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    fn snapshot_collect(&self) -> blksnap::Result<Vec<SnapshotId>> {
        Ok(self.lock().snaps.keys().copied().collect())
    }

    fn tracker_collect(&self) -> blksnap::Result<Vec<CbtInfo>> {
        Ok(self
            .lock()
            .trackers
            .iter()
            .map(|(dev, t)| CbtInfo {
                dev: *dev,
                blk_size: FAKE_BLOCK,
                device_capacity: t.capacity,
                blk_count: t.map.len() as u32,
                generation_id: t.generation,
                snap_number: t.snap_number,
            })
            .collect())
    }

    fn read_cbt_map(&self, dev: DevId, offset: u32, len: u32) -> blksnap::Result<Vec<u8>> {
        let st = self.lock();
        let t = st
            .trackers
            .get(&dev)
            .ok_or_else(|| err("TRACKER_READ_CBT_MAP", Errno::ENODEV))?;
        let start = (offset as usize).min(t.frozen.len());
        let end = start.saturating_add(len as usize).min(t.frozen.len());
        Ok(t.frozen[start..end].to_vec())
    }
}

//! Snapshot sessions: one snapshot of one or more devices, from creation to destruction.
//!
//! ```text
//!  create ──► Created ──take──► Taken ──destroy/drop──► Destroyed
//!                │                │
//!                │                └─ corrupted event ──► Failed ──destroy/drop──► Destroyed
//!                └──────────────────── destroy/drop ────────────────────────────► Destroyed
//! ```
//!
//! [`SnapshotSession::create`] checks the devices and the difference storage (see
//! [`crate::storage`]), creates the snapshot, gives it the first piece of storage
//! ([`SessionOptions::initial_storage`]) and starts a watcher thread that waits for the
//! module's events: on *low free space* it appends the next piece (the size the event asks
//! for, or [`SessionOptions::append_step`]) until the storage is used up; on *corrupted*
//! the session becomes [`SessionState::Failed`] and [`SnapshotSession::check`] returns
//! [`SessionError::Corrupted`] from then on.
//!
//! The snapshot is always destroyed: by [`SnapshotSession::destroy`] or, failing that, when
//! the session is dropped. Snapshots of a daemon that crashed are destroyed by
//! [`crate::Kernel::cleanup_leftovers`] at the next start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use blksnap::{DevId, Event, ImageInfo, SnapshotId};
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::devices::{self, Device, Scanner};
use crate::driver::{Kernel, SnapshotDriver};
use crate::error::{chain, SessionError};
use crate::formats::SECTOR;
use crate::storage::{self, DiffStorage, Prepared};
use crate::util::{mib, unix_now};

/// How a session uses its storage and watches the module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionOptions {
    /// Bytes the difference storage must offer at least ([`SessionError::ScratchTooSmall`]
    /// otherwise). 0: any size.
    pub min_storage: u64,
    /// Bytes given to the module at creation; the rest is appended on low-free-space
    /// events. `None`: everything at once.
    pub initial_storage: Option<u64>,
    /// Bytes appended per low-free-space event. `None`: what the event asks for.
    pub append_step: Option<u64>,
    /// How long one wait for an event lasts (also the longest [`SnapshotSession::destroy`]
    /// waits for the watcher to stop).
    #[serde(with = "millis")]
    pub event_poll: Duration,
    /// How long to wait for image device nodes to appear after TAKE.
    #[serde(with = "millis")]
    pub image_timeout: Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            min_storage: 0,
            initial_storage: None,
            append_step: None,
            event_poll: Duration::from_millis(250),
            image_timeout: Duration::from_secs(10),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().try_into().unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Lifecycle state (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Created,
    Taken,
    Failed,
    Destroyed,
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionState::Created => "created (not taken yet)",
            SessionState::Taken => "taken",
            SessionState::Failed => "failed",
            SessionState::Destroyed => "destroyed",
        })
    }
}

/// One snapshotted device and its image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDevice {
    /// The device as it was when the session was created.
    pub device: Device,
    /// `/dev/blksnap-image<N>` once taken.
    pub image: Option<PathBuf>,
}

/// Difference storage of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageInfo {
    pub description: String,
    pub total_bytes: u64,
    /// Bytes handed to the module so far.
    pub given_bytes: u64,
    /// The module asked for more after everything was given.
    pub exhausted: bool,
}

/// A code and a message, for JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

/// A serialisable view of a session (for the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The snapshot's uuid.
    pub id: String,
    pub state: SessionState,
    /// Set when failed.
    pub error: Option<ErrorInfo>,
    pub devices: Vec<SessionDevice>,
    pub storage: StorageInfo,
    pub created_unix: u64,
    pub taken_unix: Option<u64>,
    /// What happened, oldest first (storage appended, events).
    pub events: Vec<String>,
}

/// The module's corruption report.
#[derive(Debug, Clone)]
struct Corruption {
    device: String,
    dev: DevId,
    errno: String,
}

impl Corruption {
    fn error(&self) -> SessionError {
        SessionError::Corrupted {
            device: self.device.clone(),
            dev: self.dev,
            errno: self.errno.clone(),
        }
    }
}

struct Inner {
    state: SessionState,
    corruption: Option<Corruption>,
    devices: Vec<SessionDevice>,
    storage: Option<Prepared>,
    storage_desc: String,
    storage_dev: DevId,
    total_sectors: u64,
    given_sectors: u64,
    exhausted: bool,
    taken_unix: Option<u64>,
    events: Vec<String>,
}

struct Shared {
    id: SnapshotId,
    driver: Arc<dyn SnapshotDriver>,
    inner: Mutex<Inner>,
    stop: AtomicBool,
    opts: SessionOptions,
    started: Instant,
    created_unix: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note(&self, inner: &mut Inner, text: String) {
        inner.events.push(format!(
            "+{:.1}s {text}",
            self.started.elapsed().as_secs_f64()
        ));
    }

    /// Gives the module up to `sectors` more sectors; returns how many were given.
    fn append(&self, inner: &mut Inner, sectors: u64) -> Result<u64, SessionError> {
        let Some(prepared) = inner.storage.as_mut() else {
            return Ok(0);
        };
        let ranges = prepared.pool.take(sectors);
        let n: u64 = ranges.iter().map(|r| r.count).sum();
        if n == 0 {
            return Ok(0);
        }
        self.driver
            .append_storage(self.id, prepared.dev, &ranges)
            .map_err(|e| SessionError::kernel("appending difference storage failed", e))?;
        inner.given_sectors += n;
        Ok(n)
    }

    fn on_event(&self, event: Event) {
        let mut inner = self.lock();
        match event {
            Event::LowFreeSpace { requested_sectors } => {
                let step = self
                    .opts
                    .append_step
                    .map(|b| b.div_ceil(SECTOR))
                    .unwrap_or(requested_sectors)
                    .max(1);
                match self.append(&mut inner, step) {
                    Ok(0) => {
                        if !inner.exhausted {
                            inner.exhausted = true;
                            let total = inner.total_sectors * SECTOR;
                            self.note(
                                &mut inner,
                                format!(
                                    "low free space: all {} of difference storage is in use; nothing left to append",
                                    mib(total)
                                ),
                            );
                        }
                    }
                    Ok(n) => {
                        let given = inner.given_sectors * SECTOR;
                        let total = inner.total_sectors * SECTOR;
                        self.note(
                            &mut inner,
                            format!(
                                "low free space: appended {} (now {} of {})",
                                mib(n * SECTOR),
                                mib(given),
                                mib(total)
                            ),
                        );
                    }
                    Err(e) => {
                        let msg = chain(&e);
                        self.note(&mut inner, format!("low free space: {msg}"));
                    }
                }
            }
            Event::Corrupted { dev, errno } => {
                let device = inner
                    .devices
                    .iter()
                    .find(|d| d.device.dev == dev)
                    .map(|d| d.device.label())
                    .unwrap_or_else(|| dev.to_string());
                let c = Corruption {
                    device,
                    dev,
                    errno: format!("{:?}", Errno::from_raw(errno)),
                };
                let msg = c.error().to_string();
                inner.corruption = Some(c);
                if inner.state != SessionState::Destroyed {
                    inner.state = SessionState::Failed;
                }
                self.note(&mut inner, msg);
            }
            Event::Unknown { code } => {
                self.note(&mut inner, format!("unknown event code {code}"));
            }
        }
    }

    fn watch(self: Arc<Self>) {
        while !self.stop.load(Ordering::SeqCst) {
            match self.driver.wait_event(self.id, self.opts.event_poll) {
                Ok(None) => {}
                Ok(Some(e)) => self.on_event(e),
                Err(e) if e.errno == Errno::EINTR => {}
                Err(e) if e.errno == Errno::ESRCH || e.errno == Errno::ENODEV => break,
                Err(e) => {
                    let mut inner = self.lock();
                    self.note(&mut inner, format!("waiting for events: {e}"));
                    drop(inner);
                    std::thread::sleep(self.opts.event_poll);
                }
            }
        }
    }
}

/// A snapshot of one or more devices (see the module docs). All methods take `&self`; the
/// session can be shared (`Arc`) between a job and the API.
pub struct SnapshotSession {
    shared: Arc<Shared>,
    watcher: Mutex<Option<JoinHandle<()>>>,
    /// Held by [`SnapshotSession::take`] and [`SnapshotSession::destroy`]: one of them at
    /// a time, and a second take sees the first one's state.
    transition: Mutex<()>,
    dev_dir: PathBuf,
}

impl std::fmt::Debug for SnapshotSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotSession")
            .field("id", &self.shared.id)
            .field("state", &self.state())
            .finish()
    }
}

/// `<dev_dir>/blksnap-image<minor>`.
pub fn image_path(dev_dir: &Path, info: &ImageInfo) -> PathBuf {
    dev_dir.join(format!(
        "{}{}",
        blksnap::uapi::BLK_SNAP_IMAGE_NAME,
        info.image.minor
    ))
}

fn resolve_devices(all: &[Device], queries: &[&str]) -> Result<Vec<Device>, SessionError> {
    if queries.is_empty() {
        return Err(SessionError::NoDevices);
    }
    let mut out: Vec<Device> = Vec::new();
    for q in queries {
        let d = devices::find(all, q)?;
        if let Some(prev) = out.iter().find(|p| p.overlaps(d)) {
            return Err(SessionError::DuplicateDevice {
                device: if prev.dev == d.dev {
                    d.label()
                } else {
                    format!("{} (overlaps {})", d.label(), prev.label())
                },
            });
        }
        out.push(d.clone());
    }
    Ok(out)
}

impl SnapshotSession {
    /// Creates a snapshot of `devices` (ids, serials or kernel names) with difference
    /// storage `storage`; it is not taken yet.
    pub fn create(
        kernel: &Kernel,
        scanner: &Scanner,
        devices: &[&str],
        storage: &DiffStorage,
        opts: &SessionOptions,
    ) -> Result<SnapshotSession, SessionError> {
        let all = scanner.scan()?;
        let devs = resolve_devices(&all, devices)?;
        let driver = kernel.driver()?;
        let prepared = storage::prepare(storage, scanner, &devs, opts.min_storage)?;
        let ids: Vec<DevId> = devs.iter().map(|d| d.dev).collect();
        let id = driver.snapshot_create(&ids).map_err(|e| {
            let names: Vec<String> = devs.iter().map(|d| d.label()).collect();
            if e.errno == Errno::EBUSY {
                SessionError::Busy {
                    devices: names.join(", "),
                }
            } else {
                SessionError::kernel(
                    format!("creating a snapshot of {} failed", names.join(", ")),
                    e,
                )
            }
        })?;
        let shared = Arc::new(Shared {
            id,
            driver: driver.clone(),
            inner: Mutex::new(Inner {
                state: SessionState::Created,
                corruption: None,
                devices: devs
                    .into_iter()
                    .map(|device| SessionDevice {
                        device,
                        image: None,
                    })
                    .collect(),
                storage_desc: prepared.description.clone(),
                storage_dev: prepared.dev,
                total_sectors: prepared.pool.total_sectors(),
                given_sectors: 0,
                storage: Some(prepared),
                exhausted: false,
                taken_unix: None,
                events: Vec::new(),
            }),
            stop: AtomicBool::new(false),
            opts: opts.clone(),
            started: Instant::now(),
            created_unix: unix_now(),
        });
        // From here on, dropping the session destroys the snapshot.
        let session = SnapshotSession {
            shared: shared.clone(),
            watcher: Mutex::new(None),
            transition: Mutex::new(()),
            dev_dir: scanner.dev_dir.clone(),
        };
        // CREATE queues a low-free-space event at once (no storage yet); the first piece
        // given below answers it, so drop it rather than append twice.
        for _ in 0..4 {
            match driver.wait_event(id, Duration::ZERO) {
                Ok(Some(Event::LowFreeSpace { .. })) => {}
                Ok(Some(other)) => shared.on_event(other),
                _ => break,
            }
        }
        {
            let mut inner = shared.lock();
            let first = opts
                .initial_storage
                .map(|b| b.div_ceil(SECTOR))
                .unwrap_or(u64::MAX);
            let n = shared.append(&mut inner, first)?;
            let total = inner.total_sectors * SECTOR;
            let desc = inner.storage_desc.clone();
            shared.note(
                &mut inner,
                format!(
                    "created; difference storage {desc}: {} of {} given",
                    mib(n * SECTOR),
                    mib(total)
                ),
            );
        }
        let w = shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("snap-watch-{}", &id.to_string()[..8]))
            .spawn(move || w.watch())
            .map_err(|e| SessionError::storage_io("cannot start the event watcher thread", e))?;
        *session.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(session)
    }

    /// The snapshot's id.
    pub fn id(&self) -> SnapshotId {
        self.shared.id
    }

    pub fn state(&self) -> SessionState {
        self.shared.lock().state
    }

    /// Err([`SessionError::Corrupted`]) once the module reported a corruption.
    pub fn check(&self) -> Result<(), SessionError> {
        match &self.shared.lock().corruption {
            Some(c) => Err(c.error()),
            None => Ok(()),
        }
    }

    /// TAKE: the point in time. Waits for the image device nodes.
    pub fn take(&self) -> Result<(), SessionError> {
        let _transition = self.transition.lock().unwrap_or_else(|e| e.into_inner());
        let state = self.state();
        if state != SessionState::Created {
            return Err(SessionError::InvalidState {
                state: state.to_string(),
                action: "take it".to_owned(),
            });
        }
        let d = &self.shared.driver;
        d.take(self.shared.id)
            .map_err(|e| SessionError::kernel("taking the snapshot failed", e))?;
        let images = d
            .collect_images(self.shared.id)
            .map_err(|e| SessionError::kernel("listing the snapshot's images failed", e))?;
        let deadline = Instant::now() + self.shared.opts.image_timeout;
        let mut found = BTreeMap::new();
        for info in &images {
            let path = image_path(&self.dev_dir, info);
            while !path.exists() {
                if Instant::now() > deadline {
                    return Err(SessionError::ImageMissing {
                        device: info.orig.to_string(),
                        path,
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            found.insert(info.orig, path);
        }
        let mut inner = self.shared.lock();
        for d in inner.devices.iter_mut() {
            d.image = found.get(&d.device.dev).cloned();
        }
        if let Some(missing) = inner.devices.iter().find(|d| d.image.is_none()) {
            return Err(SessionError::ImageMissing {
                device: missing.device.label(),
                path: self.dev_dir.join("blksnap-image?"),
            });
        }
        if inner.state == SessionState::Created {
            inner.state = SessionState::Taken;
        }
        inner.taken_unix = Some(unix_now());
        self.shared.note(&mut inner, "taken".to_owned());
        Ok(())
    }

    /// The devices and (once taken) their images.
    pub fn devices(&self) -> Vec<SessionDevice> {
        self.shared.lock().devices.clone()
    }

    /// The image of the device `dev`, once taken.
    pub fn image_of(&self, dev: DevId) -> Option<PathBuf> {
        self.shared
            .lock()
            .devices
            .iter()
            .find(|d| d.device.dev == dev)
            .and_then(|d| d.image.clone())
    }

    /// The device the difference storage lies on.
    pub fn storage_dev(&self) -> DevId {
        self.shared.lock().storage_dev
    }

    /// A serialisable view.
    pub fn info(&self) -> SessionInfo {
        let inner = self.shared.lock();
        SessionInfo {
            id: self.shared.id.to_string(),
            state: inner.state,
            error: inner.corruption.as_ref().map(|c| {
                let e = c.error();
                ErrorInfo {
                    code: e.code().to_owned(),
                    message: e.to_string(),
                }
            }),
            devices: inner.devices.clone(),
            storage: StorageInfo {
                description: inner.storage_desc.clone(),
                total_bytes: inner.total_sectors * SECTOR,
                given_bytes: inner.given_sectors * SECTOR,
                exhausted: inner.exhausted,
            },
            created_unix: self.shared.created_unix,
            taken_unix: inner.taken_unix,
            events: inner.events.clone(),
        }
    }

    /// Destroys the snapshot (images, difference storage) and releases a storage file.
    /// Idempotent. Trackers stay attached for the next incremental backup.
    pub fn destroy(&self) -> Result<(), SessionError> {
        let _transition = self.transition.lock().unwrap_or_else(|e| e.into_inner());
        self.shared.stop.store(true, Ordering::SeqCst);
        let handle = self
            .watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        let mut inner = self.shared.lock();
        if inner.state == SessionState::Destroyed {
            return Ok(());
        }
        match self.shared.driver.snapshot_destroy(self.shared.id) {
            Ok(()) => {}
            Err(e) if e.errno == Errno::ESRCH || e.errno == Errno::ENODEV => {}
            Err(e) => {
                return Err(SessionError::kernel(
                    format!("destroying snapshot {} failed", self.shared.id),
                    e,
                ))
            }
        }
        inner.state = SessionState::Destroyed;
        // Releases a storage file (clears its immutable flag).
        inner.storage = None;
        self.shared.note(&mut inner, "destroyed".to_owned());
        Ok(())
    }
}

impl Drop for SnapshotSession {
    fn drop(&mut self) {
        // Errors here are left for cleanup_leftovers at the next start.
        let _ = self.destroy();
    }
}

#[cfg(test)]
mod tests;

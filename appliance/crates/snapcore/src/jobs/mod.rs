//! The [`JobManager`]: backup, restore, verify and export jobs run on worker threads, with
//! progress, cancellation, a log and a JSON result record; and the registry of live
//! snapshot sessions (those of running backups and those held on request).
//!
//! # Jobs
//!
//! [`JobManager::submit`] queues a [`JobSpec`] and returns its [`JobId`]; `workers`
//! threads (1 by default, so jobs run one after the other) take jobs in order. A job's
//! [`JobInfo`] (state, progress, log, result, error) is read with [`JobManager::get`] /
//! [`JobManager::list`]; [`JobManager::wait`] blocks until it finishes.
//! [`JobManager::cancel`] ends a queued job at once and asks a running one to stop at its
//! next chunk (a cancelled backup publishes nothing; its snapshot is destroyed).
//!
//! A backup of a device: create a session (checks, difference storage) → hooks → TAKE →
//! read the change map → incremental on the newest backup of the same tracker generation,
//! or full → read the image into the repository (manifest records the CBT generation and
//! snap number) → destroy the session.
//!
//! # Threads and locks
//!
//! | lock                     | protects                                  | held while          |
//! |--------------------------|-------------------------------------------|---------------------|
//! | `Manager::jobs`          | the job table                             | lookups, inserts    |
//! | `Manager::queue`         | queued job ids (+ `Condvar` for workers)  | push/pop            |
//! | `Slot::status`           | one job's state, progress, log, result    | short updates       |
//! | `Manager::sessions`      | live sessions                             | lookups, inserts    |
//!
//! No lock is held across I/O, a kernel request or a hook; `Slot::status` is never taken
//! while `Manager::jobs` is held by the same thread, except to read.

mod model;
mod run;
mod spec;

use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use blksnap::SnapshotId;
use repo::CancelToken;

pub use model::{
    BackupReport, DeviceRef, ErrorInfo, ExportFormat, ExportReport, JobId, JobInfo, JobKind,
    JobProgress, JobResult, JobState, RestoreReport, VerifyReport,
};
pub use spec::{BackupSource, BackupSpec, ExportSpec, JobSpec, RestoreSpec, TakeHooks, VerifySpec};

use crate::devices::{Device, Scanner};
use crate::driver::Kernel;
use crate::error::{chain, DeviceError, JobError, SessionError};
use crate::session::{SessionInfo, SessionOptions, SnapshotSession};
use crate::storage::DiffStorage;
use crate::util::{lock, unix_now};

/// When [`JobManager::create_snapshot`] takes the new snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// At once: the point in time is the creation.
    Now,
    /// On [`JobManager::take_snapshot`].
    Later,
}

/// How a [`JobManager`] is set up.
#[derive(Debug, Clone)]
pub struct JobManagerConfig {
    pub kernel: Kernel,
    pub scanner: Scanner,
    /// Jobs running at once (at least 1).
    pub workers: usize,
    /// Recorded in manifests, e.g. `appliance 0.1.0`.
    pub tool_version: String,
    /// Finished jobs kept for listing; older ones are forgotten.
    pub keep_finished: usize,
}

impl Default for JobManagerConfig {
    fn default() -> Self {
        JobManagerConfig {
            kernel: Kernel::system(),
            scanner: Scanner::system(),
            workers: 1,
            tool_version: format!("snapcore {}", env!("CARGO_PKG_VERSION")),
            keep_finished: 200,
        }
    }
}

struct Status {
    state: JobState,
    phase: String,
    phase_start: Instant,
    /// Bytes of the last phase that counted bytes: a later phase without a byte count
    /// (publishing, releasing the snapshot) keeps showing them.
    done: u64,
    total: u64,
    /// Whether the current phase reports bytes (only then is there a rate).
    measured: bool,
    result: Option<JobResult>,
    error: Option<ErrorInfo>,
    log: Vec<String>,
    started_unix: Option<u64>,
    finished_unix: Option<u64>,
}

/// One job's shared record.
struct Slot {
    id: JobId,
    kind: JobKind,
    description: String,
    created_unix: u64,
    created: Instant,
    spec: Mutex<Option<JobSpec>>,
    cancel: CancelToken,
    status: Mutex<Status>,
}

impl Slot {
    fn info(&self) -> JobInfo {
        let st = lock(&self.status);
        let elapsed = st.phase_start.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 && st.measured && st.state == JobState::Running {
            (st.done as f64 / elapsed) as u64
        } else {
            0
        };
        let eta = (rate > 0 && st.total >= st.done).then(|| (st.total - st.done) / rate);
        JobInfo {
            id: self.id,
            kind: self.kind,
            state: st.state,
            description: self.description.clone(),
            created_unix: self.created_unix,
            started_unix: st.started_unix,
            finished_unix: st.finished_unix,
            progress: JobProgress {
                phase: st.phase.clone(),
                done_bytes: st.done,
                total_bytes: st.total,
                bytes_per_sec: rate,
                eta_secs: eta,
            },
            result: st.result.clone(),
            error: st.error.clone(),
            cancel_requested: self.cancel.is_cancelled(),
            log: st.log.clone(),
        }
    }

    fn log(&self, text: impl AsRef<str>) {
        let line = format!(
            "+{:.1}s {}",
            self.created.elapsed().as_secs_f64(),
            text.as_ref()
        );
        lock(&self.status).log.push(line);
    }

    fn phase(&self, phase: &str) {
        let mut st = lock(&self.status);
        st.phase = phase.to_owned();
        st.phase_start = Instant::now();
        st.measured = false;
    }

    fn progress(&self, done: u64, total: u64) {
        let mut st = lock(&self.status);
        st.done = done;
        st.total = total;
        st.measured = true;
    }
}

struct SessionEntry {
    session: Arc<SnapshotSession>,
    owner: Option<JobId>,
}

impl Manager {
    /// See [`JobManager::why_busy`].
    fn why_busy(&self, dev: &Device, all: &[Device]) -> Option<String> {
        if let Some(u) = dev.usage_in(all).into_iter().next() {
            return Some(u);
        }
        let sessions: Vec<Arc<SnapshotSession>> = lock(&self.sessions)
            .values()
            .map(|e| e.session.clone())
            .collect();
        for s in sessions {
            if s.devices().iter().any(|d| d.device.overlaps(dev)) {
                return Some(format!("part of snapshot {}", s.id()));
            }
            if s.storage_dev() == dev.dev {
                return Some(format!("difference storage of snapshot {}", s.id()));
            }
        }
        None
    }
}

struct Manager {
    cfg: JobManagerConfig,
    jobs: Mutex<BTreeMap<JobId, Arc<Slot>>>,
    queue: Mutex<VecDeque<JobId>>,
    queued: Condvar,
    finished: Condvar,
    next: AtomicU64,
    stopping: AtomicBool,
    workers: Mutex<Vec<JoinHandle<()>>>,
    sessions: Mutex<BTreeMap<SnapshotId, SessionEntry>>,
}

/// Runs jobs and holds sessions (see the module docs). Cheap to clone; clones share
/// everything. Dropping the last clone shuts the manager down.
#[derive(Clone)]
pub struct JobManager {
    mgr: Arc<Manager>,
    _owner: Arc<ShutdownOnDrop>,
}

struct ShutdownOnDrop(Arc<Manager>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        shutdown(&self.0);
    }
}

impl std::fmt::Debug for JobManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobManager")
            .field("jobs", &lock(&self.mgr.jobs).len())
            .finish()
    }
}

impl JobManager {
    /// Starts the worker threads.
    pub fn new(cfg: JobManagerConfig) -> JobManager {
        let workers = cfg.workers.max(1);
        let mgr = Arc::new(Manager {
            cfg,
            jobs: Mutex::new(BTreeMap::new()),
            queue: Mutex::new(VecDeque::new()),
            queued: Condvar::new(),
            finished: Condvar::new(),
            next: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            workers: Mutex::new(Vec::new()),
            sessions: Mutex::new(BTreeMap::new()),
        });
        for n in 0..workers {
            let m = mgr.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("job-worker-{n}"))
                .spawn(move || worker(m));
            if let Ok(h) = spawned {
                lock(&mgr.workers).push(h);
            }
        }
        JobManager {
            _owner: Arc::new(ShutdownOnDrop(mgr.clone())),
            mgr,
        }
    }

    /// The kernel access the manager uses.
    pub fn kernel(&self) -> &Kernel {
        &self.mgr.cfg.kernel
    }

    /// The device scanner the manager uses.
    pub fn scanner(&self) -> &Scanner {
        &self.mgr.cfg.scanner
    }

    /// Every listed disk and partition (see [`crate::devices`]).
    pub fn devices(&self) -> Result<Vec<Device>, DeviceError> {
        self.mgr.cfg.scanner.scan()
    }

    /// One device by id, serial, WWN or kernel name.
    pub fn device(&self, query: &str) -> Result<Device, DeviceError> {
        self.mgr.cfg.scanner.find(query)
    }

    /// Queues a job.
    pub fn submit(&self, spec: JobSpec) -> Result<JobId, JobError> {
        if self.mgr.stopping.load(Ordering::SeqCst) {
            return Err(JobError::ShuttingDown);
        }
        let id = JobId(self.mgr.next.fetch_add(1, Ordering::SeqCst));
        let slot = Arc::new(Slot {
            id,
            kind: spec.kind(),
            description: spec.describe(),
            created_unix: unix_now(),
            created: Instant::now(),
            spec: Mutex::new(Some(spec)),
            cancel: CancelToken::new(),
            status: Mutex::new(Status {
                state: JobState::Queued,
                phase: "queued".to_owned(),
                phase_start: Instant::now(),
                measured: false,
                done: 0,
                total: 0,
                result: None,
                error: None,
                log: Vec::new(),
                started_unix: None,
                finished_unix: None,
            }),
        });
        slot.log(format!("queued: {}", slot.description));
        lock(&self.mgr.jobs).insert(id, slot);
        lock(&self.mgr.queue).push_back(id);
        self.mgr.queued.notify_one();
        self.prune();
        Ok(id)
    }

    /// The job's current record.
    pub fn get(&self, id: JobId) -> Result<JobInfo, JobError> {
        self.slot(id).map(|s| s.info())
    }

    /// Every known job, oldest first.
    pub fn list(&self) -> Vec<JobInfo> {
        let slots: Vec<Arc<Slot>> = lock(&self.mgr.jobs).values().cloned().collect();
        slots.iter().map(|s| s.info()).collect()
    }

    /// Cancels a job: a queued one ends at once, a running one at its next check. A
    /// finished job is left as it is. Returns the job's record.
    pub fn cancel(&self, id: JobId) -> Result<JobInfo, JobError> {
        let slot = self.slot(id)?;
        slot.cancel.cancel();
        let mut ended = false;
        {
            let mut st = lock(&slot.status);
            if st.state == JobState::Queued {
                st.state = JobState::Cancelled;
                st.phase = "finished".to_owned();
                st.finished_unix = Some(unix_now());
                st.error = Some(error_info(&JobError::Cancelled));
                ended = true;
            }
        }
        if ended {
            slot.log("cancelled before it started");
            lock(&self.mgr.queue).retain(|q| *q != id);
            self.mgr.finished.notify_all();
        } else {
            slot.log("cancel requested");
        }
        Ok(slot.info())
    }

    /// Blocks until the job finished or `timeout` passed (`None`: no limit); returns its
    /// record either way.
    pub fn wait(&self, id: JobId, timeout: Option<Duration>) -> Result<JobInfo, JobError> {
        let slot = self.slot(id)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut guard = lock(&self.mgr.jobs);
        loop {
            if lock(&slot.status).state.is_finished() {
                drop(guard);
                return Ok(slot.info());
            }
            let wait = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        drop(guard);
                        return Ok(slot.info());
                    }
                    (d - now).min(Duration::from_millis(500))
                }
                None => Duration::from_millis(500),
            };
            guard = self
                .mgr
                .finished
                .wait_timeout(guard, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Creates a snapshot that stays until [`JobManager::destroy_snapshot`] (or shutdown),
    /// e.g. to read or export its images. With [`Take::Now`] it is taken at once; with
    /// [`Take::Later`] it waits in state created, tracking nothing yet, for
    /// [`JobManager::take_snapshot`] (the caller picks the instant, e.g. once an
    /// application is quiesced). A snapshot whose take fails is destroyed.
    pub fn create_snapshot(
        &self,
        devices: &[&str],
        storage: &DiffStorage,
        opts: &SessionOptions,
        take: Take,
    ) -> Result<SessionInfo, SessionError> {
        let s = SnapshotSession::create(
            &self.mgr.cfg.kernel,
            &self.mgr.cfg.scanner,
            devices,
            storage,
            opts,
        )?;
        if take == Take::Now {
            // Dropping the session on failure destroys the snapshot.
            s.take()?;
        }
        let info = s.info();
        lock(&self.mgr.sessions).insert(
            s.id(),
            SessionEntry {
                session: Arc::new(s),
                owner: None,
            },
        );
        Ok(info)
    }

    /// TAKE for a held snapshot created with [`Take::Later`]. A snapshot already taken,
    /// or one that belongs to a backup job, is refused.
    pub fn take_snapshot(&self, id: &str) -> Result<SessionInfo, JobError> {
        let sid = parse_snapshot_id(id)?;
        let session = match lock(&self.mgr.sessions).get(&sid) {
            None => return Err(JobError::SnapshotNotFound(id.to_owned())),
            Some(SessionEntry {
                owner: Some(job), ..
            }) => {
                return Err(JobError::SnapshotOwned {
                    id: id.to_owned(),
                    job: *job,
                })
            }
            Some(entry) => entry.session.clone(),
        };
        session.take()?;
        Ok(session.info())
    }

    /// Why `dev` must not be written now, if it must not: mounted or held (itself or a
    /// partition of it, per `all`), part of a live snapshot, or a snapshot's difference
    /// storage.
    pub fn why_busy(&self, dev: &Device, all: &[Device]) -> Option<String> {
        self.mgr.why_busy(dev, all)
    }

    /// Every live session: held ones and those of running backups.
    pub fn list_snapshots(&self) -> Vec<SessionInfo> {
        let sessions: Vec<Arc<SnapshotSession>> = lock(&self.mgr.sessions)
            .values()
            .map(|e| e.session.clone())
            .collect();
        sessions.iter().map(|s| s.info()).collect()
    }

    /// One live session by uuid, with the job that owns it (if any).
    pub fn snapshot(&self, id: &str) -> Result<(SessionInfo, Option<JobId>), JobError> {
        let sid = parse_snapshot_id(id)?;
        let entry = lock(&self.mgr.sessions)
            .get(&sid)
            .map(|e| (e.session.clone(), e.owner));
        match entry {
            Some((s, owner)) => Ok((s.info(), owner)),
            None => Err(JobError::SnapshotNotFound(id.to_owned())),
        }
    }

    /// Destroys a held snapshot. A snapshot owned by a running job is refused (cancel the
    /// job instead).
    pub fn destroy_snapshot(&self, id: &str) -> Result<(), JobError> {
        let sid = parse_snapshot_id(id)?;
        let entry = {
            let mut sessions = lock(&self.mgr.sessions);
            match sessions.get(&sid).map(|e| e.owner) {
                None => return Err(JobError::SnapshotNotFound(id.to_owned())),
                Some(Some(job)) => {
                    return Err(JobError::SnapshotOwned {
                        id: id.to_owned(),
                        job,
                    })
                }
                Some(None) => sessions.remove(&sid),
            }
        };
        if let Some(e) = entry {
            e.session.destroy()?;
        }
        Ok(())
    }

    /// Stops everything: no new jobs, queued jobs cancelled, running jobs asked to stop and
    /// waited for, held snapshots destroyed. Idempotent.
    pub fn shutdown(&self) {
        shutdown(&self.mgr);
    }

    fn slot(&self, id: JobId) -> Result<Arc<Slot>, JobError> {
        lock(&self.mgr.jobs)
            .get(&id)
            .cloned()
            .ok_or(JobError::NotFound(id))
    }

    /// Forgets the oldest finished jobs beyond `keep_finished`.
    fn prune(&self) {
        let keep = self.mgr.cfg.keep_finished;
        let mut jobs = lock(&self.mgr.jobs);
        let finished: Vec<JobId> = jobs
            .values()
            .filter(|s| lock(&s.status).state.is_finished())
            .map(|s| s.id)
            .collect();
        if finished.len() > keep {
            for id in &finished[..finished.len() - keep] {
                jobs.remove(id);
            }
        }
    }
}

fn parse_snapshot_id(id: &str) -> Result<SnapshotId, JobError> {
    id.parse::<SnapshotId>()
        .map_err(|e| JobError::InvalidArgument {
            what: "snapshot id",
            detail: e.to_string(),
        })
}

fn shutdown(mgr: &Arc<Manager>) {
    mgr.stopping.store(true, Ordering::SeqCst);
    let slots: Vec<Arc<Slot>> = lock(&mgr.jobs).values().cloned().collect();
    for s in &slots {
        s.cancel.cancel();
        let mut st = lock(&s.status);
        if st.state == JobState::Queued {
            st.state = JobState::Cancelled;
            st.phase = "finished".to_owned();
            st.finished_unix = Some(unix_now());
            st.error = Some(error_info(&JobError::ShuttingDown));
        }
    }
    lock(&mgr.queue).clear();
    mgr.queued.notify_all();
    mgr.finished.notify_all();
    let handles: Vec<JoinHandle<()>> = lock(&mgr.workers).drain(..).collect();
    let me = std::thread::current().id();
    for h in handles {
        if h.thread().id() != me {
            let _ = h.join();
        }
    }
    let held: Vec<SessionEntry> = std::mem::take(&mut *lock(&mgr.sessions))
        .into_values()
        .collect();
    for e in held {
        let _ = e.session.destroy();
    }
}

pub(crate) fn error_info(e: &JobError) -> ErrorInfo {
    ErrorInfo {
        code: e.code().to_owned(),
        message: chain(e),
    }
}

fn worker(mgr: Arc<Manager>) {
    loop {
        let next = {
            let mut q = lock(&mgr.queue);
            loop {
                if mgr.stopping.load(Ordering::SeqCst) {
                    return;
                }
                if let Some(id) = q.pop_front() {
                    break id;
                }
                q = mgr.queued.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let slot = lock(&mgr.jobs).get(&next).cloned();
        if let Some(slot) = slot {
            run_job(&mgr, &slot);
            mgr.finished.notify_all();
        }
    }
}

fn run_job(mgr: &Arc<Manager>, slot: &Arc<Slot>) {
    let spec = {
        let mut st = lock(&slot.status);
        if st.state != JobState::Queued {
            return;
        }
        st.state = JobState::Running;
        st.started_unix = Some(unix_now());
        lock(&slot.spec).take()
    };
    let Some(spec) = spec else {
        return;
    };
    slot.log("started");
    let ctx = run::Ctx {
        mgr: mgr.clone(),
        slot: slot.clone(),
    };
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| run::execute(&ctx, spec)))
        .unwrap_or_else(|payload| {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a job thread panicked".to_owned());
            run::Outcome {
                result: None,
                error: Some(JobError::Internal(msg)),
            }
        });
    let (state, line) = match &outcome.error {
        None => (JobState::Done, "done".to_owned()),
        Some(e) if e.is_cancelled() => (JobState::Cancelled, "cancelled".to_owned()),
        Some(e) => (JobState::Failed, format!("failed: {}", chain(e))),
    };
    slot.log(line);
    let mut st = lock(&slot.status);
    st.state = state;
    st.phase = "finished".to_owned();
    st.finished_unix = Some(unix_now());
    st.result = outcome.result;
    st.error = outcome.error.as_ref().map(error_info);
}

#[cfg(test)]
mod tests;

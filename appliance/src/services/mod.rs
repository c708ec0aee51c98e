//! What the REST handlers and web pages work on, without HTTP: the job manager (devices,
//! snapshots, jobs), the backup target, API tokens, recent events, and the web UI's
//! per-session flash messages and CSRF key.
//!
//! | part          | module                | persists in the state directory |
//! |---------------|-----------------------|---------------------------------|
//! | jobs, devices | [`snapcore`]          | no (the repository is the truth) |
//! | target        | [`target`]            | `target.json`                   |
//! | API tokens    | [`tokens`]            | `api-tokens.json` (hashes)      |
//! | NBD exports   | [`exports`]           | `exports.json`                  |
//! | events        | [`events`]            | no                              |
//! | flash, CSRF   | [`web`]               | no                              |
//!
//! [`config_disk`] moves the state directory from memory onto a disk the admin formats.

pub mod config_disk;
pub mod events;
pub mod exports;
pub mod nfs;
pub mod ops;
pub mod target;
pub mod tokens;
pub mod web;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use snapcore::{JobManager, JobManagerConfig, Scanner};

pub use events::{EventLog, Level};
pub use exports::Exports;
pub use target::Targets;
pub use tokens::ApiTokens;
pub use web::{CsrfKey, FlashStore};

/// Where the appliance mounts target devices.
pub const MOUNT_ROOT: &str = "/run/appliance/targets";
/// The target directory when no target is configured and no `backup0` disk exists.
pub const DEFAULT_TARGET_DIR: &str = "/var/backups/appliance";
/// How often the event watcher looks at jobs and snapshots.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// How [`Services`] are set up.
#[derive(Debug, Clone)]
pub struct ServicesConfig {
    /// Settings directory; `None`: settings live in memory.
    pub state_dir: Option<PathBuf>,
    /// The settings directory is in memory (no config disk).
    pub ephemeral: bool,
    /// Where target devices are mounted.
    pub mount_root: PathBuf,
    /// The default target directory.
    pub default_target_dir: PathBuf,
    /// The job manager (kernel, device scanner, workers).
    pub jobs: JobManagerConfig,
}

impl ServicesConfig {
    /// The running machine: `/sys`, `/dev`, `/dev/blksnap`, settings in `state_dir`.
    pub fn system(state_dir: Option<&Path>) -> Self {
        let jobs = JobManagerConfig {
            tool_version: format!("appliance {}", crate::api::VERSION),
            ..JobManagerConfig::default()
        };
        ServicesConfig {
            state_dir: state_dir.map(Path::to_path_buf),
            ephemeral: false,
            mount_root: PathBuf::from(MOUNT_ROOT),
            default_target_dir: PathBuf::from(DEFAULT_TARGET_DIR),
            jobs,
        }
    }
}

/// Everything the handlers use (see the module docs).
#[derive(Debug)]
pub struct Services {
    pub jobs: JobManager,
    pub targets: Targets,
    pub tokens: ApiTokens,
    pub exports: Exports,
    pub events: EventLog,
    pub flash: FlashStore,
    pub csrf: CsrfKey,
    /// The NBD server's CA certificate (PEM), once the daemon's NBD server runs.
    pub nbd_ca: std::sync::OnceLock<String>,
    /// Settings survive a restart because the state directory is not in memory (set at
    /// start).
    persistent_dir: bool,
    /// The config disk mounted on the state directory, when there is one.
    config_device: Mutex<Option<String>>,
    /// Where settings are saved (password hash, target, tokens).
    pub state_dir: Option<PathBuf>,
}

impl Services {
    /// Builds the services; warnings (damaged settings files) go to the event log.
    pub fn new(cfg: ServicesConfig) -> Arc<Services> {
        let scanner: Scanner = cfg.jobs.scanner.clone();
        let state_dir = cfg.state_dir.as_deref();
        let config_device = state_dir
            .and_then(|dir| scanner.mount_at(dir))
            .map(|m| m.source);
        let (targets, target_warning) =
            Targets::new(state_dir, cfg.mount_root, cfg.default_target_dir, scanner);
        let (tokens, token_warning) = ApiTokens::new(state_dir);
        let (exports, export_warning) = Exports::new(state_dir);
        let services = Arc::new(Services {
            jobs: JobManager::new(cfg.jobs),
            targets,
            tokens,
            exports,
            events: EventLog::new(),
            flash: FlashStore::default(),
            csrf: CsrfKey::random(),
            nbd_ca: std::sync::OnceLock::new(),
            persistent_dir: cfg.state_dir.is_some() && !cfg.ephemeral,
            config_device: Mutex::new(config_device),
            state_dir: cfg.state_dir.clone(),
        });
        for warning in [target_warning, token_warning, export_warning]
            .into_iter()
            .flatten()
        {
            services.events.record(Level::Warning, "system", warning);
        }
        services
    }

    /// Starts the thread that turns job and snapshot changes into events. It ends when
    /// the services are dropped.
    pub fn start_watcher(self: &Arc<Self>) {
        let weak: Weak<Services> = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("event-watcher".into())
            .spawn(move || {
                let mut watcher = events::Watcher::default();
                loop {
                    let Some(services) = weak.upgrade() else {
                        return;
                    };
                    let jobs = services.jobs.list();
                    let sessions = services.jobs.list_snapshots();
                    watcher.observe(&services.events, &jobs, &sessions);
                    drop(services);
                    std::thread::sleep(WATCH_INTERVAL);
                }
            });
        if let Err(err) = spawned {
            self.events.record(
                Level::Error,
                "system",
                format!("cannot start the event watcher: {err}"),
            );
        }
    }

    /// The daemon's services: settings in `state_dir`; under the appliance's init
    /// (`supervised`) snapshots a crashed daemon left behind are released first. Starts
    /// the event watcher.
    pub fn for_daemon(state_dir: &Path, ephemeral: bool, supervised: bool) -> Arc<Services> {
        let mut cfg = ServicesConfig::system(Some(state_dir));
        cfg.ephemeral = ephemeral;
        let services = Services::new(cfg);
        if supervised {
            match services.jobs.kernel().cleanup_leftovers() {
                Ok(ids) if !ids.is_empty() => {
                    let text = format!(
                        "released {} snapshot(s) left by an earlier daemon",
                        ids.len()
                    );
                    crate::serve::say(&text);
                    services.events.record(Level::Warning, "system", text);
                }
                Ok(_) => {}
                Err(err) => crate::serve::say(&format!("snapshots: {}", snapcore::chain(&err))),
            }
        }
        services
            .events
            .record(Level::Info, "system", "daemon started");
        services.start_watcher();
        services
    }

    /// Whether settings survive a restart: the state directory is not in memory, or a
    /// config disk is mounted on it (found at start, or made since).
    pub fn persistent(&self) -> bool {
        self.persistent_dir || self.config_device().is_some()
    }

    /// The config disk the settings are on, if any.
    pub fn config_device(&self) -> Option<String> {
        self.config_device
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records the config disk now mounted on the state directory.
    fn set_config_device(&self, device: String) {
        *self.config_device.lock().unwrap_or_else(|e| e.into_inner()) = Some(device);
    }

    /// Stops jobs and releases held snapshots (daemon shutdown).
    pub fn shutdown(&self) {
        self.jobs.shutdown();
    }
}

/// Reads the JSON settings file `file` of the state directory: `T::default()` when there
/// is no state directory or no file; a damaged file is ignored and the warning names it
/// (`what`: "the damaged API token file").
pub(crate) fn load_settings<T: serde::de::DeserializeOwned + Default>(
    file: Option<&Path>,
    what: &str,
) -> (T, Option<String>) {
    match file.map(std::fs::read) {
        Some(Ok(bytes)) => match serde_json::from_slice(&bytes) {
            Ok(value) => (value, None),
            Err(e) => (T::default(), Some(format!("ignoring {what}: {e}"))),
        },
        _ => (T::default(), None),
    }
}

/// Writes `value` as pretty JSON to the settings file `file` (mode 0600, replaced
/// atomically).
pub(crate) fn save_settings<T: serde::Serialize>(
    file: &Path,
    value: &T,
) -> Result<(), crate::auth::PasswordError> {
    let json = serde_json::to_string_pretty(value).unwrap_or_default();
    crate::auth::password::write_private(file, &json)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

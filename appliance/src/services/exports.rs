//! NBD exports: which disks, snapshot images and backups the NBD server (port 10809)
//! offers, to whom, and whether over TLS only.
//!
//! | source     | served by                                   | writes            |
//! |------------|---------------------------------------------|-------------------|
//! | `device`   | the block device, `O_DIRECT` ("in front of": the consumer's writes pass the appliance's block layer, so trackers and snapshots see them) | unless `read_only` |
//! | `snapshot` | the snapshot image `/dev/blksnap-image<N>`  | refused           |
//! | `backup`   | the repository, chunk by chunk ([`repo::BackupImage`]): no restore first | refused |
//!
//! Nothing is open by default: an export names the client addresses or networks allowed
//! to use it (at least one), and needs TLS unless created with `tls: false`. The settings
//! are kept in `exports.json` in the state directory. Removing an export makes the
//! requests of clients still connected to it fail.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use ipnet::IpNet;
use nbd::{Backend, Export, FileBackend, Refusal};
use nix::fcntl::{Flock, FlockArg};
use repo::{BackupId, BackupImage, DEFAULT_CACHED_CHUNKS};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Level, Services};

/// The settings file in the state directory.
const EXPORTS_FILE: &str = "exports.json";
/// At most this many exports exist at once.
pub const MAX_EXPORTS: usize = 64;
/// Longest export name.
pub const MAX_NAME_LEN: usize = 64;

/// What an export serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExportSource {
    /// A disk or partition (by id, serial or kernel name).
    Device { device: String },
    /// The image of `device` in the held snapshot `snapshot` (read-only).
    Snapshot { snapshot: String, device: String },
    /// A backup, read from the repository (read-only).
    Backup { backup: String },
}

impl ExportSource {
    /// Whether this kind of source can take writes at all.
    fn writable(&self) -> bool {
        matches!(self, ExportSource::Device { .. })
    }
}

fn default_tls() -> bool {
    true
}

/// One export, as created and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportSpec {
    /// The name clients ask for (`nbds://appliance/<name>`): letters, digits, `.`, `_`
    /// and `-`, at most 64.
    pub name: String,
    pub source: ExportSource,
    /// Refuse writes (always so for snapshots and backups).
    #[serde(default)]
    pub read_only: bool,
    /// Client addresses or networks that may connect (`10.0.2.2`, `192.168.1.0/24`);
    /// at least one. `0.0.0.0/0` admits every IPv4 client, explicitly.
    #[schema(value_type = Vec<String>)]
    #[serde(deserialize_with = "deserialize_allow")]
    pub allow: Vec<IpNet>,
    /// Require TLS (`NBD_OPT_STARTTLS`); `false` only when explicitly chosen.
    #[serde(default = "default_tls")]
    pub tls: bool,
}

/// An address (`10.0.2.2`, `fd00::1`: that host only) or a network (`10.0.2.0/24`).
pub fn parse_client(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!(
                "\u{201c}{t}\u{201d} is not an IP address or network \
                 (for example 10.0.2.2, 192.168.1.0/24 or fd00::/64)"
            )
        })
}

fn deserialize_allow<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts
        .iter()
        .map(|t| parse_client(t).map_err(serde::de::Error::custom))
        .collect()
}

impl ExportSpec {
    fn admits(&self, peer: IpAddr) -> bool {
        let peer = canonical_ip(peer);
        self.allow.iter().any(|net| net.contains(&peer))
    }
}

/// An IPv4 client reached over an IPv6 socket is matched as IPv4.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An export and what it is doing now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExportView {
    #[serde(flatten)]
    pub spec: ExportSpec,
    /// What it serves, for people.
    pub description: String,
    /// Clients connected now.
    pub connections: usize,
}

/// Why an export cannot be created or found.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("an export name must be 1 to {MAX_NAME_LEN} letters, digits, '.', '_' or '-'")]
    BadName,
    #[error("an export needs at least one allowed client address or network (for example 10.0.2.2 or 192.168.1.0/24)")]
    NoClients,
    #[error("there is already an export named {0}")]
    Exists(String),
    #[error("there are already {MAX_EXPORTS} exports; remove one first")]
    TooMany,
    #[error("there is no export named {0}")]
    NotFound(String),
    #[error("{what} cannot be exported: {reason}")]
    Source { what: String, reason: String },
    #[error("{what} is exported as {export}; remove the export first")]
    InUse { what: String, export: String },
    #[error("cannot save the exports to {path}: {message}")]
    Save { path: PathBuf, message: String },
}

impl ExportError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            ExportError::BadName | ExportError::NoClients => "invalid_argument",
            ExportError::Exists(_) => "already_exists",
            ExportError::TooMany => "too_many_exports",
            ExportError::NotFound(_) => "export_not_found",
            ExportError::Source { .. } => "export_source_unusable",
            ExportError::InUse { .. } => "exported",
            ExportError::Save { .. } => "settings_not_saved",
        }
    }
}

/// Per-export connection count, and the flag that cuts clients off once it is removed.
#[derive(Debug, Default)]
struct Live {
    connections: AtomicUsize,
    removed: AtomicBool,
}

/// The export table.
#[derive(Debug)]
pub struct Exports {
    specs: Mutex<Vec<ExportSpec>>,
    live: Mutex<HashMap<String, Arc<Live>>>,
    file: Option<PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Exports {
    /// Loads the exports saved in `state_dir` (none without one; a damaged file is
    /// ignored and the warning says so).
    pub fn new(state_dir: Option<&Path>) -> (Exports, Option<String>) {
        let file = state_dir.map(|d| d.join(EXPORTS_FILE));
        let (specs, warning) = super::load_settings(file.as_deref(), "the damaged export settings");
        let exports = Exports {
            specs: Mutex::new(specs),
            live: Mutex::new(HashMap::new()),
            file,
        };
        (exports, warning)
    }

    /// Every export, by name.
    pub fn list(&self) -> Vec<ExportSpec> {
        let mut specs = lock(&self.specs).clone();
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        specs
    }

    /// The export `name`.
    pub fn get(&self, name: &str) -> Result<ExportSpec, ExportError> {
        lock(&self.specs)
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| ExportError::NotFound(name.to_owned()))
    }

    /// Clients connected to `name` now.
    pub fn connections(&self, name: &str) -> usize {
        lock(&self.live)
            .get(name)
            .map_or(0, |l| l.connections.load(Ordering::SeqCst))
    }

    /// The first export whose source `pred` matches, by name.
    pub fn referencing(&self, pred: impl Fn(&ExportSource) -> bool) -> Option<String> {
        lock(&self.specs)
            .iter()
            .find(|s| pred(&s.source))
            .map(|s| s.name.clone())
    }

    /// Adds `spec` (already checked against its source by the caller, see
    /// [`open_source`]).
    fn add(&self, spec: ExportSpec) -> Result<(), ExportError> {
        let mut specs = lock(&self.specs);
        if specs.iter().any(|s| s.name == spec.name) {
            return Err(ExportError::Exists(spec.name));
        }
        if specs.len() >= MAX_EXPORTS {
            return Err(ExportError::TooMany);
        }
        let mut next = specs.clone();
        next.push(spec);
        self.save(&next)?;
        *specs = next;
        Ok(())
    }

    /// Removes the export `name`; its connected clients' further requests fail.
    pub fn remove(&self, name: &str) -> Result<(), ExportError> {
        let mut specs = lock(&self.specs);
        let next: Vec<ExportSpec> = specs.iter().filter(|s| s.name != name).cloned().collect();
        if next.len() == specs.len() {
            return Err(ExportError::NotFound(name.to_owned()));
        }
        self.save(&next)?;
        *specs = next;
        if let Some(live) = lock(&self.live).remove(name) {
            live.removed.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    fn live(&self, name: &str) -> Arc<Live> {
        lock(&self.live).entry(name.to_owned()).or_default().clone()
    }

    fn save(&self, specs: &[ExportSpec]) -> Result<(), ExportError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        super::save_settings(file, &specs).map_err(|e| ExportError::Save {
            path: file.clone(),
            message: e.to_string(),
        })
    }
}

/// Checks `spec` (name, clients, and that its source opens now), canonicalises the
/// device to its stable id, and adds it. Blocking.
pub fn create(services: &Services, mut spec: ExportSpec) -> Result<ExportView, ExportError> {
    if !valid_name(&spec.name) {
        return Err(ExportError::BadName);
    }
    if spec.allow.is_empty() {
        return Err(ExportError::NoClients);
    }
    if !spec.source.writable() {
        spec.read_only = true;
    }
    let (backend, description) = open_source(services, &mut spec.source, spec.read_only)?;
    drop(backend);
    services.exports.add(spec.clone())?;
    services.events.record(
        Level::Info,
        "exports",
        format!(
            "NBD export {} created: {description}, {}, clients {}",
            spec.name,
            if spec.tls {
                "TLS required"
            } else {
                "without TLS"
            },
            allow_text(&spec.allow)
        ),
    );
    Ok(ExportView {
        spec,
        description,
        connections: 0,
    })
}

fn allow_text(allow: &[IpNet]) -> String {
    allow
        .iter()
        .map(IpNet::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The list with descriptions and connection counts (descriptions come from the
/// settings, nothing is opened).
pub fn views(services: &Services) -> Vec<ExportView> {
    services
        .exports
        .list()
        .into_iter()
        .map(|spec| view(services, spec))
        .collect()
}

/// One export with its description and connection count.
pub fn view(services: &Services, spec: ExportSpec) -> ExportView {
    ExportView {
        description: describe(&spec),
        connections: services.exports.connections(&spec.name),
        spec,
    }
}

fn describe(spec: &ExportSpec) -> String {
    let access = if spec.read_only {
        "read-only"
    } else {
        "read-write"
    };
    match &spec.source {
        ExportSource::Device { device } => format!("disk {device}, {access}"),
        ExportSource::Snapshot { snapshot, device } => {
            format!("{device} in snapshot {snapshot}, read-only")
        }
        ExportSource::Backup { backup } => format!("backup {backup}, read-only"),
    }
}

/// Opens what `source` names; a device is rewritten to its stable id. Returns the
/// backend and a description. Blocking.
pub fn open_source(
    services: &Services,
    source: &mut ExportSource,
    read_only: bool,
) -> Result<(Arc<dyn Backend>, String), ExportError> {
    match source {
        ExportSource::Device { device } => {
            let what = format!("disk {device}");
            let unusable = |reason: String| ExportError::Source {
                what: what.clone(),
                reason,
            };
            let dev = services
                .jobs
                .device(device)
                .map_err(|e| unusable(e.to_string()))?;
            if let Some(why) = dev.usage() {
                return Err(unusable(format!("it is in use in the appliance ({why})")));
            }
            // Difference storage of a snapshot holds an exclusive flock on its device; a
            // shared one here refuses such a disk, and keeps it from becoming difference
            // storage while a client uses it.
            let guard = std::fs::File::open(&dev.path)
                .map_err(|e| unusable(format!("cannot open {}: {e}", dev.path.display())))?;
            let guard =
                Flock::lock(guard, FlockArg::LockSharedNonblock).map_err(|(_, errno)| {
                    if errno == nix::errno::Errno::EWOULDBLOCK {
                        unusable("it is the difference storage of a snapshot".to_owned())
                    } else {
                        unusable(format!("cannot lock {}: {errno}", dev.path.display()))
                    }
                })?;
            let backend = FileBackend::open_direct(&dev.path, read_only)
                .map_err(|e| unusable(format!("cannot open {}: {e}", dev.path.display())))?
                .holding(guard);
            let access = if read_only { "read-only" } else { "read-write" };
            let description = format!("disk {} ({}), {access}", dev.label(), dev.name);
            *device = dev.id;
            Ok((Arc::new(backend), description))
        }
        ExportSource::Snapshot { snapshot, device } => {
            let what = format!("{device} in snapshot {snapshot}");
            let unusable = |reason: String| ExportError::Source {
                what: what.clone(),
                reason,
            };
            let (info, _) = services
                .jobs
                .snapshot(snapshot)
                .map_err(|e| unusable(e.to_string()))?;
            let member = info
                .devices
                .iter()
                .find(|d| {
                    d.device.id == *device
                        || d.device.name == *device
                        || d.device.serial.as_deref() == Some(device.as_str())
                })
                .ok_or_else(|| unusable("the snapshot does not hold that disk".to_owned()))?;
            let image = member
                .image
                .clone()
                .ok_or_else(|| unusable("the snapshot is not taken yet".to_owned()))?;
            let backend = FileBackend::open(&image, true)
                .map_err(|e| unusable(format!("cannot open {}: {e}", image.display())))?;
            let description = format!(
                "{} in snapshot {snapshot} ({}), read-only",
                member.device.label(),
                image.display()
            );
            *device = member.device.id.clone();
            Ok((Arc::new(backend), description))
        }
        ExportSource::Backup { backup } => {
            let what = format!("backup {backup}");
            let unusable = |reason: String| ExportError::Source {
                what: what.clone(),
                reason,
            };
            let id = BackupId::new(backup.as_str()).map_err(|e| unusable(e.to_string()))?;
            let (repo, _) = services
                .targets
                .repository()
                .map_err(|e| unusable(snapcore::chain(&e)))?;
            let image = BackupImage::open(repo, &id, DEFAULT_CACHED_CHUNKS)
                .map_err(|e| unusable(e.to_string()))?;
            let description = format!(
                "backup {backup} of {} ({} bytes), read-only",
                image.manifest().disk.serial.as_deref().unwrap_or("a disk"),
                image.size()
            );
            Ok((Arc::new(RepoBackend(image)), description))
        }
    }
}

/// A backup's image as a read-only NBD backend.
struct RepoBackend(BackupImage);

impl Backend for RepoBackend {
    fn size(&self) -> u64 {
        self.0.size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0
            .read_at(buf, offset)
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

/// A backend counted as one connection of its export while it lives; once the export
/// is removed every request fails with `ESHUTDOWN`.
struct Tracked {
    inner: Arc<dyn Backend>,
    live: Arc<Live>,
}

impl Tracked {
    fn new(inner: Arc<dyn Backend>, live: Arc<Live>) -> Self {
        live.connections.fetch_add(1, Ordering::SeqCst);
        Tracked { inner, live }
    }

    fn check(&self) -> io::Result<()> {
        if self.live.removed.load(Ordering::SeqCst) {
            Err(io::Error::from_raw_os_error(
                nix::errno::Errno::ESHUTDOWN as i32,
            ))
        } else {
            Ok(())
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.live.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Backend for Tracked {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn read_only(&self) -> bool {
        self.inner.read_only()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.check()?;
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check()?;
        self.inner.write_at(buf, offset)
    }

    fn flush(&self) -> io::Result<()> {
        self.check()?;
        self.inner.flush()
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check()?;
        self.inner.trim(offset, len)
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check()?;
        self.inner.write_zeroes(offset, len)
    }
}

/// The NBD server's view of the exports.
pub struct NbdCatalog {
    services: Weak<Services>,
}

impl NbdCatalog {
    /// The catalog of `services`' exports.
    pub fn new(services: &Arc<Services>) -> Self {
        NbdCatalog {
            services: Arc::downgrade(services),
        }
    }
}

impl nbd::Catalog for NbdCatalog {
    fn list(&self, peer: IpAddr, tls: bool) -> Vec<(String, String)> {
        let Some(services) = self.services.upgrade() else {
            return Vec::new();
        };
        services
            .exports
            .list()
            .into_iter()
            .filter(|s| s.admits(peer) && (tls || !s.tls))
            .map(|s| {
                let d = describe(&s);
                (s.name, d)
            })
            .collect()
    }

    fn open(&self, name: &str, peer: IpAddr, tls: bool) -> Result<Export, Refusal> {
        let services = self
            .services
            .upgrade()
            .ok_or_else(|| Refusal::Unavailable("the appliance is stopping".to_owned()))?;
        let spec = services.exports.get(name).map_err(|_| Refusal::Unknown)?;
        if !spec.admits(peer) {
            services.events.record(
                Level::Warning,
                "exports",
                format!("NBD client {peer} refused: not allowed to use export {name}"),
            );
            return Err(Refusal::NotAllowed(peer));
        }
        if spec.tls && !tls {
            return Err(Refusal::TlsRequired);
        }
        let mut source = spec.source.clone();
        let (backend, description) = open_source(&services, &mut source, spec.read_only)
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        services.events.record(
            Level::Info,
            "exports",
            format!(
                "NBD client {peer} opened export {name}{}",
                if tls { " over TLS" } else { "" }
            ),
        );
        let live = services.exports.live(name);
        Ok(Export {
            name: name.to_owned(),
            description,
            backend: Arc::new(Tracked::new(backend, live)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, allow: &[&str]) -> ExportSpec {
        ExportSpec {
            name: name.to_owned(),
            source: ExportSource::Backup {
                backup: "b1".to_owned(),
            },
            read_only: true,
            allow: allow.iter().map(|a| a.parse().unwrap()).collect(),
            tls: true,
        }
    }

    #[test]
    fn names_and_allow_lists() {
        assert!(valid_name("prod0-snap_1.x"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"a".repeat(MAX_NAME_LEN + 1)));
        let s = spec("x", &["10.0.2.2/32", "192.168.1.0/24"]);
        assert!(s.admits("10.0.2.2".parse().unwrap()));
        assert!(s.admits("192.168.1.77".parse().unwrap()));
        assert!(s.admits("::ffff:10.0.2.2".parse().unwrap()));
        assert!(!s.admits("10.0.2.3".parse().unwrap()));
        assert!(!spec("y", &[]).admits("10.0.2.2".parse().unwrap()));
        assert_eq!(
            parse_client(" 10.0.2.2 ").unwrap().to_string(),
            "10.0.2.2/32"
        );
        assert_eq!(parse_client("fd00::/64").unwrap().to_string(), "fd00::/64");
        assert!(parse_client("10.0.2")
            .unwrap_err()
            .contains("not an IP address"));
        let json = r#"{"name":"n","source":{"kind":"backup","backup":"b"},"allow":["10.0.2.2"]}"#;
        let parsed: ExportSpec = serde_json::from_str(json).unwrap();
        assert!(parsed.tls && !parsed.read_only);
        assert_eq!(parsed.allow, vec![parse_client("10.0.2.2/32").unwrap()]);
        let bad = r#"{"name":"n","source":{"kind":"backup","backup":"b"},"allow":["x"]}"#;
        let err = serde_json::from_str::<ExportSpec>(bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\u{201c}x\u{201d} is not an IP address"),
            "{err}"
        );
    }

    #[test]
    fn the_table_persists_refuses_duplicates_and_cuts_off_removed_exports() {
        let dir = tempfile::tempdir().unwrap();
        let (exports, warning) = Exports::new(Some(dir.path()));
        assert!(warning.is_none());
        exports.add(spec("a", &["10.0.2.2/32"])).unwrap();
        let err = exports.add(spec("a", &["10.0.2.2/32"])).unwrap_err();
        assert_eq!(err.code(), "already_exists");
        let (again, _) = Exports::new(Some(dir.path()));
        assert_eq!(again.list(), vec![spec("a", &["10.0.2.2/32"])]);

        let backend: Arc<dyn Backend> = Arc::new(Tracked::new(
            Arc::new(MemBackend(vec![5u8; 4096])),
            exports.live("a"),
        ));
        assert_eq!(exports.connections("a"), 1);
        let mut buf = [0u8; 4];
        backend.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [5; 4]);
        exports.remove("a").unwrap();
        let err = backend.read_at(&mut buf, 0).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(nix::errno::Errno::ESHUTDOWN as i32)
        );
        assert_eq!(exports.remove("a").unwrap_err().code(), "export_not_found");
        drop(backend);
        let (after, _) = Exports::new(Some(dir.path()));
        assert!(after.list().is_empty());
    }

    struct MemBackend(Vec<u8>);

    impl Backend for MemBackend {
        fn size(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            buf.copy_from_slice(&self.0[offset as usize..offset as usize + buf.len()]);
            Ok(())
        }
    }
}

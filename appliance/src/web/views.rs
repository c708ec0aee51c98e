//! The askama templates' data: one struct per page, every value already formatted for
//! display (templates hold no logic beyond loops and conditions).

use askama::Template;

use crate::api::model::{
    BackupView, DeviceView, EventView, FileView, JobView, SnapshotView, TargetStatusView, TokenView,
};
use crate::serve::certificate::CertificateInfo;
use crate::services::config_disk::ConfigDiskView;
use crate::services::exports::ExportView;
use crate::services::web::Flash;

/// What every page's frame shows.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    /// The navigation entry to highlight.
    pub nav: &'static str,
    pub csrf: String,
    pub flash: Vec<FlashView>,
    pub version: &'static str,
    /// Shown as a warning when settings live in memory.
    pub persistent: bool,
}

/// A flash message.
#[derive(Debug, Clone)]
pub struct FlashView {
    pub class: &'static str,
    pub text: String,
}

impl From<Flash> for FlashView {
    fn from(f: Flash) -> Self {
        FlashView {
            class: f.kind.class(),
            text: f.text,
        }
    }
}

/// A disk or partition row.
#[derive(Debug, Clone)]
pub struct DiskRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub size: String,
    pub model: String,
    pub serial: String,
    pub content: String,
    pub usage: String,
    pub is_partition: bool,
}

impl From<&DeviceView> for DiskRow {
    fn from(d: &DeviceView) -> Self {
        let mut content = Vec::new();
        if let Some(pt) = &d.partition_table {
            content.push(format!("{pt} partition table"));
        }
        if let Some(fs) = &d.fs_type {
            match &d.fs_label {
                Some(label) => content.push(format!("{fs} \u{201c}{label}\u{201d}")),
                None => content.push(fs.clone()),
            }
        }
        DiskRow {
            id: d.id.clone(),
            name: d.name.clone(),
            kind: d.kind.clone(),
            size: bytes(d.size_bytes),
            model: d.model.clone().unwrap_or_default(),
            serial: d.serial.clone().unwrap_or_default(),
            content: if content.is_empty() {
                "blank or unknown".to_owned()
            } else {
                content.join(", ")
            },
            usage: d.in_use.clone().unwrap_or_default(),
            is_partition: d.kind == "partition",
        }
    }
}

/// A job row with its progress.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: u64,
    pub kind: String,
    pub state: String,
    pub description: String,
    pub percent: u8,
    pub progress_text: String,
    pub created: String,
    pub finished: bool,
    pub error: String,
    pub summary: String,
    pub download: String,
    pub log: Vec<String>,
}

impl From<&JobView> for JobRow {
    fn from(j: &JobView) -> Self {
        JobRow {
            id: j.id,
            kind: j.kind.clone(),
            state: j.state.clone(),
            description: j.description.clone(),
            percent: j.progress.percent,
            progress_text: progress_text(j),
            created: time(j.created_unix),
            finished: j.finished,
            error: j
                .error
                .as_ref()
                .map(|e| format!("{} ({})", e.message, e.code))
                .unwrap_or_default(),
            summary: result_summary(j),
            download: j.download.clone().unwrap_or_default(),
            log: j.log.clone(),
        }
    }
}

/// `12.0 MiB of 64.0 MiB, 3.1 MiB/s, 17 s left` (the same text app.js writes).
pub fn progress_text(j: &JobView) -> String {
    let p = &j.progress;
    if j.finished {
        return format!("{} ({})", j.state, p.phase);
    }
    let mut text = format!(
        "{}: {} of {}",
        p.phase,
        bytes(p.done_bytes),
        bytes(p.total_bytes)
    );
    if p.bytes_per_sec > 0 {
        text.push_str(&format!(", {}/s", bytes(p.bytes_per_sec)));
    }
    if let Some(eta) = p.eta_secs {
        text.push_str(&format!(", {eta} s left"));
    }
    text
}

/// One line about a finished job's result.
fn result_summary(j: &JobView) -> String {
    let Some(r) = &j.result else {
        return String::new();
    };
    let s = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let n = |k: &str| r.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let sha = |k: &str| {
        let full = s(k);
        full.get(..16).map(|p| format!("{p}…")).unwrap_or(full)
    };
    match s("kind").as_str() {
        "backup" => format!(
            "{} backup {}: read {}, stored {} new; image SHA-256 {}",
            s("mode"),
            s("backup_id"),
            bytes(n("read_bytes")),
            bytes(n("stored_bytes")),
            if s("image_sha256").is_empty() {
                "(incremental)".to_owned()
            } else {
                sha("image_sha256")
            }
        ),
        "restore" => format!(
            "restored {} to {}; SHA-256 {}",
            bytes(n("image_size")),
            s("destination"),
            sha("image_sha256")
        ),
        "verify" => {
            let ok = r.get("ok").and_then(|v| v.as_bool()).unwrap_or(false);
            format!(
                "{}: {} of {} chunks checked",
                if ok { "backup is intact" } else { "DAMAGED" },
                n("checked_chunks"),
                n("chunk_count")
            )
        }
        "export" => format!(
            "exported {} as {} ({}); SHA-256 {}",
            s("backup_id"),
            s("format"),
            bytes(n("file_size")),
            sha("image_sha256")
        ),
        _ => String::new(),
    }
}

/// A backup row.
#[derive(Debug, Clone)]
pub struct BackupRow {
    pub id: String,
    pub kind: String,
    pub disk: String,
    pub size: String,
    pub stored: String,
    pub created: String,
}

impl From<&BackupView> for BackupRow {
    fn from(b: &BackupView) -> Self {
        let disk = match (&b.disk.serial, &b.disk.name) {
            (Some(serial), Some(name)) => format!("{serial} ({name})"),
            (Some(serial), None) => serial.clone(),
            (None, Some(name)) => name.clone(),
            (None, None) => "?".to_owned(),
        };
        BackupRow {
            id: b.backup_id.clone(),
            kind: b.kind.clone(),
            disk,
            size: bytes(b.image_size),
            stored: bytes(b.stored_bytes),
            created: b.created.replace('T', " ").replace('Z', " UTC"),
        }
    }
}

/// A snapshot row.
#[derive(Debug, Clone)]
pub struct SnapshotRow {
    pub id: String,
    pub state: String,
    pub devices: String,
    pub images: Vec<String>,
    pub storage: String,
    pub created: String,
    pub job: String,
    pub error: String,
    pub events: Vec<String>,
}

impl From<&SnapshotView> for SnapshotRow {
    fn from(s: &SnapshotView) -> Self {
        SnapshotRow {
            id: s.id.clone(),
            state: s.state.clone(),
            devices: s
                .devices
                .iter()
                .map(|d| format!("{} ({})", d.name, d.device_id))
                .collect::<Vec<_>>()
                .join(", "),
            images: s.devices.iter().filter_map(|d| d.image.clone()).collect(),
            storage: format!(
                "{}: {} of {} given{}",
                s.storage.description,
                bytes(s.storage.given_bytes),
                bytes(s.storage.total_bytes),
                if s.storage.exhausted {
                    ", EXHAUSTED"
                } else {
                    ""
                }
            ),
            created: time(s.created_unix),
            job: s.job.map(|j| j.to_string()).unwrap_or_default(),
            error: s
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default(),
            events: s.events.clone(),
        }
    }
}

/// The target box.
#[derive(Debug, Clone)]
pub struct TargetBox {
    pub ok: bool,
    pub what: String,
    pub origin: &'static str,
    pub root: String,
    pub free: String,
    pub total: String,
    pub used_percent: u8,
    pub error: String,
    /// For the settings form.
    pub kind: &'static str,
    pub device: String,
    pub path: String,
}

impl From<&TargetStatusView> for TargetBox {
    fn from(t: &TargetStatusView) -> Self {
        use crate::api::model::TargetConfigView as C;
        let (kind, device, path, what) = match &t.config {
            C::Device { device } => (
                "device",
                device.clone(),
                String::new(),
                format!("disk {device}"),
            ),
            C::Directory { path } => (
                "directory",
                String::new(),
                path.clone(),
                format!("directory {path}"),
            ),
            C::Nfs(nfs) => (
                "nfs",
                String::new(),
                String::new(),
                format!("NFS {}", nfs.source_name()),
            ),
            C::S3(s3) => (
                "s3",
                String::new(),
                String::new(),
                format!(
                    "S3 {}/{}/{} (restored files: local default directory)",
                    s3.endpoint, s3.bucket, s3.prefix
                ),
            ),
        };
        let used_percent = match (t.free_bytes, t.total_bytes) {
            (Some(free), Some(total)) if total > 0 => {
                u8::try_from((total.saturating_sub(free)) * 100 / total).unwrap_or(100)
            }
            _ => 0,
        };
        TargetBox {
            ok: t.ok,
            what,
            origin: if t.configured {
                "chosen in settings"
            } else {
                "default"
            },
            root: t.root.clone().unwrap_or_default(),
            free: t.free_bytes.map(bytes).unwrap_or_default(),
            total: t.total_bytes.map(bytes).unwrap_or_default(),
            used_percent,
            error: t
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default(),
            kind,
            device,
            path,
        }
    }
}

/// An event row.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub time: String,
    pub level: String,
    pub message: String,
}

impl From<&EventView> for EventRow {
    fn from(e: &EventView) -> Self {
        EventRow {
            time: time(e.time_unix),
            level: e.level.clone(),
            message: e.message.clone(),
        }
    }
}

/// A file row.
#[derive(Debug, Clone)]
pub struct FileRow {
    pub area: String,
    pub name: String,
    pub size: String,
    pub modified: String,
    pub download: String,
}

impl From<&FileView> for FileRow {
    fn from(f: &FileView) -> Self {
        FileRow {
            area: f.area.clone(),
            name: f.name.clone(),
            size: bytes(f.size_bytes),
            modified: time(f.modified_unix),
            download: f.download.clone(),
        }
    }
}

/// A device choice in a form.
#[derive(Debug, Clone)]
pub struct DeviceChoice {
    pub id: String,
    pub label: String,
    /// Preselected.
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "login.html", config = "../webui/askama.toml")]
pub struct LoginPage {
    pub next: String,
    pub error: String,
    /// The CSRF token bound to the browser's pre-session nonce.
    pub csrf: String,
    pub version: &'static str,
}

#[derive(Template)]
#[template(path = "dashboard.html", config = "../webui/askama.toml")]
pub struct DashboardPage {
    pub layout: Layout,
    pub module_loaded: bool,
    pub disks: Vec<DiskRow>,
    pub snapshots: Vec<SnapshotRow>,
    pub jobs: Vec<JobRow>,
    pub backups: Vec<BackupRow>,
    pub backups_error: String,
    pub target: TargetBox,
    pub events: Vec<EventRow>,
}

#[derive(Template)]
#[template(path = "disks.html", config = "../webui/askama.toml")]
pub struct DisksPage {
    pub layout: Layout,
    pub disks: Vec<DiskRow>,
    pub error: String,
}

#[derive(Template)]
#[template(path = "disk.html", config = "../webui/askama.toml")]
pub struct DiskPage {
    pub layout: Layout,
    pub disk: DiskRow,
    pub facts: Vec<(String, String)>,
    pub scratch: Vec<DeviceChoice>,
    pub backups: Vec<BackupRow>,
}

#[derive(Template)]
#[template(path = "snapshots.html", config = "../webui/askama.toml")]
pub struct SnapshotsPage {
    pub layout: Layout,
    pub snapshots: Vec<SnapshotRow>,
    pub devices: Vec<DeviceChoice>,
    pub scratch: Vec<DeviceChoice>,
}

#[derive(Template)]
#[template(path = "snapshot.html", config = "../webui/askama.toml")]
pub struct SnapshotPage {
    pub layout: Layout,
    pub snapshot: SnapshotRow,
}

#[derive(Template)]
#[template(path = "jobs.html", config = "../webui/askama.toml")]
pub struct JobsPage {
    pub layout: Layout,
    pub jobs: Vec<JobRow>,
}

#[derive(Template)]
#[template(path = "job.html", config = "../webui/askama.toml")]
pub struct JobPage {
    pub layout: Layout,
    pub job: JobRow,
}

#[derive(Template)]
#[template(path = "backups.html", config = "../webui/askama.toml")]
pub struct BackupsPage {
    pub layout: Layout,
    pub backups: Vec<BackupRow>,
    pub repository: String,
    pub error: String,
    pub devices: Vec<DeviceChoice>,
    pub scratch: Vec<DeviceChoice>,
    pub files: Vec<FileRow>,
}

#[derive(Template)]
#[template(path = "backup.html", config = "../webui/askama.toml")]
pub struct BackupPage {
    pub layout: Layout,
    pub backup: BackupRow,
    pub facts: Vec<(String, String)>,
    pub devices: Vec<DeviceChoice>,
}

#[derive(Template)]
#[template(path = "settings.html", config = "../webui/askama.toml")]
pub struct SettingsPage {
    pub layout: Layout,
    pub target: TargetBox,
    pub devices: Vec<DeviceChoice>,
    pub tokens: Vec<TokenRow>,
    /// The HTTPS certificate, when this daemon serves HTTPS.
    pub certificate: Option<CertificateBox>,
    /// Where settings are kept.
    pub config_disk: ConfigDiskView,
    /// Disks that could become the config disk.
    pub config_choices: Vec<DeviceChoice>,
}

/// The HTTPS certificate on the settings page.
pub struct CertificateBox {
    pub subject: String,
    pub issuer: String,
    pub self_signed: bool,
    pub names: String,
    pub valid: String,
    pub fingerprint: String,
}

impl From<&CertificateInfo> for CertificateBox {
    fn from(c: &CertificateInfo) -> Self {
        CertificateBox {
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            self_signed: c.self_signed,
            names: c.names.join(", "),
            valid: format!(
                "{} to {}",
                time_signed(c.not_before_unix),
                time_signed(c.not_after_unix)
            ),
            fingerprint: c.fingerprint_sha256.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "exports.html", config = "../webui/askama.toml")]
pub struct ExportsPage {
    pub layout: Layout,
    pub exports: Vec<ExportRow>,
    /// Disks and partitions that can be exported.
    pub devices: Vec<DeviceChoice>,
    /// Taken snapshot images, as `snapshot id/device id`.
    pub images: Vec<DeviceChoice>,
    /// Backups in the repository.
    pub backups: Vec<DeviceChoice>,
    /// Why the backups cannot be listed ("" when they can).
    pub backups_error: String,
    /// Whether the NBD server runs (and so its CA certificate can be downloaded).
    pub ca_available: bool,
    /// The host name clients use, as the browser reached the appliance.
    pub host: String,
}

/// An NBD export row.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub name: String,
    pub description: String,
    pub access: &'static str,
    pub tls: bool,
    pub allow: String,
    pub connections: usize,
    /// `nbds://host:10809/name` (`nbd://` without TLS).
    pub url: String,
}

impl ExportRow {
    /// The row of `view`, with the client URL for `host`.
    pub fn new(view: &ExportView, host: &str) -> Self {
        let spec = &view.spec;
        ExportRow {
            name: spec.name.clone(),
            description: view.description.clone(),
            access: if spec.read_only {
                "read-only"
            } else {
                "read-write"
            },
            tls: spec.tls,
            allow: spec
                .allow
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            connections: view.connections,
            url: client_url(host, &spec.name, spec.tls),
        }
    }
}

/// The NBD port.
pub const NBD_PORT: u16 = 10809;

/// `nbds://host:10809/name`, or `nbd://` when TLS is not required.
pub fn client_url(host: &str, name: &str, tls: bool) -> String {
    let scheme = if tls { "nbds" } else { "nbd" };
    format!("{scheme}://{host}:{NBD_PORT}/{name}")
}

/// The host part of a `Host` header (`appliance:8443` → `appliance`, `[::1]:8443` →
/// `[::1]`); `APPLIANCE` when there is none usable.
pub fn host_part(header: Option<&str>) -> String {
    let header = header.unwrap_or("").trim();
    let host = if header.starts_with('[') {
        header.find(']').map_or("", |end| &header[..=end])
    } else {
        header.split(':').next().unwrap_or("")
    };
    let usable = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    if usable {
        host.to_owned()
    } else {
        "APPLIANCE".to_owned()
    }
}

/// An API token row.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub created: String,
}

impl From<&TokenView> for TokenRow {
    fn from(t: &TokenView) -> Self {
        TokenRow {
            id: t.id.clone(),
            name: t.name.clone(),
            created: time(t.created_unix),
        }
    }
}

#[derive(Template)]
#[template(path = "message.html", config = "../webui/askama.toml")]
pub struct MessagePage {
    pub layout: Layout,
    pub text: String,
}

/// `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// [`time`] of a signed time stamp (as X.509 validity has); before 1970 shows as nothing.
pub fn time_signed(unix: i64) -> String {
    time(u64::try_from(unix).unwrap_or(0))
}

/// `2025-01-02 03:04:05 UTC`.
pub fn time(unix: u64) -> String {
    if unix == 0 {
        return String::new();
    }
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// HTML-escapes text for the few places that build HTML by hand.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(64 << 20), "64.0 MiB");
        assert_eq!(time(0), "");
        assert_eq!(time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(time(1_735_787_045), "2025-01-02 03:04:05 UTC");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(host_part(Some("10.0.2.15:8443")), "10.0.2.15");
        assert_eq!(host_part(Some("appliance.lan")), "appliance.lan");
        assert_eq!(host_part(Some("[fe80::1]:8443")), "[fe80::1]");
        assert_eq!(host_part(Some("<x>")), "APPLIANCE");
        assert_eq!(host_part(None), "APPLIANCE");
        assert_eq!(client_url("h", "vm1", true), "nbds://h:10809/vm1");
        assert_eq!(client_url("h", "vm1", false), "nbd://h:10809/vm1");
    }
}

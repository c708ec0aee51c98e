//! `/init` of the harness self-test VM.
//!
//! Mounts the early filesystems, loads every module named in
//! `/lib/modules/<release>/modules.load` (written by `images/mkinitramfs.sh`), waits for
//! `harness.disks=<n>` disks with serials (default 0), prints one line per non-empty
//! `/sys/block` entry, with `harness.sha256=<serial>` the SHA-256 of that disk's content
//! (`HARNESS-INIT: sha256 <serial> <hex>`), then `HARNESS-INIT: done`, and powers off.
//!
//! Output lines start with `HARNESS-INIT:` so the host can find them among kernel messages.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sysboot::{cmdline, console, modules, mounts, power};

const TAG: &str = "HARNESS-INIT:";

fn say(line: &str) {
    console::log(&format!("{TAG} {line}"));
}

fn main() {
    if let Err(err) = run() {
        say(&format!("FAILED: {err}"));
    }
    power::sync_and_poweroff();
}

fn run() -> Result<(), String> {
    mounts::mount_early().map_err(|e| error_chain(&e))?;
    let args = cmdline::read().map_err(|e| error_chain(&e))?;
    let release = modules::kernel_release().map_err(|e| error_chain(&e))?;
    say(&format!("kernel {release}, uptime {}", uptime()));
    load_modules(&Path::new("/lib/modules").join(&release))?;
    let wanted: usize = args
        .get("harness.disks")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let disks = wait_for_disks(wanted, Duration::from_secs(30));
    for (name, serial) in &disks {
        say(&format!("disk {name} serial={serial}"));
    }
    if let Some(wanted) = args.get("harness.sha256") {
        let (name, _) = disks
            .iter()
            .find(|(_, serial)| serial == wanted)
            .ok_or_else(|| format!("no disk with serial {wanted}"))?;
        let digest = sha256_of(&Path::new("/dev").join(name))?;
        say(&format!("sha256 {wanted} {digest}"));
    }
    say(&format!("uptime {}", uptime()));
    say("done");
    Ok(())
}

fn load_modules(root: &Path) -> Result<(), String> {
    let index = modules::ModuleIndex::open(root).map_err(|e| error_chain(&e))?;
    let listed = index.listed().map_err(|e| error_chain(&e))?.len();
    let failures = index.load_listed().map_err(|e| error_chain(&e))?;
    for (name, err) in &failures {
        say(&format!("module {name}: {}", error_chain(err)));
    }
    say(&format!(
        "loaded {} of {listed} modules",
        listed - failures.len()
    ));
    Ok(())
}

/// `(name, serial)` of every `/sys/block` entry, sorted by name, once at least `wanted`
/// have a serial or `timeout` passed.
fn wait_for_disks(wanted: usize, timeout: Duration) -> Vec<(String, String)> {
    let deadline = Instant::now() + timeout;
    loop {
        let disks = block_devices();
        let with_serial = disks.iter().filter(|(_, s)| !s.is_empty()).count();
        if with_serial >= wanted || Instant::now() >= deadline {
            return disks;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Block devices with a non-zero size (unbound loop devices left out).
fn block_devices() -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut disks: Vec<(String, String)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("size")).is_ok_and(|size| size.trim() != "0")
        })
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let serial = serial_of(&e.path());
            (name, serial)
        })
        .collect();
    disks.sort();
    disks
}

/// virtio-blk exposes `serial`; SCSI disks carry it in VPD page 0x80.
fn serial_of(dev: &Path) -> String {
    let candidates: [PathBuf; 2] = [dev.join("serial"), dev.join("device/vpd_pg80")];
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            // VPD page 0x80: 4-byte header, then the serial.
            let body = if path.ends_with("vpd_pg80") && bytes.len() > 4 {
                &bytes[4..]
            } else {
                &bytes[..]
            };
            let text = String::from_utf8_lossy(body).trim().to_owned();
            if !text.is_empty() {
                return text;
            }
        }
    }
    String::new()
}

/// SHA-256 of everything `path` holds, read in 1 MiB pieces, as hex.
fn sha256_of(path: &Path) -> Result<String, String> {
    use sha2::Digest as _;
    use std::io::Read;
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let mut hash = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(|s| format!("{s} s")))
        .unwrap_or_else(|| "?".into())
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

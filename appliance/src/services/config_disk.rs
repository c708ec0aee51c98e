//! Making a config disk from the running appliance: a blank disk the admin picks is
//! formatted ext4 with the label `APPLIANCE-CONFIG` and mounted on the state directory,
//! and the settings made so far (kept in memory until then) move onto it. From then on
//! they survive power-offs; the next boot finds the disk by its label.
//!
//! Order: checks (the disk exists; is not mounted, held, snapshotted, a snapshot's
//! difference storage ([`snapcore::JobManager::why_busy`]) or exported; is not read-only or
//! too small; and is blank unless `overwrite`) → an exclusive `flock` on the device node
//! (the one snapshot sessions take for their storage) → `mkfs.ext4` → the in-memory state
//! directory is bind-mounted aside → the new filesystem is mounted on the state directory
//! → every file is copied over unless the disk already has a newer one (a setting saved
//! meanwhile lands on the disk) → synced → the aside mount is dropped.

use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::Serialize;
use snapcore::devices::{self, Device};
use snapcore::DeviceError;
use snapcore::Scanner;
use utoipa::ToSchema;

use super::exports::ExportSource;
use super::Services;
use crate::init::configdisk::LABEL;

/// The smallest config disk accepted.
pub const MIN_BYTES: u64 = 8 << 20;
/// Where the in-memory state directory stays reachable while its files move.
const ASIDE: &str = "/run/appliance/state-in-memory";

/// Why no config disk was made.
#[derive(Debug, thiserror::Error)]
pub enum ConfigDiskError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Settings already survive restarts (`where`: "on vdb ..." or "in /dir").
    #[error("settings are already kept {0}")]
    AlreadyPersistent(String),
    #[error("this daemon has no state directory")]
    NoStateDir,
    #[error("{device} is in use: {usage}")]
    InUse { device: String, usage: String },
    #[error("{device} holds {content}; tick overwrite (\"overwrite\": true) to format it anyway")]
    HasData { device: String, content: String },
    #[error("{device} is too small for settings ({size} bytes; at least {MIN_BYTES})")]
    TooSmall { device: String, size: u64 },
    #[error("{0} is read-only")]
    ReadOnly(String),
    #[error("formatting {device} failed: {reason}")]
    Format { device: String, reason: String },
    #[error("moving the settings onto {device} failed: {reason}")]
    Move { device: String, reason: String },
}

impl ConfigDiskError {
    /// The stable API code.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigDiskError::Device(e) => e.code(),
            ConfigDiskError::AlreadyPersistent(_) => "config_disk_exists",
            ConfigDiskError::NoStateDir => "invalid_state",
            ConfigDiskError::InUse { .. } => "device_busy",
            ConfigDiskError::HasData { .. } => "storage_has_data",
            ConfigDiskError::TooSmall { .. } | ConfigDiskError::ReadOnly(_) => "invalid_argument",
            ConfigDiskError::Format { .. } => "format_failed",
            ConfigDiskError::Move { .. } => "settings_not_saved",
        }
    }
}

/// Where settings are kept.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConfigDiskView {
    /// Settings survive a power-off.
    pub persistent: bool,
    /// The device the state directory is on, when it is a disk.
    pub device: Option<String>,
    /// The state directory.
    pub state_dir: Option<String>,
}

/// The device mounted on `path`, per this system's mount table.
pub fn mounted_on(path: &Path) -> Option<String> {
    Scanner::system().mount_at(path).map(|m| m.source)
}

/// Where settings are kept now.
pub fn view(services: &Services) -> ConfigDiskView {
    ConfigDiskView {
        persistent: services.persistent(),
        device: services.config_device(),
        state_dir: services.state_dir.as_ref().map(|p| p.display().to_string()),
    }
}

/// Formats `query` (id, serial or kernel name) as the config disk and moves the settings
/// onto it.
pub fn adopt(
    services: &Services,
    query: &str,
    overwrite: bool,
) -> Result<ConfigDiskView, ConfigDiskError> {
    let state_dir = services
        .state_dir
        .clone()
        .ok_or(ConfigDiskError::NoStateDir)?;
    if services.persistent() {
        return Err(ConfigDiskError::AlreadyPersistent(
            match services.config_device() {
                Some(device) => format!("on {device}"),
                None => format!("in {}", state_dir.display()),
            },
        ));
    }
    let all = services.jobs.scanner().scan()?;
    let dev = devices::find(&all, query)?.clone();
    check(services, &dev, &all, overwrite)?;
    let label = dev.label();
    let node = fs::File::open(&dev.path).map_err(|e| ConfigDiskError::InUse {
        device: label.clone(),
        usage: format!("cannot open {}: {e}", dev.path.display()),
    })?;
    // Snapshot sessions claim their storage with the same lock: neither takes the other's.
    let claimed =
        Flock::lock(node, FlockArg::LockExclusiveNonblock).map_err(|_| ConfigDiskError::InUse {
            device: label.clone(),
            usage: "a snapshot's difference storage or an NBD export holds it".to_owned(),
        })?;
    format(&dev)?;
    move_settings(&dev, &state_dir).map_err(|e| ConfigDiskError::Move {
        device: label.clone(),
        reason: e.to_string(),
    })?;
    drop(claimed);
    services.set_config_device(format!("{label} ({LABEL})"));
    Ok(view(services))
}

fn check(
    services: &Services,
    dev: &Device,
    all: &[Device],
    overwrite: bool,
) -> Result<(), ConfigDiskError> {
    let label = dev.label();
    let mut usage: Vec<String> = services.jobs.why_busy(dev, all).into_iter().collect();
    let exported = services.exports.referencing(|s| match s {
        ExportSource::Device { device } => {
            *device == dev.id || *device == dev.name || dev.serial.as_deref() == Some(device)
        }
        _ => false,
    });
    if let Some(name) = exported {
        usage.push(format!("it is exported over NBD as {name}"));
    }
    if !usage.is_empty() {
        return Err(ConfigDiskError::InUse {
            device: label,
            usage: usage.join("; "),
        });
    }
    if dev.read_only {
        return Err(ConfigDiskError::ReadOnly(label));
    }
    if dev.size_bytes < MIN_BYTES {
        return Err(ConfigDiskError::TooSmall {
            device: label,
            size: dev.size_bytes,
        });
    }
    match dev.data() {
        Some(content) if !overwrite => Err(ConfigDiskError::HasData {
            device: label,
            content,
        }),
        _ => Ok(()),
    }
}

fn format(dev: &Device) -> Result<(), ConfigDiskError> {
    let failed = |reason: String| ConfigDiskError::Format {
        device: dev.label(),
        reason,
    };
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", LABEL, "-E", "lazy_itable_init=0"])
        .arg(&dev.path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(format!("cannot run mkfs.ext4: {e}")))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(failed(format!("mkfs.ext4 {}: {said}", out.status)));
    }
    Ok(())
}

fn move_settings(dev: &Device, state_dir: &Path) -> io::Result<()> {
    let aside = PathBuf::from(ASIDE);
    fs::create_dir_all(&aside)?;
    mount(
        Some(state_dir),
        &aside,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let moved = mount(
        Some(&dev.path),
        state_dir,
        Some("ext4"),
        flags,
        None::<&str>,
    )
    .map_err(io::Error::from)
    .and_then(|()| {
        let copied = copy_missing(&aside, state_dir);
        fs::set_permissions(state_dir, fs::Permissions::from_mode(0o700))?;
        copied
    })
    .and_then(|()| sync_dir(state_dir));
    let _ = umount2(&aside, MntFlags::MNT_DETACH);
    moved
}

/// Copies every file of `from` into `to` (recursively) that `to` does not have yet,
/// keeping the permission bits, each file synced.
fn copy_missing(from: &Path, to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = entry.metadata()?;
        if meta.is_dir() {
            if !dst.exists() {
                fs::create_dir(&dst)?;
                fs::set_permissions(&dst, meta.permissions())?;
            }
            copy_missing(&src, &dst)?;
        } else if meta.is_file() {
            let mut out = match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(meta.permissions().mode() & 0o777)
                .open(&dst)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            io::copy(&mut fs::File::open(&src)?, &mut out)?;
            out.sync_all()?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    let f = fs::File::open(dir)?;
    nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_copied_and_newer_ones_kept() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        fs::write(from.path().join("password.argon2"), "old hash").unwrap();
        fs::set_permissions(
            from.path().join("password.argon2"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        fs::write(from.path().join("api-tokens.json"), "[]").unwrap();
        fs::create_dir(from.path().join("sub")).unwrap();
        fs::write(from.path().join("sub/x"), "x").unwrap();
        // Saved on the disk while the move ran: it wins.
        fs::write(to.path().join("api-tokens.json"), "[\"newer\"]").unwrap();
        copy_missing(from.path(), to.path()).unwrap();
        assert_eq!(
            fs::read_to_string(to.path().join("password.argon2")).unwrap(),
            "old hash"
        );
        let mode = fs::metadata(to.path().join("password.argon2"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            fs::read_to_string(to.path().join("api-tokens.json")).unwrap(),
            "[\"newer\"]"
        );
        assert_eq!(fs::read_to_string(to.path().join("sub/x")).unwrap(), "x");
    }
}

//! The config disk: an ext4 filesystem labelled `APPLIANCE-CONFIG`, mounted on the state
//! directory. Without one the state directory stays in the initramfs (memory).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount, MsFlags};

use super::log;

/// The label users give the config filesystem.
pub const LABEL: &str = "APPLIANCE-CONFIG";
/// Where settings live.
pub const STATE_DIR: &str = "/var/lib/appliance";
/// How long to keep looking for disks that are still being probed.
const SETTLE: Duration = Duration::from_millis(1500);

/// Offset of the ext2/3/4 superblock.
const SB_OFFSET: usize = 1024;
/// `s_magic` within the superblock.
const SB_MAGIC: usize = 56;
/// `s_volume_name` within the superblock.
const SB_LABEL: usize = 120;
/// The ext magic number.
const EXT_MAGIC: u16 = 0xEF53;

/// The state directory in use.
#[derive(Debug, Clone)]
pub struct StateDir {
    /// Its path.
    pub path: PathBuf,
    /// The config disk mounted there, if any.
    pub device: Option<PathBuf>,
}

impl StateDir {
    /// Whether settings survive a power off.
    pub fn persistent(&self) -> bool {
        self.device.is_some()
    }
}

/// Mounts the config disk on [`STATE_DIR`] when there is one.
pub fn prepare() -> StateDir {
    let path = PathBuf::from(STATE_DIR);
    if let Err(err) = std::fs::create_dir_all(&path) {
        log(&format!("config disk: cannot create {STATE_DIR}: {err}"));
    }
    let deadline = Instant::now() + SETTLE;
    let device = loop {
        if let Some(device) = find_by_label(LABEL) {
            break Some(device);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let Some(device) = device else {
        log(&format!(
            "config disk: none labelled {LABEL}; settings are kept in memory"
        ));
        return StateDir { path, device: None };
    };
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    match mount(Some(&device), &path, Some("ext4"), flags, None::<&str>) {
        Ok(()) => {
            log(&format!(
                "config disk: {} ({LABEL}) mounted on {STATE_DIR}",
                device.display()
            ));
            StateDir {
                path,
                device: Some(device),
            }
        }
        Err(err) => {
            log(&format!(
                "config disk: mounting {} failed: {err}; settings are kept in memory",
                device.display()
            ));
            StateDir { path, device: None }
        }
    }
}

/// Unmounts the config disk (at shutdown): the one found at boot, or one the daemon
/// formatted and mounted since (`state.device` does not know it).
pub fn release(state: &StateDir) {
    let device = state
        .device
        .as_ref()
        .map(|d| d.display().to_string())
        .or_else(|| crate::services::config_disk::mounted_on(&state.path));
    if let Some(device) = device {
        match umount(&state.path) {
            Ok(()) => log(&format!("shutdown: config disk {device} unmounted")),
            Err(err) => log(&format!(
                "shutdown: unmounting the config disk failed: {err} (synced anyway)"
            )),
        }
    }
}

/// The block device holding an ext filesystem labelled `label`.
pub fn find_by_label(label: &str) -> Option<PathBuf> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/block")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| {
            !["ram", "loop", "sr", "zram", "blksnap"]
                .iter()
                .any(|p| name.starts_with(p))
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| Path::new("/dev").join(name))
        .find(|dev| read_ext_label(dev).as_deref() == Some(label))
}

fn read_ext_label(dev: &Path) -> Option<String> {
    let file = File::open(dev).ok()?;
    let mut buf = [0u8; SB_OFFSET + 256];
    file.read_exact_at(&mut buf, 0).ok()?;
    ext_label(&buf)
}

/// The volume label of an ext2/3/4 filesystem whose first bytes are `head`.
pub fn ext_label(head: &[u8]) -> Option<String> {
    let sb = head.get(SB_OFFSET..SB_OFFSET + 256)?;
    let magic = u16::from_le_bytes([sb[SB_MAGIC], sb[SB_MAGIC + 1]]);
    if magic != EXT_MAGIC {
        return None;
    }
    let raw = &sb[SB_LABEL..SB_LABEL + 16];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    Some(String::from_utf8_lossy(&raw[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn synthetic_superblock() {
        let mut head = vec![0u8; 2048];
        head[SB_OFFSET + SB_MAGIC..SB_OFFSET + SB_MAGIC + 2]
            .copy_from_slice(&EXT_MAGIC.to_le_bytes());
        head[SB_OFFSET + SB_LABEL..SB_OFFSET + SB_LABEL + 16].copy_from_slice(LABEL.as_bytes());
        assert_eq!(ext_label(&head).as_deref(), Some(LABEL));
        head[SB_OFFSET + SB_MAGIC] = 0;
        assert_eq!(ext_label(&head), None);
        assert_eq!(ext_label(&head[..100]), None);
    }

    /// Reads the label of a filesystem made by the real mkfs.ext4 (skipped without it).
    #[test]
    fn real_mkfs_label() {
        let dir = std::env::temp_dir();
        let img = dir.join(format!("appliance-cfgdisk-{}.img", std::process::id()));
        let made = std::fs::File::create(&img).and_then(|f| f.set_len(8 << 20));
        if made.is_err() {
            return;
        }
        let status = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", LABEL])
            .arg(&img)
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("mkfs.ext4 unavailable, skipped");
            let _ = std::fs::remove_file(&img);
            return;
        }
        assert_eq!(read_ext_label(&img).as_deref(), Some(LABEL));
        let _ = std::fs::remove_file(&img);
    }
}

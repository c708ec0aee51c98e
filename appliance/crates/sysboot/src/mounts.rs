//! The table of early pseudo-filesystem mounts.
//!
//! [`mount_early`] walks [`EARLY_MOUNTS`] in order. A step whose target is already a mount
//! point (listed in `/proc/self/mounts`) is skipped, and `EBUSY` counts as done, so calling
//! it twice, or after the kernel or an initramfs already mounted some of them, is harmless.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

use crate::Error;

/// One mount: what to mount where, with which flags and options.
#[derive(Debug, Clone, Copy)]
pub struct MountSpec {
    /// Short name used in errors and logs.
    pub step: &'static str,
    /// The `source` argument (for pseudo filesystems, a descriptive name).
    pub source: &'static str,
    /// The mount point; created with mode 0755 if missing.
    pub target: &'static str,
    /// The filesystem type.
    pub fstype: &'static str,
    /// Mount flags.
    pub flags: MsFlags,
    /// Filesystem-specific options, empty for none.
    pub data: &'static str,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// The early mounts, in the order they are made (parents before children).
pub const EARLY_MOUNTS: &[MountSpec] = &[
    MountSpec {
        step: "proc",
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    MountSpec {
        step: "sys",
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    MountSpec {
        step: "dev",
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID,
        data: "mode=0755",
    },
    MountSpec {
        step: "dev/pts",
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: "mode=0620,ptmxmode=0666",
    },
    MountSpec {
        step: "dev/shm",
        source: "shm",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=1777",
    },
    MountSpec {
        step: "run",
        source: "run",
        target: "/run",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=0755",
    },
    MountSpec {
        step: "tmp",
        source: "tmp",
        target: "/tmp",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=1777",
    },
];

/// Mounts proc, sysfs, devtmpfs (with `/dev/pts` and `/dev/shm`), and tmpfs on `/run`
/// and `/tmp`. Idempotent; the error names the step that failed.
pub fn mount_early() -> Result<(), Error> {
    for spec in EARLY_MOUNTS {
        mount_one(spec)?;
    }
    Ok(())
}

/// Makes one mount unless its target is already a mount point.
pub fn mount_one(spec: &MountSpec) -> Result<(), Error> {
    if is_mount_point(spec.target) {
        return Ok(());
    }
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(spec.target)
    {
        Ok(()) => {}
        Err(source) => {
            return Err(Error::MountPoint {
                step: spec.step,
                source,
            })
        }
    }
    let data = if spec.data.is_empty() {
        None
    } else {
        Some(spec.data)
    };
    match mount(
        Some(spec.source),
        spec.target,
        Some(spec.fstype),
        spec.flags,
        data,
    ) {
        Ok(()) | Err(Errno::EBUSY) => Ok(()),
        Err(source) => Err(Error::Mount {
            step: spec.step,
            source,
        }),
    }
}

/// Whether `target` appears as a mount point in `/proc/self/mounts`. Before `/proc` is
/// mounted nothing is known, so the answer is `false` (and `/proc` itself gets mounted).
pub fn is_mount_point(target: &str) -> bool {
    match fs::read_to_string("/proc/self/mounts") {
        Ok(text) => mount_table_has(&text, target),
        Err(_) => false,
    }
}

/// Whether the `/proc/mounts`-format `table` lists `target` as a mount point.
fn mount_table_has(table: &str, target: &str) -> bool {
    let target = Path::new(target);
    table
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .any(|point| Path::new(&unescape_octal(point)) == target)
}

/// Undoes the `\040`-style escaping of `/proc/mounts`.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(value) = u8::try_from(value) {
                    out.push(value);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lookup_matches_whole_mount_points() {
        let table = "sysfs /sys sysfs rw 0 0\nproc /proc proc rw 0 0\n\
                     tmpfs /mnt/a\\040b tmpfs rw 0 0\n";
        assert!(mount_table_has(table, "/proc"));
        assert!(mount_table_has(table, "/sys"));
        assert!(mount_table_has(table, "/mnt/a b"));
        assert!(!mount_table_has(table, "/sys/kernel"));
        assert!(!mount_table_has(table, "/dev"));
    }

    #[test]
    fn table_is_ordered_parents_first() {
        for (i, spec) in EARLY_MOUNTS.iter().enumerate() {
            let parent = Path::new(spec.target).parent().unwrap_or(Path::new("/"));
            if parent != Path::new("/") {
                assert!(
                    EARLY_MOUNTS[..i]
                        .iter()
                        .any(|p| Path::new(p.target) == parent),
                    "{} mounted before its parent",
                    spec.target
                );
            }
        }
    }
}

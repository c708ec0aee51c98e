//! Where things are: the workspace, per-test artifact directories, the kernel to boot.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The workspace root (the directory holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `<root>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// `tests/artifacts/<test>/`, created if missing: logs, disk images, initramfs files.
///
/// # Panics
/// When the directory cannot be created (a broken checkout; nothing else would work).
pub fn artifacts_dir(test: &str) -> PathBuf {
    let dir = workspace_root().join("tests").join("artifacts").join(test);
    if let Err(err) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {err}", dir.display());
    }
    dir
}

/// The kernel release to boot: `$KVER` if set, else the newest `/lib/modules/*-amd64`
/// that has a matching `/boot/vmlinuz-*`.
///
/// # Panics
/// When no such kernel is installed.
pub fn kernel_release() -> String {
    match find_kernel_release() {
        Ok(kver) => kver,
        Err(err) => panic!("{err}"),
    }
}

/// [`kernel_release`] without the panic.
pub fn find_kernel_release() -> crate::Result<String> {
    if let Ok(kver) = std::env::var("KVER") {
        if !kver.is_empty() {
            return Ok(kver);
        }
    }
    let entries = std::fs::read_dir("/lib/modules")
        .map_err(|err| crate::Error::NoKernel(format!("cannot list /lib/modules: {err}")))?;
    let mut releases: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.ends_with("-amd64") && kernel_image(name).is_file())
        .collect();
    releases.sort_by(|a, b| version_cmp(a, b));
    releases.pop().ok_or_else(|| {
        crate::Error::NoKernel("no /lib/modules/*-amd64 with a /boot/vmlinuz-* to match".into())
    })
}

/// `/boot/vmlinuz-<kver>`.
pub fn kernel_image(kver: &str) -> PathBuf {
    PathBuf::from(format!("/boot/vmlinuz-{kver}"))
}

/// `/lib/modules/<kver>`.
pub fn modules_dir(kver: &str) -> PathBuf {
    PathBuf::from("/lib/modules").join(kver)
}

/// `timeout` multiplied by `APPLIANCE_TIMEOUT_FACTOR` (default 1; slow hosts set 2 or 3).
pub fn scaled(timeout: Duration) -> Duration {
    let factor = std::env::var("APPLIANCE_TIMEOUT_FACTOR")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|f| f.is_finite() && *f > 0.0)
        .unwrap_or(1.0);
    timeout.mul_f64(factor)
}

/// Compares version strings the way `sort -V` does for kernel releases: runs of digits
/// compare as numbers, everything else as text.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            _ => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

fn chunks(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = s.as_bytes();
    for i in 1..=bytes.len() {
        if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[i - 1].is_ascii_digit() {
            out.push(&s[start..i]);
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_sort_numerically() {
        let mut v = vec![
            "6.1.0-9-amd64",
            "6.1.0-56-amd64",
            "6.1.0-10-amd64",
            "5.10.0-30-amd64",
        ];
        v.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(
            v,
            [
                "5.10.0-30-amd64",
                "6.1.0-9-amd64",
                "6.1.0-10-amd64",
                "6.1.0-56-amd64"
            ]
        );
    }

    #[test]
    fn root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(workspace_root().join("tests").join("Cargo.toml").is_file());
    }
}

//! Building what the VMs boot: workspace binaries, the kernel module, initramfs images.
//!
//! Builds run under one file lock (`<target>/appliance-tests-build.lock`) so parallel test
//! processes take turns instead of fighting over cargo's and make's outputs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::paths::{target_dir, workspace_root};
use crate::{lock, Error, Result};

/// What [`initramfs`] puts into an image (see `images/mkinitramfs.sh`).
#[derive(Debug, Clone, Default)]
pub struct InitramfsSpec {
    /// The `.cpio.zst` to write.
    pub out: PathBuf,
    /// Kernel release whose modules to take from `/lib/modules/<kver>`.
    pub kver: String,
    /// The program that becomes `/init` (its shared libraries come along).
    pub init: PathBuf,
    /// A module list: one name per line, `#` comments.
    pub modules_list: PathBuf,
    /// Extra `.ko` files, installed under `/lib/modules/<kver>/extra/`.
    pub module_files: Vec<PathBuf>,
    /// Extra files: host source, absolute destination in the image.
    pub files: Vec<(PathBuf, String)>,
    /// Host programs copied to `/bin/<name>` with their libraries.
    pub bins: Vec<PathBuf>,
}

/// zstd level for test initramfs images unless `ZSTD_LEVEL` is set.
const TEST_ZSTD_LEVEL: &str = "6";

fn build_lock() -> Result<lock::Held> {
    lock::exclusive(&target_dir().join("appliance-tests-build.lock"))
}

/// Runs `cmd`, failing with its output's tail when it exits unsuccessfully.
pub fn run(cmd: &mut Command) -> Result<()> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let output = cmd.output().map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(Error::Command {
        command: describe(cmd),
        status: output.status,
        output: tail(&text, 40),
    })
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Builds `bin` of `package` (`cargo build -p package --bin bin [--release]`) and returns
/// the executable's path.
pub fn cargo_bin(package: &str, bin: &str, release: bool) -> Result<PathBuf> {
    let _lock = build_lock()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--quiet", "-p", package, "--bin", bin]);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd)?;
    let path = target_dir()
        .join(if release { "release" } else { "debug" })
        .join(bin);
    if !path.is_file() {
        return Err(Error::Missing {
            path,
            step: describe(&cmd),
        });
    }
    Ok(path)
}

/// Builds the kernel module (`make -C kmod`) and returns `kmod/blksnap.ko`.
pub fn kmod() -> Result<PathBuf> {
    let _lock = build_lock()?;
    let dir = workspace_root().join("kmod");
    let mut cmd = Command::new("make");
    cmd.arg("-C").arg(&dir);
    if let Ok(kver) = std::env::var("KVER") {
        cmd.arg(format!("KVER={kver}"));
    }
    run(&mut cmd)?;
    let ko = dir.join("blksnap.ko");
    if !ko.is_file() {
        return Err(Error::Missing {
            path: ko,
            step: describe(&cmd),
        });
    }
    Ok(ko)
}

/// `images/mkinitramfs.sh`.
pub fn mkinitramfs_script() -> PathBuf {
    workspace_root().join("images").join("mkinitramfs.sh")
}

/// Builds an initramfs with `images/mkinitramfs.sh`; returns `spec.out`.
pub fn initramfs(spec: &InitramfsSpec) -> Result<PathBuf> {
    if let Some(parent) = spec.out.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("cannot create", parent))?;
    }
    let mut cmd = Command::new(mkinitramfs_script());
    if std::env::var_os("ZSTD_LEVEL").is_none() {
        // Test images are rebuilt often: level 19 takes ~10 s per 20 MiB, level 6 under 1 s
        // for a few percent more bytes.
        cmd.env("ZSTD_LEVEL", TEST_ZSTD_LEVEL);
    }
    cmd.arg("--out")
        .arg(&spec.out)
        .arg("--kver")
        .arg(&spec.kver)
        .arg("--init")
        .arg(&spec.init)
        .arg("--modules")
        .arg(&spec.modules_list);
    for ko in &spec.module_files {
        cmd.arg("--module-file").arg(ko);
    }
    for (src, dest) in &spec.files {
        let mut arg = src.as_os_str().to_os_string();
        arg.push(":");
        arg.push(dest);
        cmd.arg("--file").arg(arg);
    }
    for bin in &spec.bins {
        cmd.arg("--bin").arg(bin);
    }
    run(&mut cmd)?;
    if !spec.out.is_file() {
        return Err(Error::Missing {
            path: spec.out.clone(),
            step: describe(&cmd),
        });
    }
    Ok(spec.out.clone())
}

/// `images/modules.list`: the appliance's module list.
pub fn appliance_modules_list() -> PathBuf {
    workspace_root().join("images").join("modules.list")
}

/// Whether `path` exists and is newer than every one of `inputs` (missing inputs ignored).
pub fn is_fresh(path: &Path, inputs: &[&Path]) -> bool {
    let Ok(out) = std::fs::metadata(path).and_then(|m| m.modified()) else {
        return false;
    };
    inputs.iter().all(|input| {
        std::fs::metadata(input)
            .and_then(|m| m.modified())
            .map(|t| t <= out)
            .unwrap_or(true)
    })
}

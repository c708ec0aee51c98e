//! Booting a test guest: a program of this workspace that runs as `/init` of a VM,
//! tests something and reports with the console protocol of `sysboot::testguest`
//! (`tests/ktest`, `tests/coreguest`; their host runners `host/*_vm.rs` describe them as
//! a [`Guest`] and list their disks).
//!
//! [`Guest::boot`] builds the guest's initramfs (once per process), creates fresh disks,
//! boots Debian's kernel with `<tag>.scenario=`, `<tag>.timeout=` and
//! `<tag>.modparams=` on the command line, waits for `<P>-END` and the VM's exit, and
//! parses the protocol lines into an [`Outcome`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use sysboot::testguest::Protocol;

use crate::build::{self, InitramfsSpec};
use crate::qemu::{self, Boot, DiskBus, DiskSpec, Vm, VmConfig};
use crate::{paths, Result};

/// One MiB, for disk tables.
pub const MIB: u64 = 1 << 20;

/// What it takes to build and boot one guest program.
#[derive(Debug, Clone, Copy)]
pub struct Guest {
    /// Its console protocol (prefix and note tag; the tag also prefixes its kernel
    /// command line keys).
    pub protocol: Protocol,
    /// The cargo package and binary that become `/init` (built in release).
    pub package: &'static str,
    /// See [`Guest::package`].
    pub bin: &'static str,
    /// Its module list, relative to the workspace root; the guest loads the same list.
    pub modules_list: &'static str,
    /// The artifact directory and file name of its initramfs.
    pub initramfs: (&'static str, &'static str),
    /// Further programs for `/bin` in the initramfs.
    pub bins: fn() -> Result<Vec<PathBuf>>,
}

/// A disk of a guest's VM: a fresh sparse raw file per boot.
#[derive(Debug, Clone, Copy)]
pub struct Disk {
    /// The serial the guest finds it by.
    pub serial: &'static str,
    /// Its size in bytes.
    pub size: u64,
    /// Made an ext4 filesystem (labelled with the serial) on the host.
    pub ext4: bool,
    /// Where it is attached.
    pub bus: DiskBus,
    /// Attached with `cache=none,aio=native` (virtio-blk), bypassing the host page
    /// cache, so a benchmark measures the guest's I/O path rather than host memory.
    pub direct: bool,
}

impl Disk {
    /// A blank virtio-blk disk of `size` bytes.
    pub const fn new(serial: &'static str, size: u64) -> Disk {
        Disk {
            serial,
            size,
            ext4: false,
            bus: DiskBus::VirtioBlk,
            direct: false,
        }
    }

    /// The same disk with an ext4 filesystem made on the host.
    pub const fn ext4(self) -> Disk {
        Disk { ext4: true, ..self }
    }

    /// The same disk on another bus.
    pub const fn on(self, bus: DiskBus) -> Disk {
        Disk { bus, ..self }
    }

    /// The same disk attached with `cache=none` (see [`Disk::direct`]).
    pub const fn direct(self) -> Disk {
        Disk {
            direct: true,
            ..self
        }
    }
}

/// One boot of a guest.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// VM and artifact directory name.
    pub name: &'a str,
    /// `<tag>.scenario=` value.
    pub scenario: &'a str,
    /// `<tag>.modparams=` value (`a=1,b=2`), if any.
    pub modparams: Option<&'a str>,
    /// The disks, in order.
    pub disks: &'a [Disk],
    /// The host's deadline; the guest's watchdog (`<tag>.timeout=`) gets a minute less,
    /// so a hang ends with the kernel's blocked-task dump in the log.
    pub timeout: Duration,
    /// Guest memory.
    pub memory_mb: u32,
}

/// What one boot printed.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The whole serial log.
    pub log: String,
    /// Where it is.
    pub log_path: PathBuf,
    /// Names of `<P>-BEGIN` lines.
    pub begun: Vec<String>,
    /// Names of `<P>-PASS` lines.
    pub passed: Vec<String>,
    /// (name, message) of every `<P>-FAIL`, and `harness` when the host gave up.
    pub failed: Vec<(String, String)>,
    /// The JSON objects of `<P>-BENCH` lines.
    pub bench: Vec<String>,
    /// A `<P>-UNLOADED` line was seen.
    pub unloaded: bool,
    /// A `<P>-END` line was seen.
    pub ended: bool,
}

impl Outcome {
    /// The protocol lines of `protocol` in `log`.
    pub fn parse(protocol: &Protocol, log: &str) -> Outcome {
        let mut out = Outcome {
            log: log.to_owned(),
            ..Outcome::default()
        };
        let lead = format!("{}-", protocol.prefix());
        for line in log.lines() {
            // Kernel messages can share a line with ours on the console.
            let Some(at) = line.find(&lead) else {
                continue;
            };
            let line = line[at + lead.len()..].trim_end();
            if let Some(rest) = line.strip_prefix("BEGIN ") {
                out.begun.push(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("PASS ") {
                out.passed.push(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("FAIL ") {
                let (name, msg) = rest.split_once(": ").unwrap_or((rest, ""));
                out.failed.push((name.trim().to_owned(), msg.to_owned()));
            } else if let Some(rest) = line.strip_prefix("BENCH ") {
                out.bench.push(rest.trim().to_owned());
            } else if line.starts_with("UNLOADED") {
                out.unloaded = true;
            } else if line.starts_with("END") {
                out.ended = true;
            }
        }
        out
    }

    /// The last `n` lines of the serial log.
    pub fn tail(&self, n: usize) -> String {
        build::tail(&self.log, n)
    }
}

impl Guest {
    fn build_initramfs(&self) -> Result<PathBuf> {
        let kver = paths::kernel_release();
        let ko = build::kmod()?;
        let init = build::cargo_bin(self.package, self.bin, true)?;
        let (dir, file) = self.initramfs;
        build::initramfs(&InitramfsSpec {
            out: paths::artifacts_dir(dir).join(file),
            kver,
            init,
            modules_list: paths::workspace_root().join(self.modules_list),
            module_files: vec![ko],
            bins: (self.bins)()?,
            ..InitramfsSpec::default()
        })
    }

    /// The guest's initramfs, built once per process.
    pub fn initramfs(&self) -> PathBuf {
        static IMAGES: Mutex<BTreeMap<&str, std::result::Result<PathBuf, String>>> =
            Mutex::new(BTreeMap::new());
        let mut images = IMAGES.lock().unwrap_or_else(|e| e.into_inner());
        let image = images
            .entry(self.package)
            .or_insert_with(|| self.build_initramfs().map_err(|e| e.to_string()));
        match image {
            Ok(path) => path.clone(),
            Err(e) => panic!("cannot build the initramfs of {}: {e}", self.package),
        }
    }

    /// Boots the guest with fresh disks, waits for `<P>-END` and the VM's exit (or the
    /// deadline) and parses what it printed.
    pub fn boot(&self, run: &Run<'_>) -> Outcome {
        let kver = paths::kernel_release();
        let dir = paths::artifacts_dir(run.name);
        let mut specs = Vec::new();
        let mut direct_args = Vec::new();
        for (i, d) in run.disks.iter().enumerate() {
            let path = dir.join(format!("{}.img", d.serial));
            if let Err(e) = qemu::disk_image(&path, d.size) {
                panic!("cannot create {}: {e}", path.display());
            }
            if d.ext4 {
                mkfs_ext4(&path, d.serial);
            }
            if d.direct {
                let id = format!("kdisk{i}");
                direct_args.extend([
                    "-drive".to_owned(),
                    format!(
                        "if=none,id={id},format=raw,cache=none,aio=native,discard=unmap,file={}",
                        path.display().to_string().replace(',', ",,")
                    ),
                    "-device".to_owned(),
                    format!("virtio-blk-pci,drive={id},serial={}", d.serial),
                ]);
            } else {
                let mut spec = DiskSpec::raw(&path, d.serial);
                spec.bus = d.bus;
                specs.push(spec);
            }
        }
        let tag = self.protocol.tag();
        let guest_timeout = run.timeout.as_secs().saturating_sub(60).max(60);
        let mut append = format!(
            "console=ttyS0,115200 panic=-1 oops=panic loglevel=6 {tag}.scenario={} {tag}.timeout={guest_timeout}",
            run.scenario
        );
        if let Some(p) = run.modparams {
            append.push_str(&format!(" {tag}.modparams={p}"));
        }
        let mut cfg = VmConfig::new(
            run.name,
            Boot::Kernel {
                kernel: paths::kernel_image(&kver),
                initrd: self.initramfs(),
                append,
            },
        );
        cfg.memory_mb = run.memory_mb;
        cfg.disks = specs;
        cfg.extra_args = direct_args;
        let mut vm = match Vm::start(cfg) {
            Ok(vm) => vm,
            Err(e) => panic!("cannot start the VM: {e}"),
        };
        let end = format!("{}-END", self.protocol.prefix());
        let waited = vm.wait_for_serial(&end, run.timeout);
        if waited.is_ok() {
            // Powering off after the end line takes a moment; a VM that does not is
            // killed on drop.
            let _ = vm.wait_exit(Duration::from_secs(60));
        }
        let mut out = Outcome::parse(&self.protocol, &vm.serial_log());
        out.log_path = vm.log_path().to_path_buf();
        if let Err(e) = waited {
            out.failed.push(("harness".into(), e.to_string()));
        }
        out
    }
}

/// `mkfs.ext4` of a disk image, labelled `label`, with its inode tables written now (no
/// lazy initialisation running in the guest during the tests).
fn mkfs_ext4(path: &Path, label: &str) {
    let mkfs = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("mkfs.ext4 is not installed (e2fsprogs)"));
    let out = Command::new(mkfs)
        .args(["-q", "-F", "-L", label])
        .args(["-E", "lazy_itable_init=0,lazy_journal_init=0"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run mkfs.ext4: {e}"));
    assert!(
        out.status.success(),
        "mkfs.ext4 {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use sysboot::testguest::{Line, CORE, KTEST};

    use super::*;

    #[test]
    fn protocol_lines_are_parsed() {
        for p in [KTEST, CORE] {
            let log = [
                "boot".to_owned(),
                p.format(Line::Begin("cbt")),
                format!("[  1.0] x {}", p.format(Line::Pass("cbt"))),
                p.format(Line::Fail("bad_input", "2 cases wrong: a\nb")),
                p.format(Line::Bench("{\"config\":\"plain\"}")),
                p.format(Line::Note("a note")),
                p.format(Line::Unloaded),
                p.format(Line::End),
            ]
            .join("\n");
            let out = Outcome::parse(&p, &log);
            assert_eq!(out.begun, ["cbt"], "{log}");
            assert_eq!(out.passed, ["cbt"], "{log}");
            assert_eq!(
                out.failed,
                [("bad_input".to_owned(), "2 cases wrong: a | b".to_owned())]
            );
            assert_eq!(out.bench, ["{\"config\":\"plain\"}"]);
            assert!(out.unloaded && out.ended);
        }
    }

    #[test]
    fn other_prefixes_are_not_ours() {
        let out = Outcome::parse(&KTEST, "CORE-BEGIN x\nCORE-PASS x\nCORE-END\n");
        assert!(out.begun.is_empty() && out.passed.is_empty() && !out.ended);
    }
}

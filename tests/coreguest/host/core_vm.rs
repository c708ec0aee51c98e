//! Host side of the supervisor-core test protocol (tests/coreguest/README.md), included by
//! tests/tests/core.rs with `#[path]`: builds the initramfs whose /init is `coreguest`,
//! creates the disks, boots one VM and parses the console protocol.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use appliance_tests::build::{self, InitramfsSpec};
use appliance_tests::qemu::{self, Boot, DiskBus, DiskSpec, Vm, VmConfig};
use appliance_tests::{paths, Result};

const MIB: u64 = 1 << 20;

/// A disk of the test VM.
pub struct Disk {
    pub serial: &'static str,
    pub size: u64,
    /// Made an ext4 filesystem (labelled with the serial) on the host.
    pub ext4: bool,
    pub bus: DiskBus,
}

const fn disk(serial: &'static str, mib: u64, ext4: bool, bus: DiskBus) -> Disk {
    Disk {
        serial,
        size: mib * MIB,
        ext4,
        bus,
    }
}

/// The functional scenarios' disks (tests/coreguest/README.md).
pub const FUNCTIONAL_DISKS: &[Disk] = &[
    disk("prod0", 48, false, DiskBus::VirtioBlk),
    disk("scratch0", 64, false, DiskBus::VirtioBlk),
    disk("backup0", 512, true, DiskBus::VirtioBlk),
    disk("small0", 24, true, DiskBus::VirtioBlk),
    disk("restore0", 64, false, DiskBus::VirtioScsi),
];

/// The benchmark's disks.
pub const BENCH_DISKS: &[Disk] = &[
    // 1 GiB: the snapshot's fixed cost (create, take, release) weighs in an incremental
    // as it would on a real disk, not as on a toy one.
    disk("bench0", 1024, false, DiskBus::VirtioBlk),
    disk("scratch0", 256, false, DiskBus::VirtioBlk),
    disk("backup0", 3072, true, DiskBus::VirtioBlk),
];

/// The functional scenarios, in the order the guest runs them.
pub const FUNCTIONAL: &[&str] = &[
    "devices",
    "errors",
    "full_under_writes",
    "incremental",
    "cancel",
    "target_full",
    "corruption",
    "cli",
    "leftovers",
    "module_missing",
];

fn guest_dir() -> PathBuf {
    paths::workspace_root().join("tests").join("coreguest")
}

fn build_initramfs() -> Result<PathBuf> {
    let kver = paths::kernel_release();
    let ko = build::kmod()?;
    let init = build::cargo_bin("snapcore-coreguest", "coreguest", true)?;
    // The CLI scenario runs the real binary, as shipped (release).
    let appliance = build::cargo_bin("appliance", "appliance", true)?;
    let dir = paths::artifacts_dir("core-initramfs");
    build::initramfs(&InitramfsSpec {
        out: dir.join("core.cpio.zst"),
        kver,
        init,
        modules_list: guest_dir().join("modules.list"),
        module_files: vec![ko],
        bins: vec![appliance],
        ..InitramfsSpec::default()
    })
}

/// The initramfs, built once per process.
pub fn initramfs() -> PathBuf {
    static IMAGE: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    match IMAGE.get_or_init(|| build_initramfs().map_err(|e| e.to_string())) {
        Ok(path) => path.clone(),
        Err(e) => panic!("cannot build the supervisor-core initramfs: {e}"),
    }
}

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

/// What one VM run printed.
#[derive(Debug, Default)]
pub struct Outcome {
    pub log: String,
    pub log_path: PathBuf,
    pub begun: Vec<String>,
    pub passed: Vec<String>,
    /// (name, message) of every `CORE-FAIL`.
    pub failed: Vec<(String, String)>,
    /// The JSON objects of `CORE-BENCH` lines.
    pub bench: Vec<String>,
    pub unloaded: bool,
    pub ended: bool,
}

impl Outcome {
    pub fn parse(log: &str) -> Outcome {
        let mut out = Outcome {
            log: log.to_owned(),
            ..Outcome::default()
        };
        for line in log.lines() {
            // Kernel messages can share a line with ours on the console.
            let Some(at) = line.find("CORE-") else {
                continue;
            };
            let line = line[at..].trim_end();
            if let Some(rest) = line.strip_prefix("CORE-BEGIN ") {
                out.begun.push(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("CORE-PASS ") {
                out.passed.push(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("CORE-FAIL ") {
                let (name, msg) = rest.split_once(": ").unwrap_or((rest, ""));
                out.failed.push((name.trim().to_owned(), msg.to_owned()));
            } else if let Some(rest) = line.strip_prefix("CORE-BENCH ") {
                out.bench.push(rest.trim().to_owned());
            } else if line.starts_with("CORE-UNLOADED") {
                out.unloaded = true;
            } else if line.starts_with("CORE-END") {
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

/// One VM run.
pub struct Run<'a> {
    /// VM and artifact directory name.
    pub name: &'a str,
    /// `core.scenario=` value: `functional` or `bench`.
    pub scenario: &'a str,
    /// Module parameters (`a=1,b=2`).
    pub modparams: &'a str,
    pub disks: &'a [Disk],
    /// The host's deadline; the guest's watchdog fires a minute earlier.
    pub timeout: Duration,
    pub memory_mb: u32,
}

impl Run<'_> {
    /// Boots the VM with fresh disks, waits for `CORE-END` and the VM's exit (or the
    /// deadline) and parses what it printed.
    pub fn go(&self) -> Outcome {
        let kver = paths::kernel_release();
        let dir = paths::artifacts_dir(self.name);
        let mut specs = Vec::new();
        for d in self.disks {
            let path = dir.join(format!("{}.img", d.serial));
            if let Err(e) = qemu::disk_image(&path, d.size) {
                panic!("cannot create {}: {e}", path.display());
            }
            if d.ext4 {
                mkfs_ext4(&path, d.serial);
            }
            let mut spec = DiskSpec::raw(&path, d.serial);
            spec.bus = d.bus;
            specs.push(spec);
        }
        let guest_timeout = self.timeout.as_secs().saturating_sub(60).max(60);
        let append = format!(
            "console=ttyS0,115200 panic=-1 oops=panic loglevel=6 core.scenario={} core.timeout={guest_timeout} core.modparams={}",
            self.scenario, self.modparams
        );
        let mut cfg = VmConfig::new(
            self.name,
            Boot::Kernel {
                kernel: paths::kernel_image(&kver),
                initrd: initramfs(),
                append,
            },
        );
        cfg.memory_mb = self.memory_mb;
        cfg.disks = specs;
        let mut vm = match Vm::start(cfg) {
            Ok(vm) => vm,
            Err(e) => panic!("cannot start the VM: {e}"),
        };
        let waited = vm.wait_for_serial("CORE-END", self.timeout);
        if waited.is_ok() {
            let _ = vm.wait_exit(Duration::from_secs(60));
        }
        let mut out = Outcome::parse(&vm.serial_log());
        out.log_path = vm.log_path().to_path_buf();
        if let Err(e) = waited {
            out.failed.push(("harness".into(), e.to_string()));
        }
        out
    }
}

//! Host side of the kernel-test protocol (tests/KTEST.md), shared by
//! `tests/tests/kmod.rs` and `tests/src/bin/kmod-bench.rs` (both include this
//! file with `#[path]`): builds the initramfs whose /init is `blksnap-ktest`,
//! creates the disks, boots one VM and parses the console protocol.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use appliance_tests::build::{self, InitramfsSpec};
use appliance_tests::qemu::{self, Boot, DiskSpec, Vm, VmConfig};
use appliance_tests::{paths, Result};

const MIB: u64 = 1 << 20;

/// The functional disks: serial and size. orig0 is not a multiple of the
/// chunk size (its last chunk is partial).
pub const FUNCTIONAL_DISKS: &[(&str, u64)] = &[
    ("orig0", 64 * MIB + 192 * 1024),
    ("orig1", 48 * MIB),
    ("store0", 256 * MIB),
    ("store1", 64 * MIB),
];

/// The benchmark's disks.
pub const BENCH_DISKS: &[(&str, u64)] = &[("bench0", 256 * MIB), ("bcow0", 512 * MIB)];

/// The guest program's module list.
pub fn modules_list() -> PathBuf {
    paths::workspace_root()
        .join("tests")
        .join("ktest")
        .join("modules.list")
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

fn build_initramfs() -> Result<PathBuf> {
    let kver = paths::kernel_release();
    let ko = build::kmod()?;
    let init = build::cargo_bin("blksnap-ktest", "blksnap-ktest", true)?;
    let dir = paths::artifacts_dir("kmod-initramfs");
    build::initramfs(&InitramfsSpec {
        out: dir.join("ktest.cpio.zst"),
        kver,
        init,
        modules_list: modules_list(),
        module_files: vec![ko],
        bins: find_on_path("dmsetup").into_iter().collect(),
        ..InitramfsSpec::default()
    })
}

/// The kernel-test initramfs, built once per process.
pub fn initramfs() -> PathBuf {
    static IMAGE: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    match IMAGE.get_or_init(|| build_initramfs().map_err(|e| e.to_string())) {
        Ok(path) => path.clone(),
        Err(e) => panic!("cannot build the kernel-test initramfs: {e}"),
    }
}

/// What one VM run printed.
#[derive(Debug, Default)]
pub struct Outcome {
    pub log: String,
    pub log_path: PathBuf,
    pub begun: Vec<String>,
    pub passed: Vec<String>,
    /// (name, message) of every `KTEST-FAIL`.
    pub failed: Vec<(String, String)>,
    /// The JSON objects of `KTEST-BENCH` lines.
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
            let Some(at) = line.find("KTEST-") else {
                continue;
            };
            let line = line[at..].trim_end();
            if let Some(rest) = line.strip_prefix("KTEST-BEGIN ") {
                out.begun.push(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("KTEST-PASS ") {
                out.passed.push(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("KTEST-FAIL ") {
                let (name, msg) = rest.split_once(": ").unwrap_or((rest, ""));
                out.failed.push((name.trim().to_owned(), msg.to_owned()));
            } else if let Some(rest) = line.strip_prefix("KTEST-BENCH ") {
                out.bench.push(rest.trim().to_owned());
            } else if line.starts_with("KTEST-UNLOADED") {
                out.unloaded = true;
            } else if line.starts_with("KTEST-END") {
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

/// One VM run of `scenario` (a `ktest.scenario=` value).
pub struct Run<'a> {
    /// VM and artifact directory name.
    pub name: &'a str,
    pub scenario: &'a str,
    /// `ktest.modparams=` value (`a=1,b=2`), if any.
    pub modparams: Option<&'a str>,
    /// The guest's own per-scenario watchdog and the host's deadline.
    pub timeout: Duration,
    /// The benchmark's disks (attached with `cache=none`) instead of the
    /// functional ones.
    pub bench: bool,
}

impl Run<'_> {
    /// Boots the VM with fresh sparse disks, waits for `KTEST-END` and the
    /// VM's exit (or the deadline) and parses what it printed.
    pub fn go(&self) -> Outcome {
        let kver = paths::kernel_release();
        let dir = paths::artifacts_dir(self.name);
        let disks = if self.bench {
            BENCH_DISKS
        } else {
            FUNCTIONAL_DISKS
        };
        let mut specs = Vec::new();
        let mut direct_args = Vec::new();
        for (i, (serial, size)) in disks.iter().enumerate() {
            let path = dir.join(format!("{serial}.img"));
            if let Err(e) = qemu::disk_image(&path, *size) {
                panic!("cannot create {}: {e}", path.display());
            }
            if self.bench {
                // The benchmark's disks bypass the host page cache (as the
                // baselines in the design notes were measured), so a pass
                // measures the guest's I/O path rather than host memory.
                let id = format!("kdisk{i}");
                direct_args.extend([
                    "-drive".to_owned(),
                    format!(
                        "if=none,id={id},format=raw,cache=none,aio=native,discard=unmap,file={}",
                        path.display().to_string().replace(',', ",,")
                    ),
                    "-device".to_owned(),
                    format!("virtio-blk-pci,drive={id},serial={serial}"),
                ]);
            } else {
                specs.push(DiskSpec::raw(&path, serial));
            }
        }
        // The guest's watchdog fires a minute before the host gives up, so a
        // hang ends with the kernel's blocked-task dump in the log.
        let guest_timeout = self.timeout.as_secs().saturating_sub(60).max(60);
        let mut append = format!(
            "console=ttyS0,115200 panic=-1 oops=panic loglevel=6 ktest.scenario={} ktest.timeout={guest_timeout}",
            self.scenario
        );
        if let Some(p) = self.modparams {
            append.push_str(&format!(" ktest.modparams={p}"));
        }
        let mut cfg = VmConfig::new(
            self.name,
            Boot::Kernel {
                kernel: paths::kernel_image(&kver),
                initrd: initramfs(),
                append,
            },
        );
        cfg.memory_mb = 1024;
        cfg.disks = specs;
        cfg.extra_args = direct_args;
        let mut vm = match Vm::start(cfg) {
            Ok(vm) => vm,
            Err(e) => panic!("cannot start the VM: {e}"),
        };
        let waited = vm.wait_for_serial("KTEST-END", self.timeout);
        if waited.is_ok() {
            // Powering off after KTEST-END takes a moment; a VM that does not
            // is killed on drop.
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

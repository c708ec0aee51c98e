//! QEMU virtual machines for tests: configuration, start, serial log, guaranteed kill.
//!
//! Every VM runs `qemu-system-x86_64` in its own process group with TCG (KVM only when
//! `APPLIANCE_KVM=1`), no display, the first serial port written to
//! `tests/artifacts/<name>/serial.log`, QEMU's own messages to `qemu.log` beside it, and
//! `-no-reboot` so a guest reboot or panic ends the run, and a QMP socket for
//! [`Vm::qmp`] / [`Vm::powerdown`]. At most [`VM_SLOTS`] VMs run at
//! once across all test processes: [`Vm::start`] waits for a free slot. Dropping a [`Vm`]
//! kills its process group and frees the slot.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::build::{run, tail};
use crate::paths::{artifacts_dir, scaled, target_dir};
use crate::{lock, Error, Result};

/// How many VMs may run at once on this machine (two cores, TCG).
pub const VM_SLOTS: usize = 2;

/// Lines of serial log quoted in errors.
const TAIL_LINES: usize = 60;

/// The bus a test disk sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskBus {
    /// `virtio-blk-pci` (guest `/dev/vdX`, serial in `/sys/block/vdX/serial`).
    VirtioBlk,
    /// `scsi-hd` on one shared `virtio-scsi-pci` controller (guest `/dev/sdX`).
    VirtioScsi,
}

/// A disk attached to the VM.
#[derive(Debug, Clone)]
pub struct DiskSpec {
    /// The image file.
    pub path: PathBuf,
    /// The serial the guest sees (e.g. `prod0`).
    pub serial: String,
    /// `"raw"` or `"qcow2"`.
    pub format: &'static str,
    /// Where it is attached.
    pub bus: DiskBus,
}

impl DiskSpec {
    /// A raw virtio-blk disk.
    pub fn raw(path: impl Into<PathBuf>, serial: &str) -> DiskSpec {
        DiskSpec {
            path: path.into(),
            serial: serial.to_owned(),
            format: "raw",
            bus: DiskBus::VirtioBlk,
        }
    }
}

/// What the VM boots.
#[derive(Debug, Clone)]
pub enum Boot {
    /// Direct kernel boot.
    Kernel {
        /// The kernel image (`/boot/vmlinuz-*`).
        kernel: PathBuf,
        /// The initramfs.
        initrd: PathBuf,
        /// The kernel command line.
        append: String,
    },
    /// An ISO image on a CD-ROM drive.
    Cdrom(PathBuf),
    /// A qcow2 boot disk (virtio-blk, first in boot order).
    Disk(PathBuf),
}

/// Everything that describes one VM.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Names the artifact directory (`tests/artifacts/<name>/`) and the QEMU process.
    pub name: String,
    /// What to boot.
    pub boot: Boot,
    /// Boot with OVMF (UEFI) instead of SeaBIOS.
    pub uefi: bool,
    /// Guest memory.
    pub memory_mb: u32,
    /// Guest CPUs.
    pub cpus: u32,
    /// Test disks, in order.
    pub disks: Vec<DiskSpec>,
    /// Host TCP port → guest TCP port over user networking on a virtio-net NIC. Empty: no NIC.
    pub hostfwd: Vec<(u16, u16)>,
    /// `-fw_cfg name=<name>,string=<value>` items.
    pub fw_cfg: Vec<(String, String)>,
    /// Further QEMU arguments, appended last.
    pub extra_args: Vec<String>,
}

impl VmConfig {
    /// Defaults: BIOS, 1024 MiB, 2 CPUs, no disks, no network.
    pub fn new(name: &str, boot: Boot) -> VmConfig {
        VmConfig {
            name: name.to_owned(),
            boot,
            uefi: false,
            memory_mb: 1024,
            cpus: 2,
            disks: Vec::new(),
            hostfwd: Vec::new(),
            fw_cfg: Vec::new(),
            extra_args: Vec::new(),
        }
    }

    /// The QEMU arguments (without the program), given the artifact directory.
    pub fn qemu_args(&self, dir: &Path) -> Vec<String> {
        let serial_log = dir.join("serial.log");
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
        push(&["-name", &self.name, "-machine", "q35"]);
        if kvm_requested() {
            push(&["-accel", "kvm", "-cpu", "host"]);
        } else {
            push(&["-accel", "tcg", "-cpu", "max"]);
        }
        let memory = self.memory_mb.to_string();
        let cpus = self.cpus.to_string();
        push(&["-m", &memory, "-smp", &cpus]);
        push(&["-nographic", "-monitor", "none", "-no-reboot"]);
        push(&["-serial", &format!("file:{}", serial_log.display())]);
        let qmp = crate::qmp::socket_path(dir);
        push(&["-qmp", &format!("unix:{},server=on,wait=off", escape(&qmp))]);
        push(&["-device", "virtio-rng-pci"]);
        if self.uefi {
            let (code, _) = ovmf_files();
            push(&[
                "-drive",
                &format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    code.display()
                ),
            ]);
            let vars = dir.join("OVMF_VARS.fd");
            push(&[
                "-drive",
                &format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
            ]);
        }
        match &self.boot {
            Boot::Kernel {
                kernel,
                initrd,
                append,
            } => {
                push(&["-kernel", &kernel.display().to_string()]);
                push(&["-initrd", &initrd.display().to_string()]);
                push(&["-append", append]);
            }
            Boot::Cdrom(iso) => {
                push(&[
                    "-drive",
                    &format!(
                        "if=none,id=cd0,media=cdrom,readonly=on,format=raw,file={}",
                        escape(iso)
                    ),
                ]);
                push(&["-device", "ide-cd,drive=cd0,bootindex=0"]);
            }
            Boot::Disk(qcow2) => {
                push(&[
                    "-drive",
                    &format!("if=none,id=boot0,format=qcow2,file={}", escape(qcow2)),
                ]);
                push(&["-device", "virtio-blk-pci,drive=boot0,bootindex=0"]);
            }
        }
        if self.disks.iter().any(|d| d.bus == DiskBus::VirtioScsi) {
            push(&["-device", "virtio-scsi-pci,id=scsi0"]);
        }
        for (i, disk) in self.disks.iter().enumerate() {
            let id = format!("disk{i}");
            push(&[
                "-drive",
                &format!(
                    "if=none,id={id},format={},discard=unmap,file={}",
                    disk.format,
                    escape(&disk.path)
                ),
            ]);
            let serial = disk.serial.replace(',', ",,");
            let device = match disk.bus {
                DiskBus::VirtioBlk => format!("virtio-blk-pci,drive={id},serial={serial}"),
                DiskBus::VirtioScsi => format!("scsi-hd,bus=scsi0.0,drive={id},serial={serial}"),
            };
            push(&["-device", &device]);
        }
        if self.hostfwd.is_empty() {
            push(&["-nic", "none"]);
        } else {
            let mut netdev = String::from("user,id=net0");
            for (host, guest) in &self.hostfwd {
                netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
            }
            push(&["-netdev", &netdev, "-device", "virtio-net-pci,netdev=net0"]);
        }
        for (name, value) in &self.fw_cfg {
            push(&[
                "-fw_cfg",
                &format!("name={name},string={}", value.replace(',', ",,")),
            ]);
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

/// QEMU's option syntax doubles commas inside values.
fn escape(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

/// Whether the user asked for KVM (`APPLIANCE_KVM=1`).
pub fn kvm_requested() -> bool {
    std::env::var("APPLIANCE_KVM").is_ok_and(|v| v == "1")
}

/// OVMF firmware code and variable template (4 MiB flavour if present).
pub fn ovmf_files() -> (PathBuf, PathBuf) {
    let dir = Path::new("/usr/share/OVMF");
    let code4 = dir.join("OVMF_CODE_4M.fd");
    let vars4 = dir.join("OVMF_VARS_4M.fd");
    if code4.is_file() && vars4.is_file() {
        (code4, vars4)
    } else {
        (dir.join("OVMF_CODE.fd"), dir.join("OVMF_VARS.fd"))
    }
}

/// A running VM. Dropping it kills QEMU's process group and frees its slot.
#[derive(Debug)]
pub struct Vm {
    name: String,
    child: Mutex<Child>,
    status: Mutex<Option<ExitStatus>>,
    pgid: Pid,
    log: PathBuf,
    qmp: PathBuf,
    started: Instant,
    _slot: lock::Held,
}

/// Waits for one of the [`VM_SLOTS`] machine-wide VM slots.
fn acquire_slot() -> Result<lock::Held> {
    let dir = target_dir().join("appliance-tests-vm-slots");
    loop {
        for i in 0..VM_SLOTS {
            if let Some(held) = lock::try_exclusive(&dir.join(format!("slot{i}.lock")))? {
                return Ok(held);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

impl Vm {
    /// Starts QEMU for `cfg` once a VM slot is free.
    ///
    /// QEMU is killed when the `Vm` is dropped, and also (parent-death signal) when the
    /// thread that called `start` ends, so keep the `Vm` on that thread.
    pub fn start(cfg: VmConfig) -> Result<Vm> {
        let slot = acquire_slot()?;
        let dir = artifacts_dir(&cfg.name);
        let log = dir.join("serial.log");
        // A stale log from an earlier run must not satisfy a wait.
        File::create(&log).map_err(Error::io("cannot create", &log))?;
        if cfg.uefi {
            let (_, vars) = ovmf_files();
            let copy = dir.join("OVMF_VARS.fd");
            std::fs::copy(&vars, &copy)
                .map_err(Error::io("cannot copy OVMF variables to", &copy))?;
        }
        let args = cfg.qemu_args(&dir);
        let qmp = crate::qmp::socket_path(&dir);
        if qmp.exists() {
            std::fs::remove_file(&qmp).map_err(Error::io("cannot remove", &qmp))?;
        }
        std::fs::write(dir.join("qemu.cmdline"), shell_words(&args))
            .map_err(Error::io("cannot write", dir.join("qemu.cmdline")))?;
        let qemu_log = dir.join("qemu.log");
        let out = File::create(&qemu_log).map_err(Error::io("cannot create", &qemu_log))?;
        let err = out
            .try_clone()
            .map_err(Error::io("cannot duplicate", &qemu_log))?;
        let child = {
            use std::os::unix::process::CommandExt;
            let mut cmd = Command::new("qemu-system-x86_64");
            cmd.args(&args)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0);
            // SAFETY: the closure runs in the forked child before exec and only makes the
            // prctl system call, which is async-signal-safe; it touches no shared state.
            unsafe {
                cmd.pre_exec(|| {
                    // QEMU must not outlive a test process that was killed outright.
                    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
                });
            }
            cmd.spawn().map_err(|source| Error::Spawn {
                program: "qemu-system-x86_64".into(),
                source,
            })?
        };
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        Ok(Vm {
            name: cfg.name,
            child: Mutex::new(child),
            status: Mutex::new(None),
            pgid: Pid::from_raw(pid),
            log,
            qmp: crate::qmp::socket_path(&dir),
            started: Instant::now(),
            _slot: slot,
        })
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The serial log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The serial log so far (lossy UTF-8; empty if unreadable).
    pub fn serial_log(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Time since QEMU was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// QEMU's exit status if it has exited (non-blocking).
    pub fn try_status(&self) -> Option<ExitStatus> {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if status.is_none() {
            let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(Some(s)) = child.try_wait() {
                *status = Some(s);
            }
        }
        *status
    }

    /// Waits until the serial log contains `needle`. Fails with the log's tail on timeout
    /// (scaled by `APPLIANCE_TIMEOUT_FACTOR`) or when QEMU exits first.
    pub fn wait_for_serial(&self, needle: &str, timeout: Duration) -> Result<()> {
        self.wait_for_serial_from(0, needle, timeout).map(|_| ())
    }

    /// Length in bytes of the serial log so far: an offset for
    /// [`Vm::wait_for_serial_from`].
    pub fn serial_len(&self) -> usize {
        std::fs::metadata(&self.log)
            .map(|m| usize::try_from(m.len()).unwrap_or(usize::MAX))
            .unwrap_or(0)
    }

    /// Like [`Vm::wait_for_serial`], but only output after byte `offset` counts (for
    /// something that happens a second time). Returns the offset just past the match.
    pub fn wait_for_serial_from(
        &self,
        offset: usize,
        needle: &str,
        timeout: Duration,
    ) -> Result<usize> {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        let what = || format!("{needle:?} on the serial console");
        loop {
            // Check the status before the log so a needle written just before exit counts.
            let exited = self.try_status();
            let bytes = std::fs::read(&self.log).unwrap_or_default();
            let fresh = bytes.get(offset..).unwrap_or_default();
            if let Some(at) = find(fresh, needle.as_bytes()) {
                return Ok(offset + at + needle.len());
            }
            let log = String::from_utf8_lossy(&bytes);
            if let Some(status) = exited {
                return Err(Error::VmExited {
                    what: what(),
                    status,
                    log: self.log.clone(),
                    tail: tail(&log, TAIL_LINES),
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: what(),
                    seconds: timeout.as_secs_f64(),
                    log: self.log.clone(),
                    tail: tail(&log, TAIL_LINES),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a QMP command (e.g. `query-status`); returns QEMU's `return` value.
    pub fn qmp(
        &self,
        command: &str,
        arguments: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        crate::qmp::execute(&self.qmp, command, arguments)
    }

    /// Presses the ACPI power button (QMP `system_powerdown`).
    pub fn powerdown(&self) -> Result<()> {
        self.qmp("system_powerdown", None).map(|_| ())
    }

    /// Waits for QEMU to exit (the guest powered off, or rebooted: `-no-reboot`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "the VM to exit".into(),
                    seconds: timeout.as_secs_f64(),
                    log: self.log.clone(),
                    tail: tail(&self.serial_log(), TAIL_LINES),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills QEMU's whole process group and reaps QEMU. Idempotent.
    pub fn kill(&mut self) {
        if self.try_status().is_some() {
            return;
        }
        // The group may already be gone; nothing else to do then.
        let _ = killpg(self.pgid, Signal::SIGKILL);
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(status) = child.wait() {
            *self.status.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.qmp);
    }
}

/// Position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn shell_words(args: &[String]) -> String {
    let mut line = String::from("qemu-system-x86_64");
    for arg in args {
        line.push(' ');
        if arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=.,:/@+".contains(c))
        {
            line.push_str(arg);
        } else {
            line.push('\'');
            line.push_str(&arg.replace('\'', "'\\''"));
            line.push('\'');
        }
    }
    line.push('\n');
    line
}

/// Creates (or truncates to) a sparse raw image of `size_bytes`.
pub fn disk_image(path: &Path, size_bytes: u64) -> Result<()> {
    let file = File::create(path).map_err(Error::io("cannot create", path))?;
    file.set_len(size_bytes)
        .map_err(Error::io("cannot size", path))
}

/// Creates a qcow2 `overlay` backed by `base` (whose format is detected), replacing any
/// existing overlay.
pub fn qcow2_overlay(base: &Path, overlay: &Path) -> Result<()> {
    let base = std::fs::canonicalize(base).map_err(Error::io("cannot find", base))?;
    let format = image_format(&base)?;
    if overlay.exists() {
        std::fs::remove_file(overlay).map_err(Error::io("cannot remove", overlay))?;
    }
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", &format, "-b"])
        .arg(&base)
        .arg(overlay))
}

/// The format `qemu-img info` reports for `path` (`raw`, `qcow2`, ...).
pub fn image_format(path: &Path) -> Result<String> {
    let command = format!("qemu-img info --output=json {}", path.display());
    let output = Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(path)
        .output()
        .map_err(|source| Error::Spawn {
            program: "qemu-img".into(),
            source,
        })?;
    if !output.status.success() {
        return Err(Error::Command {
            command,
            status: output.status,
            output: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    let info: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|err| Error::Parse {
            command: command.clone(),
            detail: err.to_string(),
        })?;
    info.get("format")
        .and_then(|f| f.as_str())
        .map(str::to_owned)
        .ok_or(Error::Parse {
            command,
            detail: "no \"format\" field".into(),
        })
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// # Panics
/// When no port can be bound at all.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap_or_else(|err| panic!("cannot bind a local port: {err}"));
    listener
        .local_addr()
        .unwrap_or_else(|err| panic!("cannot read the bound port: {err}"))
        .port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_describe_disks_network_and_fw_cfg() {
        let mut cfg = VmConfig::new(
            "argtest",
            Boot::Kernel {
                kernel: "/boot/vmlinuz".into(),
                initrd: "/tmp/i.cpio.zst".into(),
                append: "console=ttyS0".into(),
            },
        );
        cfg.disks.push(DiskSpec::raw("/tmp/a,b.img", "prod0"));
        cfg.disks.push(DiskSpec {
            path: "/tmp/s.qcow2".into(),
            serial: "scratch0".into(),
            format: "qcow2",
            bus: DiskBus::VirtioScsi,
        });
        cfg.hostfwd.push((8443, 443));
        cfg.fw_cfg
            .push(("opt/appliance/config".into(), "password=a,b".into()));
        let args = cfg.qemu_args(Path::new("/art"));
        let line = args.join(" ");
        assert!(line.contains("file=/tmp/a,,b.img"));
        assert!(line.contains("virtio-blk-pci,drive=disk0,serial=prod0"));
        assert!(line.contains("virtio-scsi-pci,id=scsi0"));
        assert!(line.contains("scsi-hd,bus=scsi0.0,drive=disk1,serial=scratch0"));
        assert!(line.contains("hostfwd=tcp:127.0.0.1:8443-:443"));
        assert!(line.contains("name=opt/appliance/config,string=password=a,,b"));
        assert!(line.contains("-serial file:/art/serial.log"));
        assert!(line.contains("-no-reboot"));
        assert!(!line.contains("-nic none"));
        if !kvm_requested() {
            assert!(!line.contains("kvm"));
        }
    }

    #[test]
    fn no_network_without_forwards() {
        let cfg = VmConfig::new("n", Boot::Cdrom("/x.iso".into()));
        let args = cfg.qemu_args(Path::new("/art"));
        assert!(args.windows(2).any(|w| w[0] == "-nic" && w[1] == "none"));
        assert_eq!(cfg.memory_mb, 1024);
        assert_eq!(cfg.cpus, 2);
    }

    #[test]
    fn sparse_images_and_free_ports() {
        let dir = artifacts_dir("harness-unit");
        let img = dir.join("sparse.img");
        disk_image(&img, 1 << 30).expect("create image");
        let meta = std::fs::metadata(&img).expect("stat");
        assert_eq!(meta.len(), 1 << 30);
        use std::os::unix::fs::MetadataExt;
        assert!(meta.blocks() < 64, "image is not sparse");
        assert_ne!(free_port(), 0);
    }
}

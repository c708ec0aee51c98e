//! PID 1 of the appliance.
//!
//! Boot: early mounts, kernel modules, boot configuration, network, config disk, then the
//! daemon (`appliance serve`) under supervision. Shutdown (API call, power button,
//! SIGTERM/SIGPWR/SIGINT, ctrl-alt-del): stop the daemon (it stops its jobs), release
//! every blksnap snapshot, end the remaining processes, unmount the config disk, sync,
//! power off. Init never exits: the kernel would panic.

pub mod configdisk;
pub mod modules;
pub mod power_button;
pub mod shutdown;
pub mod supervisor;

use std::os::fd::{AsRawFd, IntoRawFd};
use std::panic::AssertUnwindSafe;

use nix::sys::signal::{sigprocmask, SigmaskHow};

use crate::config::BootConfig;
use crate::net;
use supervisor::Supervisor;

/// A line on the console.
pub fn log(line: &str) {
    sysboot::console::log(&format!("appliance-init: {line}"));
}

/// Runs the appliance as PID 1. Never returns.
pub fn run() -> ! {
    if std::process::id() != 1 {
        eprintln!("appliance: `init` runs only as PID 1 (the initramfs's /init)");
        std::process::exit(2);
    }
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(boot_and_supervise));
    if outcome.is_err() {
        log("init panicked; powering off");
    }
    sysboot::power::sync_and_poweroff()
}

fn boot_and_supervise() {
    if let Err(err) = sysboot::mounts::mount_early() {
        log(&format!("fatal: {err}"));
        return;
    }
    ensure_stdio();
    // Signals are blocked before any thread starts, so every thread inherits the mask
    // and they all arrive on init's signalfd.
    let blocked = sigprocmask(
        SigmaskHow::SIG_BLOCK,
        Some(&supervisor::handled_signals()),
        None,
    );
    if let Err(err) = blocked {
        log(&format!("fatal: blocking signals: {err}"));
        return;
    }
    let signals = match Supervisor::signalfd() {
        Ok(fd) => fd,
        Err(err) => {
            log(&format!("fatal: signalfd: {err}"));
            return;
        }
    };
    std::env::set_var("PATH", "/bin:/sbin:/usr/bin:/usr/sbin");
    let release = sysboot::modules::kernel_release().unwrap_or_else(|_| "unknown".to_owned());
    log(&format!(
        "blksnap appliance {} starting (kernel {release})",
        crate::api::VERSION
    ));
    // ctrl-alt-del sends SIGINT to init instead of rebooting at once.
    if let Err(err) = nix::sys::reboot::set_cad_enabled(false) {
        log(&format!("cannot route ctrl-alt-del to init: {err}"));
    }

    modules::load_all();

    let config = BootConfig::read_system();
    for warning in &config.warnings {
        log(&format!("boot configuration: {warning}"));
    }
    log(&format!(
        "boot configuration: fw_cfg {}, password {}, network {}, http {}",
        if BootConfig::fw_cfg_present() {
            "present"
        } else {
            "absent"
        },
        if config.password.is_some() {
            "given"
        } else {
            "not given"
        },
        config
            .ip
            .map_or_else(|| "DHCP".to_owned(), |ip| format!("static {ip}")),
        if config.http { "on" } else { "off" },
    ));

    if let Err(err) = net::loopback_up() {
        log(&format!("network: {err}"));
    }
    match net::configure_first_nic(config.ip) {
        Ok(configured) => log(&format!("network: {configured}")),
        Err(err) => log(&format!(
            "network: {}; the web UI is not reachable",
            error_chain(&err)
        )),
    }

    let state = configdisk::prepare();
    power_button::watch();

    let mut sup = Supervisor::new(signals, state.clone());
    let reason = sup.run();
    shutdown::perform(reason, &mut sup, &state);
}

/// Makes sure fds 0, 1 and 2 are open (on the console), so the daemon's output lands
/// there and no file opened later becomes someone's stdout by accident.
fn ensure_stdio() {
    let missing = (0..3).any(|fd| nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err());
    if !missing {
        return;
    }
    let console = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
        .or_else(|_| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
        });
    if let Ok(file) = console {
        let raw = file.as_raw_fd();
        for fd in 0..3 {
            if fd != raw && nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
                let _ = nix::unistd::dup2(raw, fd);
            }
        }
        if raw > 2 {
            drop(file);
        } else {
            // It already sits on one of 0..=2: keep it open.
            let _ = file.into_raw_fd();
        }
    }
}

/// `err: cause: cause` for the console.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

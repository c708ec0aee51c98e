//! Flush and power off or reboot.

use nix::sys::reboot::{reboot, RebootMode};

use crate::console;

/// Syncs filesystems and powers the machine off. Never returns.
pub fn sync_and_poweroff() -> ! {
    finish(RebootMode::RB_POWER_OFF, "power off")
}

/// Syncs filesystems and reboots the machine. Never returns.
pub fn sync_and_reboot() -> ! {
    finish(RebootMode::RB_AUTOBOOT, "reboot")
}

/// Logs `message` to the console as fatal, then syncs and powers off. Never returns.
pub fn fatal(message: &str) -> ! {
    console::log(&format!("FATAL: {message}"));
    sync_and_poweroff()
}

fn finish(mode: RebootMode, what: &str) -> ! {
    nix::unistd::sync();
    // `reboot` only returns on failure.
    let err = match reboot(mode) {
        Ok(never) => match never {},
        Err(err) => err,
    };
    console::log(&format!("sysboot: {what} failed: {err}"));
    if std::process::id() != 1 {
        std::process::exit(1);
    }
    // PID 1 must not exit (the kernel would panic): wait for someone to pull the plug.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

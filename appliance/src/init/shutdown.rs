//! The shutdown sequence: daemon, snapshots, remaining processes, config disk, sync,
//! power off. Every step is logged on the console.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::configdisk::{self, StateDir};
use super::log;
use super::supervisor::{Reason, Supervisor};

/// How long the daemon gets to stop its jobs and close connections.
const DAEMON_GRACE: Duration = Duration::from_secs(20);
/// How long other processes get after SIGTERM.
const OTHERS_GRACE: Duration = Duration::from_secs(3);

/// Shuts the appliance down. Never returns.
pub fn perform(reason: Reason, sup: &mut Supervisor, state: &StateDir) -> ! {
    log(&format!("shutdown: {reason}"));
    sup.stop_daemon(DAEMON_GRACE);
    release_snapshots();
    if !sup.signal_all(Signal::SIGTERM, OTHERS_GRACE) {
        sup.signal_all(Signal::SIGKILL, OTHERS_GRACE);
    }
    nix::unistd::sync();
    configdisk::release(state);
    log("shutdown: syncing disks and powering off");
    sysboot::power::sync_and_poweroff()
}

/// Destroys every blksnap snapshot (the daemon releases its own first; this catches
/// what is left).
fn release_snapshots() {
    if !Path::new(blksnap::DEFAULT_PATH).exists() {
        log("shutdown: no snapshots to release (blksnap not loaded)");
        return;
    }
    let ctl = match blksnap::Blksnap::open() {
        Ok(ctl) => ctl,
        Err(err) => {
            log(&format!(
                "shutdown: cannot open {}: {err}",
                blksnap::DEFAULT_PATH
            ));
            return;
        }
    };
    let ids = match ctl.snapshot_collect() {
        Ok(ids) => ids,
        Err(err) => {
            log(&format!("shutdown: cannot list snapshots: {err}"));
            return;
        }
    };
    let mut released = 0usize;
    for id in &ids {
        match ctl.snapshot_destroy(*id) {
            Ok(()) => released += 1,
            Err(err) => log(&format!("shutdown: destroying snapshot {id}: {err}")),
        }
    }
    log(&format!(
        "shutdown: released {released} of {} snapshot(s)",
        ids.len()
    ));
}

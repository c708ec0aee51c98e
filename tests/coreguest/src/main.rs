//! `coreguest`: tests of the supervisor core (crate `snapcore`) with the real blksnap
//! module, run as /init (PID 1) of a QEMU guest. The host side is tests/tests/core.rs;
//! the console protocol and the disks are described in tests/coreguest/README.md.
//!
//! `core.scenario=functional` (default) runs every functional scenario in one boot;
//! `core.scenario=bench` runs the benchmark.

mod bench;
mod cli;
mod env;
mod functional;
mod io;
mod proto;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The modules loaded at boot (also read by the host to fill the initramfs).
const MODULES_LIST: &str = include_str!("../modules.list");

fn main() {
    let cmdline = proto::PROTO.start();
    let timeout = cmdline
        .get("core.timeout")
        .and_then(|t| t.parse().ok())
        .unwrap_or(900);
    start_watchdog(Duration::from_secs(timeout));
    let which = cmdline
        .get("core.scenario")
        .cloned()
        .unwrap_or_else(|| "functional".to_owned());
    match boot(&cmdline) {
        Ok(()) => match which.as_str() {
            "bench" => {
                run("bench", bench::run);
            }
            _ => functional::run_all(),
        },
        Err(e) => proto::PROTO.fail("boot", &format!("{e:#}")),
    }
    proto::PROTO.end();
    sysboot::power::sync_and_poweroff();
}

/// Runs one named scenario with the protocol lines around it.
pub fn run(name: &str, f: impl FnOnce() -> Result<()>) -> bool {
    proto::PROTO.begin(name);
    let start = Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    proto::PROTO.report(name, outcome, start.elapsed())
}

fn boot(cmdline: &BTreeMap<String, String>) -> Result<()> {
    let index = sysboot::modules::ModuleIndex::open_running()?;
    index.load_list(MODULES_LIST).context("modules.list")?;
    let params = cmdline
        .get("core.modparams")
        .map(|p| p.replace(',', " "))
        .unwrap_or_default();
    let ko = index.root().join("extra/blksnap.ko");
    sysboot::modules::load_file(&ko, &params)
        .with_context(|| format!("insmod {} {params}", ko.display()))?;
    anyhow::ensure!(
        sysboot::testguest::wait_for_path(
            Path::new(blksnap::DEFAULT_PATH),
            Duration::from_secs(10)
        ),
        "/dev/blksnap did not appear"
    );
    note!("blksnap loaded with {params:?}");
    Ok(())
}

fn start_watchdog(limit: Duration) {
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            std::thread::sleep(limit);
            proto::PROTO.time_out(
                "watchdog",
                &format!(
                    "timed out after {} s; blocked tasks follow in the kernel log",
                    limit.as_secs()
                ),
            )
        });
    if let Err(e) = spawned {
        note!("watchdog not started: {e}");
    }
}

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
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        sysboot::console::log(&format!(
            "core: panic in thread {}: {info}",
            thread.name().unwrap_or("?")
        ));
    }));
    if let Err(e) = sysboot::mounts::mount_early() {
        proto::fail("boot", &format!("mounts: {e}"));
    }
    let cmdline = sysboot::cmdline::read().unwrap_or_default();
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
        Err(e) => proto::fail("boot", &format!("{e:#}")),
    }
    proto::end();
    sysboot::power::sync_and_poweroff();
}

/// Runs one named scenario with the protocol lines around it.
pub fn run(name: &str, f: impl FnOnce() -> Result<()>) -> bool {
    proto::begin(name);
    let start = Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let secs = start.elapsed().as_secs_f64();
    match outcome {
        Ok(Ok(())) => {
            note!("{name} took {secs:.1} s");
            proto::pass(name);
            true
        }
        Ok(Err(e)) => {
            proto::fail(name, &format!("{e:#} (after {secs:.1} s)"));
            false
        }
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "non-string panic".to_owned());
            proto::fail(name, &format!("panicked: {msg}"));
            false
        }
    }
}

fn boot(cmdline: &BTreeMap<String, String>) -> Result<()> {
    let release = sysboot::modules::kernel_release()?;
    let modules_dir = Path::new("/lib/modules").join(&release);
    let index = sysboot::modules::ModuleIndex::open(&modules_dir)
        .with_context(|| format!("modules.dep of {release}"))?;
    for name in MODULES_LIST
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        index
            .load(name, "")
            .with_context(|| format!("load module {name}"))?;
    }
    let params = cmdline
        .get("core.modparams")
        .map(|p| p.split(',').collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let ko = modules_dir.join("extra/blksnap.ko");
    sysboot::modules::load_file(&ko, &params)
        .with_context(|| format!("insmod {} {params}", ko.display()))?;
    let start = Instant::now();
    while !Path::new(blksnap::DEFAULT_PATH).exists() {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(10),
            "/dev/blksnap did not appear"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    note!("blksnap loaded with {params:?}");
    Ok(())
}

fn start_watchdog(limit: Duration) {
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            std::thread::sleep(limit);
            proto::fail(
                "watchdog",
                &format!(
                    "timed out after {} s; blocked tasks follow in the kernel log",
                    limit.as_secs()
                ),
            );
            let _ = std::fs::write("/proc/sys/kernel/sysrq", "1");
            let _ = std::fs::write("/proc/sysrq-trigger", "w");
            std::thread::sleep(Duration::from_secs(3));
            proto::end();
            let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
        });
    if let Err(e) = spawned {
        note!("watchdog not started: {e}");
    }
}

//! `blksnap-ktest`: kernel-level tests of blksnap.ko, run as /init (PID 1)
//! of a QEMU guest. The console protocol and the disks are described in
//! tests/KTEST.md; the host side (tests/tests/kmod.rs) boots one VM per
//! scenario and reads the protocol lines from the serial console.

mod ctx;
mod disks;
mod io;
mod params;
mod proto;
mod rng;
mod scenarios;
mod watchdog;
mod workload;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::ctx::Ctx;

/// The modules loaded at boot (also read by the host to fill the initramfs).
const MODULES_LIST: &str = include_str!("../modules.list");

/// Disks the functional scenarios use, by serial.
const FUNCTIONAL_DISKS: &[&str] = &["orig0", "orig1", "store0", "store1"];
/// Disks the benchmark uses.
const BENCH_DISKS: &[&str] = &["bench0", "bcow0"];

fn main() {
    let cmdline = proto::PROTO.start();
    let names = scenario_names(&cmdline);
    note!("scenarios: {}", names.join(","));
    match boot(&cmdline, &names) {
        Ok(ctx) => {
            run_all(&ctx, &names);
            finish(&ctx);
        }
        Err(e) => proto::PROTO.fail("boot", &format!("{e:#}")),
    }
    proto::PROTO.end();
    sysboot::power::sync_and_poweroff();
}

/// `ktest.scenario=a,b` | `all` | `bench` (default: all).
fn scenario_names(cmdline: &BTreeMap<String, String>) -> Vec<String> {
    let wanted = cmdline
        .get("ktest.scenario")
        .map(String::as_str)
        .unwrap_or("all");
    let mut out = Vec::new();
    for name in wanted.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "all" {
            out.extend(scenarios::FUNCTIONAL.iter().map(|(n, _)| (*n).to_owned()));
        } else {
            out.push(name.to_owned());
        }
    }
    out
}

fn boot(cmdline: &BTreeMap<String, String>, names: &[String]) -> Result<Ctx> {
    let index = sysboot::modules::ModuleIndex::open_running()?;
    index.load_list(MODULES_LIST).context("modules.list")?;
    let modules_dir = index.root().to_path_buf();
    let modparams = cmdline
        .get("ktest.modparams")
        .map(|p| p.replace(',', " "))
        .unwrap_or_default();
    let rounds = cmdline
        .get("ktest.rounds")
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let timeout = cmdline
        .get("ktest.timeout")
        .and_then(|t| t.parse().ok())
        .unwrap_or(540);
    watchdog::start(Duration::from_secs(timeout));

    let mut wanted: Vec<&str> = Vec::new();
    if names.iter().any(|n| n != "bench") {
        wanted.extend(FUNCTIONAL_DISKS);
    }
    if names.iter().any(|n| n == "bench") {
        wanted.extend(BENCH_DISKS);
    }
    let disks = disks::wait_for(&wanted, Duration::from_secs(30))?;
    for (serial, d) in &disks {
        note!("disk {serial}: {} {} {} bytes", d.name, d.dev, d.size);
    }
    let ctx = Ctx {
        disks,
        modules_dir,
        modparams,
        rounds,
    };
    ctx.load_blksnap()?;
    let ctl = ctx.ctl()?;
    note!(
        "blksnap {} loaded with params {:?}",
        ctl.version()?,
        ctx.modparams
    );
    Ok(ctx)
}

fn run_all(ctx: &Ctx, names: &[String]) {
    for name in names {
        let Some(run) = scenarios::find(name) else {
            proto::PROTO.begin(name);
            proto::PROTO.fail(name, "unknown scenario");
            continue;
        };
        proto::PROTO.begin(name);
        watchdog::arm(name);
        let start = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(ctx)));
        watchdog::disarm();
        // Each scenario starts from no snapshots and no trackers.
        if ctx::blksnap_in_proc_modules().unwrap_or(false) {
            if let Err(e) = cleanup() {
                note!("cleanup after {name}: {e:#}");
            }
        }
        proto::PROTO.report(name, outcome, start.elapsed());
    }
}

/// Destroys leftover snapshots, removes trackers and unloads the module.
fn finish(ctx: &Ctx) {
    if ctx::blksnap_in_proc_modules().unwrap_or(false) {
        if let Err(e) = cleanup() {
            note!("cleanup: {e:#}");
        }
    }
    // The module may have been unloaded by a scenario (cycles) and not come
    // back: then there is nothing to unload.
    match ctx.unload_blksnap() {
        Ok(()) => proto::PROTO.unloaded(),
        Err(e) => proto::PROTO.fail("unload", &format!("{e:#}")),
    }
}

fn cleanup() -> Result<()> {
    ctx::wait_path(Path::new(blksnap::DEFAULT_PATH), Duration::from_secs(5))?;
    let ctl = blksnap::Blksnap::open()?;
    for id in ctl.snapshot_collect()? {
        note!("cleanup: destroying leftover snapshot {id}");
        ctl.snapshot_destroy(id)?;
    }
    for info in ctl.tracker_collect()? {
        ctl.tracker_remove(info.dev)
            .with_context(|| format!("remove tracker of {}", info.dev))?;
    }
    Ok(())
}

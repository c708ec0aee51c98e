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
    install_panic_hook();
    if let Err(e) = sysboot::mounts::mount_early() {
        proto::fail("boot", &format!("mounts: {e}"));
    }
    let cmdline = sysboot::cmdline::read().unwrap_or_default();
    let names = scenario_names(&cmdline);
    note!("scenarios: {}", names.join(","));
    match boot(&cmdline, &names) {
        Ok(ctx) => {
            run_all(&ctx, &names);
            finish(&ctx);
        }
        Err(e) => proto::fail("boot", &format!("{e:#}")),
    }
    proto::end();
    sysboot::power::sync_and_poweroff();
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        sysboot::console::log(&format!(
            "ktest: panic in thread {}: {info}",
            thread.name().unwrap_or("?")
        ));
    }));
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
    let modparams = cmdline
        .get("ktest.modparams")
        .map(|p| p.split(',').collect::<Vec<_>>().join(" "))
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
            proto::begin(name);
            proto::fail(name, "unknown scenario");
            continue;
        };
        proto::begin(name);
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
        let secs = start.elapsed().as_secs_f64();
        match outcome {
            Ok(Ok(())) => {
                note!("{name} took {secs:.1} s");
                proto::pass(name);
            }
            Ok(Err(e)) => proto::fail(name, &format!("{e:#} (after {secs:.1} s)")),
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "non-string panic".to_owned());
                proto::fail(name, &format!("panicked: {msg}"));
            }
        }
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
        Ok(()) => proto::unloaded(),
        Err(e) => proto::fail("unload", &format!("{e:#}")),
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

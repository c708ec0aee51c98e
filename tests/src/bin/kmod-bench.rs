//! `kmod-bench`: boots one kernel-test VM with `ktest.scenario=bench` and
//! prints its write-throughput table (plain disk, blksnap fresh and copied,
//! tracked without a snapshot, dm-snapshot fresh and copied) with ratios
//! against the plain disk, measured in the same boot (medians of three).
//!
//! ```text
//! cargo run --release -p appliance-tests --bin kmod-bench
//! KMOD_BENCH_MODPARAMS=chunk_minimum_shift=16 cargo run --release -p appliance-tests --bin kmod-bench
//! ```
//!
//! Environment: `KMOD_BENCH_MODPARAMS` (module parameters, `a=1,b=2`),
//! `KMOD_BENCH_TIMEOUT` (seconds, default 3600).

#[path = "../../ktest/host/ktest_vm.rs"]
mod ktest_vm;

use std::process::ExitCode;
use std::time::Duration;

use appliance_tests::guest::Run;
use ktest_vm::{BENCH_DISKS, GUEST};

/// Targets from the module's design notes (ratio to the plain disk).
fn target(config: &str, workload: &str) -> Option<f64> {
    match (config, workload) {
        ("blksnap_fresh", "seq_1m") => Some(0.50),
        ("blksnap_fresh", "rand_4k") => Some(0.80),
        ("blksnap_copied", _) | ("tracked_no_snapshot", _) => Some(0.98),
        _ => None,
    }
}

struct Row {
    config: String,
    workload: String,
    mbps: f64,
    ratio: f64,
}

fn parse(line: &str) -> Option<Row> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(Row {
        config: v.get("config")?.as_str()?.to_owned(),
        workload: v.get("workload")?.as_str()?.to_owned(),
        mbps: v.get("mbps")?.as_f64()?,
        ratio: v.get("ratio")?.as_f64()?,
    })
}

fn main() -> ExitCode {
    let modparams = std::env::var("KMOD_BENCH_MODPARAMS").ok();
    let timeout = std::env::var("KMOD_BENCH_TIMEOUT")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(3600);
    eprintln!(
        "kmod-bench: booting the benchmark VM (modparams {:?}, timeout {timeout} s)",
        modparams.as_deref().unwrap_or("")
    );
    let out = GUEST.boot(&Run {
        name: "kmod-bench",
        scenario: "bench",
        modparams: modparams.as_deref(),
        disks: BENCH_DISKS,
        timeout: Duration::from_secs(timeout),
        memory_mb: 1024,
    });
    let rows: Vec<Row> = out.bench.iter().filter_map(|l| parse(l)).collect();
    println!(
        "{:<22} {:<8} {:>10} {:>8} {:>8}",
        "config", "workload", "MB/s", "ratio", "target"
    );
    for r in &rows {
        let goal = match target(&r.config, &r.workload) {
            Some(t) if r.ratio >= t => format!(">={t:.2} ok"),
            Some(t) => format!(">={t:.2} MISS"),
            None => String::new(),
        };
        println!(
            "{:<22} {:<8} {:>10.1} {:>7.2}x {goal}",
            r.config, r.workload, r.mbps, r.ratio
        );
    }
    println!("serial log: {}", out.log_path.display());
    if !out.failed.is_empty() || rows.is_empty() {
        for (name, msg) in &out.failed {
            eprintln!("KTEST-FAIL {name}: {msg}");
        }
        eprintln!("{}", out.tail(40));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

//! Tests of the supervisor core (crate `snapcore`) with the real blksnap module: one VM
//! boots Debian's kernel with an initramfs whose /init is `coreguest` (tests/coreguest)
//! and runs every functional scenario in order (backups under writes, incrementals with
//! exact byte counts, cancel, full target, corruption, leftovers, module missing). The
//! guest prints the protocol described in tests/coreguest/README.md; the test passes when
//! every scenario printed `CORE-PASS`, nothing printed `CORE-FAIL`, the module unloaded
//! and the kernel log has no defects.
//!
//! `supervisor_core_bench` (ignored; `cargo test -p appliance-tests --test core --
//! --ignored`) boots a second VM for the benchmark and prints its figures.

#[path = "../coreguest/host/core_vm.rs"]
mod core_vm;

use std::time::Duration;

use appliance_tests::guest::{Outcome, Run};
use appliance_tests::{logcheck, paths};
use core_vm::{BENCH_DISKS, FUNCTIONAL, FUNCTIONAL_DISKS, GUEST};

/// A small diff_storage_minimum (32 MiB: low-free-space events at 16 MiB left), so events
/// come with small difference storage, yet with more headroom than the module copies at
/// once (its copy-ahead takes 4 MiB in one step).
const MODPARAMS: &str = "diff_storage_minimum=65536";

fn where_(out: &Outcome) -> String {
    format!(
        "serial log: {}\n--- last lines ---\n{}",
        out.log_path.display(),
        out.tail(80)
    )
}

#[test]
fn supervisor_core_functional() {
    let out = GUEST.boot(&Run {
        name: "core-functional",
        scenario: "functional",
        modparams: Some(MODPARAMS),
        disks: FUNCTIONAL_DISKS,
        timeout: Duration::from_secs(2400),
        memory_mb: 1024,
    });
    if !out.failed.is_empty() {
        let fails: Vec<String> = out
            .failed
            .iter()
            .map(|(n, m)| format!("CORE-FAIL {n}: {m}"))
            .collect();
        panic!("{}\n{}", fails.join("\n"), where_(&out));
    }
    for name in FUNCTIONAL {
        assert!(
            out.passed.iter().any(|p| p == name),
            "scenario {name} did not pass (begun: {:?}, passed: {:?})\n{}",
            out.begun,
            out.passed,
            where_(&out)
        );
    }
    assert!(out.unloaded, "blksnap was not unloaded\n{}", where_(&out));
    assert!(out.ended, "no CORE-END\n{}", where_(&out));
    logcheck::assert_clean(&out.log, &out.log_path);
}

#[test]
#[ignore = "benchmark: boots a VM for several minutes"]
fn supervisor_core_bench() {
    let out = GUEST.boot(&Run {
        name: "core-bench",
        scenario: "bench",
        modparams: Some(""),
        disks: BENCH_DISKS,
        timeout: Duration::from_secs(3600),
        memory_mb: 1024,
    });
    assert!(out.failed.is_empty(), "{:?}\n{}", out.failed, where_(&out));
    assert!(
        out.passed.iter().any(|p| p == "bench"),
        "the benchmark did not pass\n{}",
        where_(&out)
    );
    let path = paths::artifacts_dir("core-bench").join("bench.jsonl");
    let mut text = out.bench.join("\n");
    text.push('\n');
    std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for line in &out.bench {
        println!("CORE-BENCH {line}");
    }
    println!("figures written to {}", path.display());
    logcheck::assert_clean(&out.log, &out.log_path);
}

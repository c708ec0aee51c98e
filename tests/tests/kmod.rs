//! Kernel-level tests of blksnap.ko: one VM per scenario, each booting
//! Debian's kernel with an initramfs whose /init is `blksnap-ktest`
//! (tests/ktest). The guest prints the protocol described in tests/KTEST.md;
//! a test passes when its scenario printed `KTEST-PASS`, nothing printed
//! `KTEST-FAIL`, the module unloaded, and the kernel log has no defects.

#[path = "../ktest/host/ktest_vm.rs"]
mod ktest_vm;

use std::time::Duration;

use appliance_tests::guest::{Outcome, Run};
use appliance_tests::logcheck;
use ktest_vm::{FUNCTIONAL_DISKS, GUEST};

fn scenario(name: &str, timeout_secs: u64, modparams: Option<&str>) {
    let vm_name = format!("kmod-{name}");
    let out = GUEST.boot(&Run {
        name: &vm_name,
        scenario: name,
        modparams,
        disks: FUNCTIONAL_DISKS,
        timeout: Duration::from_secs(timeout_secs),
        memory_mb: 1024,
    });
    check(name, &out);
}

fn check(name: &str, out: &Outcome) {
    let where_ = || {
        format!(
            "serial log: {}\n--- last lines ---\n{}",
            out.log_path.display(),
            out.tail(80)
        )
    };
    if !out.failed.is_empty() {
        let fails: Vec<String> = out
            .failed
            .iter()
            .map(|(n, m)| format!("KTEST-FAIL {n}: {m}"))
            .collect();
        panic!("{}\n{}", fails.join("\n"), where_());
    }
    assert!(
        out.passed.iter().any(|p| p == name),
        "scenario {name} did not pass (begun: {:?}, passed: {:?})\n{}",
        out.begun,
        out.passed,
        where_()
    );
    assert!(out.unloaded, "blksnap was not unloaded\n{}", where_());
    assert!(out.ended, "no KTEST-END\n{}", where_());
    logcheck::assert_clean(&out.log, &out.log_path);
}

#[test]
fn consistency() {
    scenario("consistency", 1200, None);
}

#[test]
fn partitions() {
    scenario("partitions", 600, None);
}

#[test]
fn discard() {
    scenario("discard", 600, None);
}

#[test]
fn cbt() {
    scenario("cbt", 600, None);
}

#[test]
fn low_space() {
    // A small diff_storage_minimum (8 MiB) so the threshold is reached with
    // little I/O.
    scenario("low_space", 600, Some("diff_storage_minimum=16384"));
}

#[test]
fn overflow() {
    scenario("overflow", 600, None);
}

#[test]
fn image_write() {
    scenario("image_write", 600, None);
}

#[test]
fn cycles() {
    scenario("cycles", 600, None);
}

#[test]
fn bad_input() {
    scenario("bad_input", 600, None);
}

/// Every functional scenario one after another in a single boot (run with
/// `--ignored`): checks that scenarios leave nothing behind for the next.
#[test]
#[ignore = "long: every scenario in one VM"]
fn all_in_one_boot() {
    let out = GUEST.boot(&Run {
        name: "kmod-all",
        scenario: "all",
        modparams: None,
        disks: FUNCTIONAL_DISKS,
        timeout: Duration::from_secs(2400),
        memory_mb: 1024,
    });
    for name in [
        "consistency",
        "partitions",
        "discard",
        "cbt",
        "low_space",
        "overflow",
        "image_write",
        "cycles",
        "bad_input",
    ] {
        check(name, &out);
    }
}

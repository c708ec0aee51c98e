//! Host side of the supervisor-core guest (tests/coreguest/README.md), included by
//! tests/tests/core.rs with `#[path]`: what `appliance_tests::guest` needs to build and
//! boot `coreguest`, and the disks of its two runs.

#![allow(dead_code)]

use std::path::PathBuf;

use appliance_tests::guest::{Disk, Guest, MIB};
use appliance_tests::qemu::DiskBus;
use appliance_tests::{build, Result};
use sysboot::testguest;

/// `coreguest` as /init, with the release `appliance` binary for the CLI scenario.
pub const GUEST: Guest = Guest {
    protocol: testguest::CORE,
    package: "snapcore-coreguest",
    bin: "coreguest",
    modules_list: "tests/coreguest/modules.list",
    initramfs: ("core-initramfs", "core.cpio.zst"),
    bins,
};

/// The CLI scenario runs the real binary, as shipped (release).
fn bins() -> Result<Vec<PathBuf>> {
    Ok(vec![build::cargo_bin("appliance", "appliance", true)?])
}

/// The functional scenarios' disks (tests/coreguest/README.md).
pub const FUNCTIONAL_DISKS: &[Disk] = &[
    Disk::new("prod0", 48 * MIB),
    Disk::new("scratch0", 64 * MIB),
    Disk::new("backup0", 512 * MIB).ext4(),
    Disk::new("small0", 24 * MIB).ext4(),
    Disk::new("restore0", 64 * MIB).on(DiskBus::VirtioScsi),
];

/// The benchmark's disks.
pub const BENCH_DISKS: &[Disk] = &[
    // 1 GiB: the snapshot's fixed cost (create, take, release) weighs in an incremental
    // as it would on a real disk, not as on a toy one.
    Disk::new("bench0", 1024 * MIB),
    Disk::new("scratch0", 256 * MIB),
    Disk::new("backup0", 3072 * MIB).ext4(),
];

/// The functional scenarios, in the order the guest runs them.
pub const FUNCTIONAL: &[&str] = &[
    "devices",
    "errors",
    "full_under_writes",
    "incremental",
    "cancel",
    "target_full",
    "corruption",
    "cli",
    "leftovers",
    "module_missing",
];

//! Host side of the kernel-test guest (tests/KTEST.md), shared by `tests/tests/kmod.rs`
//! and `tests/src/bin/kmod-bench.rs` (both include this file with `#[path]`): what
//! `appliance_tests::guest` needs to build and boot `blksnap-ktest`, and its disks.

#![allow(dead_code)]

use std::path::PathBuf;

use appliance_tests::guest::{Disk, Guest, MIB};
use appliance_tests::Result;
use sysboot::testguest;

/// `blksnap-ktest` as /init, with `dmsetup` for the benchmark's dm-snapshot baseline.
pub const GUEST: Guest = Guest {
    protocol: testguest::KTEST,
    package: "blksnap-ktest",
    bin: "blksnap-ktest",
    modules_list: "tests/ktest/modules.list",
    initramfs: ("kmod-initramfs", "ktest.cpio.zst"),
    bins,
};

fn bins() -> Result<Vec<PathBuf>> {
    Ok(["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| PathBuf::from(d).join("dmsetup"))
        .find(|p| p.is_file())
        .into_iter()
        .collect())
}

/// The functional disks. orig0 is not a multiple of the chunk size (its last chunk is
/// partial).
pub const FUNCTIONAL_DISKS: &[Disk] = &[
    Disk::new("orig0", 64 * MIB + 192 * 1024),
    Disk::new("orig1", 48 * MIB),
    Disk::new("store0", 256 * MIB),
    Disk::new("store1", 64 * MIB),
];

/// The benchmark's disks, attached with `cache=none` (as the baselines in the design
/// notes were measured).
pub const BENCH_DISKS: &[Disk] = &[
    Disk::new("bench0", 256 * MIB).direct(),
    Disk::new("bcow0", 512 * MIB).direct(),
];

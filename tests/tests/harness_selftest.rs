//! Self-test of the QEMU harness: one direct-kernel boot of Debian's kernel with an
//! initramfs whose /init is `harness-init`, two test disks (virtio-blk and virtio-scsi)
//! with serials. Checks that the guest loaded images/modules.list, saw both serials,
//! powered off cleanly, and that the kernel log has no defects.

use std::time::Duration;

use appliance_tests::build::{self, InitramfsSpec};
use appliance_tests::qemu::{self, Boot, DiskBus, DiskSpec, Vm, VmConfig};
use appliance_tests::{logcheck, paths};

const NAME: &str = "harness_selftest";

#[test]
fn boots_kernel_sees_disk_serials_and_powers_off() {
    let kver = paths::kernel_release();
    let dir = paths::artifacts_dir(NAME);
    let init =
        build::cargo_bin("appliance-tests", "harness-init", true).expect("build harness-init");
    let initrd = build::initramfs(&InitramfsSpec {
        out: dir.join("initramfs.cpio.zst"),
        kver: kver.clone(),
        init,
        modules_list: build::appliance_modules_list(),
        ..InitramfsSpec::default()
    })
    .expect("build initramfs");

    let prod = dir.join("prod0.img");
    let scratch = dir.join("scratch0.img");
    qemu::disk_image(&prod, 64 << 20).expect("prod0 image");
    qemu::disk_image(&scratch, 32 << 20).expect("scratch0 image");

    let mut cfg = VmConfig::new(
        NAME,
        Boot::Kernel {
            kernel: paths::kernel_image(&kver),
            initrd,
            append: "console=ttyS0,115200 panic=-1 harness.disks=2".into(),
        },
    );
    cfg.disks.push(DiskSpec::raw(&prod, "prod0"));
    cfg.disks.push(DiskSpec {
        path: scratch,
        serial: "scratch0".into(),
        format: "raw",
        bus: DiskBus::VirtioScsi,
    });

    let mut vm = Vm::start(cfg).expect("start VM");
    let after_kernel = vm
        .wait_for_serial_from(0, "HARNESS-INIT: kernel", Duration::from_secs(300))
        .expect("guest reached /init");
    match vm.qmp("query-status", None) {
        Ok(status) => assert_eq!(status["running"], serde_json::Value::Bool(true), "{status}"),
        // A fast host (KVM) may finish the guest before the question is asked.
        Err(_) if vm.try_status().is_some() => println!("VM already exited; QMP not checked"),
        Err(err) => panic!("QMP query-status: {err}"),
    }
    vm.wait_for_serial_from(after_kernel, "HARNESS-INIT: done", Duration::from_secs(300))
        .expect("guest init finished");
    let boot_seconds = vm.elapsed().as_secs_f64();
    let status = vm
        .wait_exit(Duration::from_secs(60))
        .expect("VM powers off");
    let log = vm.serial_log();

    assert!(status.success(), "QEMU exited with {status}");
    assert!(
        log.contains("HARNESS-INIT: disk vda serial=prod0"),
        "virtio-blk serial not seen; see {}",
        vm.log_path().display()
    );
    assert!(
        log.contains("HARNESS-INIT: disk sda serial=scratch0"),
        "virtio-scsi serial not seen; see {}",
        vm.log_path().display()
    );
    assert!(
        !log.contains("HARNESS-INIT: module "),
        "a listed module failed to load; see {}",
        vm.log_path().display()
    );
    assert!(
        log.contains("reboot: Power down"),
        "guest did not power off"
    );
    logcheck::assert_clean(&log, vm.log_path());

    let guest_uptime = log
        .lines()
        .filter_map(|l| l.strip_prefix("HARNESS-INIT: uptime "))
        .next_back()
        .unwrap_or("?");
    println!("harness self-test: init done {boot_seconds:.1} s after QEMU start (guest uptime {guest_uptime})");
}

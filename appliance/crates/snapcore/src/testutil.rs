//! A fake machine for unit tests: a sysfs tree with disks, their device files, and a
//! [`FakeDriver`] that snapshots them.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use blksnap::DevId;

use crate::devices::tests::{add_disk, FakeDisk};
use crate::devices::Scanner;
use crate::driver::Kernel;
use crate::fake::FakeDriver;

pub const MIB: u64 = 1 << 20;

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

pub struct FakeHost {
    pub tmp: tempfile::TempDir,
    pub scanner: Scanner,
    pub fake: Arc<FakeDriver>,
    pub kernel: Kernel,
}

pub const PROD: DevId = DevId::new(254, 0);
pub const PROD1: DevId = DevId::new(254, 48);

impl FakeHost {
    /// prod0 (vda, 8 MiB of noise), scratch0 (vdb, 64 MiB, blank), tiny0 (vdc, 3 MiB),
    /// prod1 (vdd, 4 MiB of noise).
    pub fn new() -> FakeHost {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("dev")).unwrap();
        fs::write(root.join("mountinfo"), "").unwrap();
        let fake = Arc::new(FakeDriver::new(root.join("dev")));
        for (name, slot, dev, mib, serial, fill) in [
            ("vda", 2u32, PROD, 8u64, "prod0", true),
            ("vdb", 3, DevId::new(254, 16), 64, "scratch0", false),
            ("vdc", 4, DevId::new(254, 32), 3, "tiny0", false),
            ("vdd", 5, PROD1, 4, "prod1", true),
        ] {
            let devpath = format!("pci0000:00/0000:00:{slot:02x}.0/virtio{slot}/block");
            let dev_text = dev.to_string();
            let serial_line = format!("{serial}\n");
            add_disk(
                root,
                &FakeDisk {
                    name,
                    devpath: &devpath,
                    dev: &dev_text,
                    sectors: mib * MIB / 512,
                    attrs: &[("serial", serial_line.as_bytes())],
                },
            );
            let path = root.join("dev").join(name);
            if fill {
                fs::write(&path, noise(u64::from(slot), (mib * MIB) as usize)).unwrap();
            } else {
                fs::File::create(&path).unwrap().set_len(mib * MIB).unwrap();
            }
            fake.add_device(dev, &path);
        }
        let kernel = Kernel::with_driver(fake.clone());
        FakeHost {
            scanner: Scanner::rooted(root),
            tmp,
            fake,
            kernel,
        }
    }

    pub fn dev_path(&self, name: &str) -> PathBuf {
        self.tmp.path().join("dev").join(name)
    }
}

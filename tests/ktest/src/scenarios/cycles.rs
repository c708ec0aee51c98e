//! `cycles`: ten rounds of create, append, take (and a second TAKE giving
//! EALREADY), destroy, tracker removal, rmmod and insmod; /proc/modules,
//! /dev/blksnap and the class attribute follow each step.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use blksnap::SectorRange;
use nix::errno::Errno;

use crate::ctx::{blksnap_in_proc_modules, Ctx, Snap};
use crate::io;
use crate::{check, note};

const CYCLES: usize = 10;

fn wait_gone(path: &Path, timeout: Duration) -> bool {
    let start = Instant::now();
    while path.exists() {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn check_loaded() -> Result<()> {
    check!(
        blksnap_in_proc_modules()?,
        "blksnap is not in /proc/modules"
    );
    let major: u32 = std::fs::read_to_string("/sys/class/blksnap/major")
        .context("read /sys/class/blksnap/major")?
        .trim()
        .parse()
        .context("parse /sys/class/blksnap/major")?;
    let meta = std::fs::metadata(blksnap::DEFAULT_PATH).context("stat /dev/blksnap")?;
    check!(
        meta.file_type().is_char_device(),
        "/dev/blksnap is not a character device"
    );
    let rdev = std::os::unix::fs::MetadataExt::rdev(&meta);
    let dev_major = nix::sys::stat::major(rdev) as u32;
    check!(
        dev_major == major,
        "/dev/blksnap has major {dev_major}, /sys/class/blksnap/major says {major}"
    );
    Ok(())
}

pub fn run(ctx: &Ctx) -> Result<()> {
    let orig = ctx.disk("orig0")?;
    let store = ctx.disk("store0")?;
    for cycle in 0..CYCLES {
        one(ctx, orig, store).with_context(|| format!("cycle {cycle}"))?;
    }
    note!("cycles: {CYCLES} load/snapshot/unload cycles passed");
    Ok(())
}

fn one(ctx: &Ctx, orig: &crate::disks::Disk, store: &crate::disks::Disk) -> Result<()> {
    check_loaded()?;
    {
        let ctl = ctx.ctl()?;
        ctl.version()?;
        let snap = Snap::create(&ctl, &[orig.dev])?;
        snap.append(store, &[SectorRange::new(0, 131072)])?;
        snap.take()?;
        match ctl.take(snap.id) {
            Err(e) if e.errno == Errno::EALREADY => {}
            other => anyhow::bail!("second TAKE gave {other:?}, expected EALREADY"),
        }
        let image = snap.image_of(orig.dev)?;
        let head = io::read_device(&orig.path, 1 << 20)?;
        let f = io::open_direct(&orig.path, true)?;
        io::write_direct(&f, 0, &vec![0x5a; 65536])?;
        let img_head = io::read_device(&image, 1 << 20)?;
        check!(
            img_head == head,
            "image head differs from the original's before the write"
        );
        io::write_direct(&f, 0, &head[..65536])?;
        drop(f);
        snap.destroy()?;
        ctl.tracker_remove(orig.dev)?;
        check!(
            ctl.tracker_collect()?.is_empty(),
            "trackers left after TRACKER_REMOVE"
        );
    }
    if let Err(e) = ctx.unload_blksnap() {
        let refcnt = std::fs::read_to_string("/sys/module/blksnap/refcnt").unwrap_or_default();
        anyhow::bail!("{e:#} (refcnt {})", refcnt.trim());
    }
    check!(
        !blksnap_in_proc_modules()?,
        "blksnap still in /proc/modules after rmmod"
    );
    check!(
        wait_gone(Path::new(blksnap::DEFAULT_PATH), Duration::from_secs(5)),
        "/dev/blksnap still exists after rmmod"
    );
    check!(
        !Path::new("/sys/class/blksnap").exists(),
        "/sys/class/blksnap still exists after rmmod"
    );
    ctx.load_blksnap()?;
    check_loaded()
}

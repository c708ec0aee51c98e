//! `bad_input`: malformed and out-of-order requests get the errno the
//! contract names (blksnap-uapi.md) and never hurt the kernel. Every case is
//! run and all mismatches are reported together; cases the contract leaves
//! open are printed as notes.

use std::os::fd::AsFd;
use std::ptr;
use std::time::{Duration, Instant};

use anyhow::Result;
use blksnap::uapi::*;
use blksnap::{raw, Blksnap, DevId, SectorRange, SnapshotId};
use nix::errno::Errno;

use crate::ctx::{storage_ranges, Ctx, Snap};
use crate::{io, note};

/// Device numbers no block device has.
const NO_DEV: [DevId; 2] = [DevId::new(1, 3), DevId::new(259, 9999)];
/// A user address with nothing mapped.
const BAD_PTR: usize = 0x10;
const UNKNOWN_ID: SnapshotId = SnapshotId([0x5a; 16]);

struct Cases {
    failures: Vec<String>,
    passed: usize,
}

impl Cases {
    /// The case must fail with one of `want`.
    fn expect(&mut self, what: &str, got: Result<i32, Errno>, want: &[Errno]) {
        match got {
            Err(e) if want.contains(&e) => self.passed += 1,
            other => self
                .failures
                .push(format!("{what}: got {}, expected {want:?}", show(other))),
        }
    }

    fn expect_ok(&mut self, what: &str, got: Result<i32, Errno>) {
        match got {
            Ok(_) => self.passed += 1,
            other => self
                .failures
                .push(format!("{what}: got {}, expected success", show(other))),
        }
    }

    fn check(&mut self, what: &str, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.failures.push(what.to_owned());
        }
    }
}

fn show(r: Result<i32, Errno>) -> String {
    match r {
        Ok(v) => format!("success ({v})"),
        Err(e) => format!("{e:?}"),
    }
}

fn info(what: &str, r: Result<i32, Errno>) {
    note!("bad_input (open case) {what}: {}", show(r));
}

fn bad<T>() -> *mut T {
    BAD_PTR as *mut T
}

fn dev_raw(d: DevId) -> BlkSnapDev {
    BlkSnapDev {
        mj: d.major,
        mn: d.minor,
    }
}

fn uuid(id: SnapshotId) -> BlkSnapUuid {
    BlkSnapUuid { b: id.0 }
}

pub fn run(ctx: &Ctx) -> Result<()> {
    let orig0 = ctx.disk("orig0")?;
    let orig1 = ctx.disk("orig1")?;
    let store = ctx.disk("store0")?;
    let ctl = ctx.ctl()?;
    let fd = ctl.as_fd();
    let mut c = Cases {
        failures: Vec::new(),
        passed: 0,
    };

    // SAFETY (all raw calls below): every pointer is null, BAD_PTR (an
    // unmapped low address the kernel must refuse with EFAULT), or points
    // to a live local of the size the request implies, and any count a
    // valid pointer comes with is no larger than what it points to, except
    // where the kernel is expected to refuse the count before copying.

    // Null argument structs.
    // SAFETY: see above.
    unsafe {
        c.expect(
            "VERSION(NULL)",
            raw::version(fd, ptr::null_mut()),
            &[Errno::EFAULT],
        );
        c.expect(
            "TRACKER_REMOVE(NULL)",
            raw::tracker_remove(fd, ptr::null_mut()),
            &[Errno::EFAULT],
        );
        c.expect(
            "TRACKER_COLLECT(NULL)",
            raw::tracker_collect(fd, ptr::null_mut()),
            &[Errno::EFAULT],
        );
        c.expect(
            "READ_CBT_MAP(NULL)",
            raw::tracker_read_cbt_map(fd, ptr::null_mut()),
            &[Errno::EFAULT],
        );
        c.expect(
            "MARK_DIRTY(NULL)",
            raw::tracker_mark_dirty_blocks(fd, ptr::null_mut()),
            &[Errno::EFAULT],
        );
        c.expect(
            "SNAPSHOT_CREATE(NULL)",
            raw::snapshot_create(fd, ptr::null_mut()),
            &[Errno::EFAULT],
        );
        c.expect(
            "SNAPSHOT_DESTROY(NULL)",
            raw::snapshot_destroy(fd, ptr::null_mut()),
            &[Errno::EFAULT],
        );
        c.expect(
            "APPEND_STORAGE(NULL)",
            raw::snapshot_append_storage(fd, ptr::null_mut()),
            &[Errno::EFAULT],
        );
        c.expect(
            "SNAPSHOT_TAKE(NULL)",
            raw::snapshot_take(fd, ptr::null_mut()),
            &[Errno::EFAULT],
        );
        c.expect(
            "SNAPSHOT_COLLECT(NULL)",
            raw::snapshot_collect(fd, ptr::null_mut()),
            &[Errno::EFAULT],
        );
        c.expect(
            "COLLECT_IMAGES(NULL)",
            raw::snapshot_collect_images(fd, ptr::null_mut()),
            &[Errno::EFAULT],
        );
        c.expect(
            "WAIT_EVENT(NULL)",
            raw::snapshot_wait_event(fd, ptr::null_mut()),
            &[Errno::EFAULT],
        );
        c.expect(
            "VERSION(bad pointer)",
            raw::version(fd, bad()),
            &[Errno::EFAULT],
        );
    }

    // Unknown request numbers.
    // SAFETY: the argument is a live local; unknown requests must not touch it.
    unsafe {
        let mut v = BlkSnapVersion::default();
        let r = nix::libc::ioctl(
            fd_raw(&ctl),
            nix::request_code_write!(BLK_SNAP, 12, std::mem::size_of::<BlkSnapVersion>()),
            &mut v,
        );
        info(
            "request number 12",
            if r < 0 { Err(Errno::last()) } else { Ok(r) },
        );
    }

    // CREATE with bad device lists.
    let mut devs = [dev_raw(orig0.dev), dev_raw(orig1.dev)];
    let create = |count: u32, array: *mut BlkSnapDev| {
        let mut arg = BlkSnapSnapshotCreate {
            count,
            dev_id_array: array,
            id: BlkSnapUuid::default(),
        };
        // SAFETY: see above.
        let r = unsafe { raw::snapshot_create(fd, &mut arg) };
        if r.is_ok() {
            let _ = ctl.snapshot_destroy(SnapshotId(arg.id.b));
        }
        r
    };
    c.expect(
        "CREATE count 0",
        create(0, devs.as_mut_ptr()),
        &[Errno::EINVAL],
    );
    c.expect(
        "CREATE null array",
        create(1, ptr::null_mut()),
        &[Errno::EFAULT],
    );
    c.expect("CREATE bad array", create(1, bad()), &[Errno::EFAULT]);
    c.expect(
        "CREATE count u32::MAX",
        create(u32::MAX, devs.as_mut_ptr()),
        &[Errno::EINVAL, Errno::EFAULT, Errno::ENOMEM],
    );
    for d in NO_DEV {
        let mut one = [dev_raw(d)];
        c.expect(
            &format!("CREATE unknown device {d}"),
            create(1, one.as_mut_ptr()),
            &[Errno::ENODEV],
        );
    }
    let mut twice = [dev_raw(orig0.dev), dev_raw(orig0.dev)];
    info(
        "CREATE with a device listed twice",
        create(2, twice.as_mut_ptr()),
    );
    // The trackers those may have attached are removed at the end.

    // Unknown snapshot id.
    c.expect(
        "DESTROY unknown id",
        ctl.snapshot_destroy(UNKNOWN_ID)
            .map(|_| 0)
            .map_err(|e| e.errno),
        &[Errno::ESRCH],
    );
    c.expect(
        "TAKE unknown id",
        ctl.take(UNKNOWN_ID).map(|_| 0).map_err(|e| e.errno),
        &[Errno::ESRCH],
    );
    c.expect(
        "APPEND_STORAGE unknown id",
        ctl.append_storage(UNKNOWN_ID, store.dev, &[SectorRange::new(0, 2048)])
            .map(|_| 0)
            .map_err(|e| e.errno),
        &[Errno::ESRCH],
    );
    c.expect(
        "COLLECT_IMAGES unknown id",
        ctl.collect_images(UNKNOWN_ID)
            .map(|_| 0)
            .map_err(|e| e.errno),
        &[Errno::ESRCH],
    );
    c.expect(
        "WAIT_EVENT unknown id",
        ctl.wait_event(UNKNOWN_ID, Duration::from_millis(100))
            .map(|_| 0)
            .map_err(|e| e.errno),
        &[Errno::ESRCH],
    );

    // Untracked devices.
    for d in NO_DEV.iter().copied().chain([store.dev]) {
        c.expect(
            &format!("TRACKER_REMOVE untracked {d}"),
            ctl.tracker_remove(d).map(|_| 0).map_err(|e| e.errno),
            &[Errno::ENODEV],
        );
        c.expect(
            &format!("READ_CBT_MAP untracked {d}"),
            ctl.read_cbt_map(d, 0, 16).map(|_| 0).map_err(|e| e.errno),
            &[Errno::ENODEV],
        );
        c.expect(
            &format!("MARK_DIRTY untracked {d}"),
            ctl.mark_dirty(d, &[SectorRange::new(0, 8)])
                .map(|_| 0)
                .map_err(|e| e.errno),
            &[Errno::ENODEV],
        );
    }

    // A snapshot of two disks, before TAKE.
    let snap = Snap::create(&ctl, &[orig0.dev, orig1.dev])?;
    c.expect(
        "TAKE before APPEND_STORAGE",
        ctl.take(snap.id).map(|_| 0).map_err(|e| e.errno),
        &[Errno::ENOSPC],
    );
    c.expect(
        "COLLECT_IMAGES before TAKE",
        ctl.collect_images(snap.id).map(|_| 0).map_err(|e| e.errno),
        &[Errno::ENODEV],
    );
    c.expect(
        "CREATE of a device already in a snapshot",
        ctl.snapshot_create(&[orig0.dev])
            .map(|_| 0)
            .map_err(|e| e.errno),
        &[Errno::EBUSY],
    );
    c.expect(
        "TRACKER_REMOVE while in a snapshot",
        ctl.tracker_remove(orig0.dev)
            .map(|_| 0)
            .map_err(|e| e.errno),
        &[Errno::EBUSY],
    );

    // APPEND_STORAGE argument checks.
    let mut range = [BlkSnapBlockRange {
        sector_offset: 0,
        sector_count: 2048,
    }];
    let append = |dev: DevId, count: u32, ranges: *mut BlkSnapBlockRange| {
        let mut arg = BlkSnapSnapshotAppendStorage {
            id: uuid(snap.id),
            dev_id: dev_raw(dev),
            count,
            ranges,
        };
        // SAFETY: see above.
        unsafe { raw::snapshot_append_storage(fd, &mut arg) }
    };
    c.expect(
        "APPEND_STORAGE null ranges",
        append(store.dev, 1, ptr::null_mut()),
        &[Errno::EFAULT],
    );
    c.expect(
        "APPEND_STORAGE bad ranges",
        append(store.dev, 1, bad()),
        &[Errno::EFAULT],
    );
    c.expect(
        "APPEND_STORAGE count u32::MAX",
        append(store.dev, u32::MAX, range.as_mut_ptr()),
        &[Errno::EINVAL, Errno::EFAULT, Errno::ENOMEM],
    );
    for d in NO_DEV {
        c.expect(
            &format!("APPEND_STORAGE unknown device {d}"),
            append(d, 1, range.as_mut_ptr()),
            &[Errno::ENODEV],
        );
    }
    let mut wrap = [BlkSnapBlockRange {
        sector_offset: u64::MAX - 8,
        sector_count: 64,
    }];
    c.expect(
        "APPEND_STORAGE range wrapping u64",
        append(store.dev, 1, wrap.as_mut_ptr()),
        &[Errno::EINVAL],
    );
    let mut beyond = [BlkSnapBlockRange {
        sector_offset: store.size / 512 - 8,
        sector_count: 64,
    }];
    info(
        "APPEND_STORAGE range past the device end",
        append(store.dev, 1, beyond.as_mut_ptr()),
    );
    info(
        "APPEND_STORAGE count 0",
        append(store.dev, 0, range.as_mut_ptr()),
    );

    // Events: the CREATE-time event, then a timeout that is honoured.
    let mut events = 0;
    while let Ok(Some(_)) = ctl.wait_event(snap.id, Duration::from_millis(100)) {
        events += 1;
        if events > 8 {
            break;
        }
    }
    c.check(
        &format!("{events} events queued by CREATE, expected one"),
        events == 1,
    );
    let start = Instant::now();
    let r = ctl.wait_event(snap.id, Duration::from_millis(100));
    let waited = start.elapsed();
    c.check(
        &format!("WAIT_EVENT 100 ms with no event gave {r:?} after {waited:?}, expected ENOENT after about 100 ms"),
        matches!(r, Ok(None)) && waited >= Duration::from_millis(80) && waited < Duration::from_secs(3),
    );

    // Storage, TAKE, TAKE again.
    snap.append(store, &storage_ranges(store, 2))?;
    c.expect_ok("TAKE", ctl.take(snap.id).map(|_| 0).map_err(|e| e.errno));
    c.expect(
        "TAKE twice",
        ctl.take(snap.id).map(|_| 0).map_err(|e| e.errno),
        &[Errno::EALREADY],
    );
    c.expect(
        "TRACKER_REMOVE while in a taken snapshot",
        ctl.tracker_remove(orig1.dev)
            .map(|_| 0)
            .map_err(|e| e.errno),
        &[Errno::EBUSY],
    );

    // Count protocols: too small counts give ENODATA and the needed count.
    let mut one_image = [BlkSnapImageInfo::default()];
    let mut ci = BlkSnapSnapshotCollectImages {
        id: uuid(snap.id),
        count: 1,
        image_info_array: one_image.as_mut_ptr(),
    };
    // SAFETY: see above (array of one, count one).
    let r = unsafe { raw::snapshot_collect_images(fd, &mut ci) };
    c.expect("COLLECT_IMAGES count 1 of 2", r, &[Errno::ENODATA]);
    c.check(
        &format!("COLLECT_IMAGES wrote back count {}, expected 2", ci.count),
        ci.count == 2,
    );
    ci.count = 0;
    ci.image_info_array = ptr::null_mut();
    // SAFETY: see above (null array asks for the count).
    let r = unsafe { raw::snapshot_collect_images(fd, &mut ci) };
    c.expect_ok("COLLECT_IMAGES null array", r);
    c.check(
        &format!("COLLECT_IMAGES null array count {}, expected 2", ci.count),
        ci.count == 2,
    );
    ci.count = 2;
    ci.image_info_array = bad();
    // SAFETY: see above (BAD_PTR).
    let r = unsafe { raw::snapshot_collect_images(fd, &mut ci) };
    c.expect("COLLECT_IMAGES bad array", r, &[Errno::EFAULT]);

    let mut one_info = [BlkSnapCbtInfo::default()];
    let mut tc = BlkSnapTrackerCollect {
        count: 1,
        cbt_info_array: one_info.as_mut_ptr(),
    };
    // SAFETY: see above (array of one, count one).
    let r = unsafe { raw::tracker_collect(fd, &mut tc) };
    c.expect("TRACKER_COLLECT count 1 of 2", r, &[Errno::ENODATA]);
    c.check(
        &format!("TRACKER_COLLECT wrote back count {}, expected 2", tc.count),
        tc.count == 2,
    );
    tc.count = 2;
    tc.cbt_info_array = bad();
    // SAFETY: see above (BAD_PTR).
    let r = unsafe { raw::tracker_collect(fd, &mut tc) };
    c.expect("TRACKER_COLLECT bad array", r, &[Errno::EFAULT]);

    // A second snapshot; both must be listed.
    let second = Snap::create(&ctl, &[store.dev])?;
    let ids = ctl.snapshot_collect().map_err(|e| e.errno);
    c.check(
        &format!(
            "SNAPSHOT_COLLECT lists {ids:?}, expected both {} and {}",
            snap.id, second.id
        ),
        matches!(&ids, Ok(v) if v.len() == 2 && v.contains(&snap.id) && v.contains(&second.id)),
    );
    let mut one_id = [BlkSnapUuid::default()];
    let mut sc = BlkSnapSnapshotCollect {
        count: 1,
        ids: one_id.as_mut_ptr(),
    };
    // SAFETY: see above (array of one, count one).
    let r = unsafe { raw::snapshot_collect(fd, &mut sc) };
    c.expect("SNAPSHOT_COLLECT count 1 of 2", r, &[Errno::ENODATA]);
    c.check(
        &format!("SNAPSHOT_COLLECT wrote back count {}, expected 2", sc.count),
        sc.count == 2,
    );
    second.destroy()?;
    let _ = ctl.tracker_remove(store.dev);

    // READ_CBT_MAP and MARK_DIRTY argument checks on a tracked device.
    let info0 = ctl.tracker_info(orig0.dev)?;
    if let Some(i) = info0 {
        let mut buf = vec![0u8; i.blk_count as usize];
        let mut rd = BlkSnapTrackerReadCbtBitmap {
            dev_id: dev_raw(orig0.dev),
            offset: 0,
            length: 16,
            buff: ptr::null_mut(),
        };
        // SAFETY: see above (null buffer).
        let r = unsafe { raw::tracker_read_cbt_map(fd, &mut rd) };
        c.expect("READ_CBT_MAP null buffer", r, &[Errno::EFAULT]);
        rd.buff = buf.as_mut_ptr();
        rd.length = u32::MAX;
        // SAFETY: the buffer holds the whole map, the most the kernel can copy.
        let r = unsafe { raw::tracker_read_cbt_map(fd, &mut rd) };
        info("READ_CBT_MAP length u32::MAX from offset 0", r);
        rd.offset = u32::MAX;
        rd.length = 16;
        // SAFETY: as above.
        let r = unsafe { raw::tracker_read_cbt_map(fd, &mut rd) };
        info("READ_CBT_MAP offset u32::MAX", r);
    } else {
        c.check("orig0 is not tracked during its snapshot", false);
    }
    let mut md = BlkSnapTrackerMarkDirtyBlocks {
        dev_id: dev_raw(orig0.dev),
        count: u32::MAX,
        dirty_blocks_array: range.as_mut_ptr(),
    };
    // SAFETY: see above (the count must be refused before copying).
    let r = unsafe { raw::tracker_mark_dirty_blocks(fd, &mut md) };
    c.expect(
        "MARK_DIRTY count u32::MAX",
        r,
        &[Errno::EINVAL, Errno::EFAULT, Errno::ENOMEM],
    );
    md.count = 1;
    md.dirty_blocks_array = bad();
    // SAFETY: see above (BAD_PTR).
    let r = unsafe { raw::tracker_mark_dirty_blocks(fd, &mut md) };
    c.expect("MARK_DIRTY bad array", r, &[Errno::EFAULT]);
    info(
        "MARK_DIRTY range past the device end",
        ctl.mark_dirty(orig0.dev, &[SectorRange::new(orig0.size / 512 - 8, 64)])
            .map(|_| 0)
            .map_err(|e| e.errno),
    );

    // The module still works after all that.
    let image = snap.image_of(orig0.dev)?;
    let head = io::read_device(&orig0.path, 1 << 20)?;
    let img = io::read_device(&image, 1 << 20)?;
    c.check("image head differs from the original", head == img);
    snap.destroy()?;
    for t in ctl.tracker_collect()? {
        let _ = ctl.tracker_remove(t.dev);
    }
    drop(ctl);
    let ctl = Blksnap::open()?;
    let s = Snap::take_new(&ctl, &[orig0.dev], store, &storage_ranges(store, 1))?;
    s.destroy()?;

    note!(
        "bad_input: {} cases as expected, {} not",
        c.passed,
        c.failures.len()
    );
    if !c.failures.is_empty() {
        anyhow::bail!(
            "{} cases wrong:\n{}",
            c.failures.len(),
            c.failures.join("\n")
        );
    }
    Ok(())
}

fn fd_raw(ctl: &Blksnap) -> i32 {
    std::os::fd::AsRawFd::as_raw_fd(&ctl.as_fd())
}

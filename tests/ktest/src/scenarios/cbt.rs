//! `cbt`: the change map. Between two snapshots, exactly the tracking blocks
//! written get the new snap number; the generation id stays; the frozen map
//! is what READ_CBT_MAP returns while a snapshot is held; `offset` is
//! honoured; MARK_DIRTY_BLOCKS (on the original or on an image) marks
//! exactly the blocks of its ranges.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use blksnap::{Blksnap, CbtInfo, DevId, SectorRange};

use crate::ctx::{storage_ranges, Ctx, Snap};
use crate::disks::Disk;
use crate::io;
use crate::{check, note, params};

fn info(ctl: &Blksnap, dev: DevId) -> Result<CbtInfo> {
    ctl.tracker_info(dev)?
        .with_context(|| format!("{dev} is not tracked"))
}

/// Checks that the map has the snap number exactly at `expected` blocks and
/// smaller numbers elsewhere.
fn check_map(map: &[u8], snap: u8, expected: &BTreeSet<u64>, what: &str) -> Result<()> {
    let wrong: Vec<String> = (0..map.len() as u64)
        .filter(|b| {
            let v = map[*b as usize];
            v > snap || ((v == snap) != expected.contains(b))
        })
        .take(12)
        .map(|b| format!("block {b}={}", map[b as usize]))
        .collect();
    check!(
        wrong.is_empty(),
        "{what}: map should hold {snap} exactly at blocks {expected:?} and less elsewhere; wrong: {wrong:?}"
    );
    Ok(())
}

fn take<'a>(ctl: &'a Blksnap, orig: &Disk, store: &Disk) -> Result<Snap<'a>> {
    Snap::take_new(ctl, &[orig.dev], store, &storage_ranges(store, 1))
}

fn write_4k(orig: &Disk, offsets: &[u64]) -> Result<()> {
    let f = io::open_direct(&orig.path, true)?;
    for (i, &off) in offsets.iter().enumerate() {
        io::write_direct(&f, off, &vec![0xa0 + i as u8; 4096])
            .with_context(|| format!("write 4 KiB at {off}"))?;
    }
    Ok(())
}

fn blocks_of(offsets: &[(u64, u64)], bs: u64) -> BTreeSet<u64> {
    offsets
        .iter()
        .flat_map(|&(off, len)| off / bs..=(off + len - 1) / bs)
        .collect()
}

pub fn run(ctx: &Ctx) -> Result<()> {
    let orig = ctx.disk("orig0")?;
    let store = ctx.disk("store0")?;
    let ctl = ctx.ctl()?;

    // Snapshot A attaches the tracker.
    let a = take(&ctl, orig, store)?;
    let ia = info(&ctl, orig.dev)?;
    let want_bs = params::tracking_block_size(orig.size)?;
    note!(
        "cbt: tracker of {}: block {} bytes, {} blocks, capacity {}, generation {}, snap {}",
        orig.dev,
        ia.blk_size,
        ia.blk_count,
        ia.device_capacity,
        ia.generation_id,
        ia.snap_number
    );
    check!(
        u64::from(ia.blk_size) == want_bs,
        "tracking block {} bytes, the parameters give {want_bs}",
        ia.blk_size
    );
    check!(
        ia.device_capacity == orig.size,
        "capacity {} != {}",
        ia.device_capacity,
        orig.size
    );
    check!(
        u64::from(ia.blk_count) == orig.size.div_ceil(want_bs),
        "block count {} for {} bytes in {want_bs}-byte blocks",
        ia.blk_count,
        orig.size
    );
    check!(
        ia.snap_number == 1,
        "first snapshot of a new tracker has number {}, expected 1",
        ia.snap_number
    );
    a.destroy()?;

    // Known writes, then snapshot B.
    let bs = u64::from(ia.blk_size);
    let n = u64::from(ia.blk_count);
    let offsets = [
        0,
        3 * bs + 4096,
        10 * bs - 4096,
        20 * bs - 2048,
        100 * bs + bs / 2,
        orig.size - 4096,
    ];
    write_4k(orig, &offsets)?;
    let expected_b = blocks_of(&offsets.map(|o| (o, 4096)), bs);
    let b = take(&ctl, orig, store)?;
    let ib = info(&ctl, orig.dev)?;
    check!(
        ib.snap_number == ia.snap_number + 1,
        "snap number {} after {}",
        ib.snap_number,
        ia.snap_number
    );
    check!(
        ib.generation_id == ia.generation_id,
        "generation id changed from {} to {}",
        ia.generation_id,
        ib.generation_id
    );
    let map = ctl.read_cbt_map(orig.dev, 0, ib.blk_count)?;
    check!(map.len() as u64 == n, "read {} of {n} map bytes", map.len());
    check_map(&map, ib.snap_number, &expected_b, "after known writes")?;

    // Offsets are honoured.
    for (off, len) in [(1u32, 7u32), (3, 1), (17, 100), (ib.blk_count - 5, 5)] {
        let part = ctl.read_cbt_map(orig.dev, off, len)?;
        let want = &map[off as usize..(off + len) as usize];
        check!(
            part == want,
            "READ_CBT_MAP at offset {off} length {len} gave {part:?}, the map there is {want:?}"
        );
    }
    match ctl.read_cbt_map(orig.dev, ib.blk_count, 16) {
        Ok(v) => note!("cbt: reading at the end of the map gives {} bytes", v.len()),
        Err(e) => note!("cbt: reading at the end of the map: {e}"),
    }

    // The frozen map does not move while the snapshot is held.
    write_4k(orig, &[50 * bs])?;
    let again = ctl.read_cbt_map(orig.dev, 0, ib.blk_count)?;
    check!(
        again == map,
        "the map read while snapshot {} is held changed after a write",
        ib.snap_number
    );
    b.destroy()?;

    // MARK_DIRTY_BLOCKS on the original.
    let marks = [
        SectorRange::from_bytes(200 * bs + 512, bs + 512),
        SectorRange::from_bytes(300 * bs + 1024, 512),
    ];
    ctl.mark_dirty(orig.dev, &marks)?;
    let mut expected_c: BTreeSet<u64> =
        blocks_of(&marks.map(|r| (r.start.0 * 512, r.count * 512)), bs);
    expected_c.insert(50);
    let c = take(&ctl, orig, store)?;
    let ic = info(&ctl, orig.dev)?;
    let map_c = ctl.read_cbt_map(orig.dev, 0, ic.blk_count)?;
    check_map(
        &map_c,
        ic.snap_number,
        &expected_c,
        "after MARK_DIRTY_BLOCKS",
    )?;
    check!(
        ic.generation_id == ia.generation_id,
        "generation id changed"
    );

    // MARK_DIRTY_BLOCKS on the image marks the original's tracker.
    let image = c
        .images()?
        .into_iter()
        .find(|i| i.orig == orig.dev)
        .context("image of orig0")?;
    let mark_img = [SectorRange::from_bytes(400 * bs, 4096)];
    ctl.mark_dirty(image.image, &mark_img)
        .context("MARK_DIRTY_BLOCKS on the image device")?;
    c.destroy()?;
    let d = take(&ctl, orig, store)?;
    let id = info(&ctl, orig.dev)?;
    let map_d = ctl.read_cbt_map(orig.dev, 0, id.blk_count)?;
    check_map(
        &map_d,
        id.snap_number,
        &BTreeSet::from([400]),
        "after MARK_DIRTY_BLOCKS on the image",
    )?;
    check!(
        id.generation_id == ia.generation_id,
        "generation id changed"
    );
    d.destroy()?;
    ctl.tracker_remove(orig.dev)?;
    note!(
        "cbt: snaps {}..{} exact; blocks {expected_b:?}, marked {expected_c:?}, via image {{400}}; generation {} stable",
        ia.snap_number,
        id.snap_number,
        ia.generation_id
    );
    Ok(())
}

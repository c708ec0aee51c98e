//! `partitions`: a snapshot of one partition. The program writes an MBR with
//! two partitions to orig1, re-reads the table, snapshots partition 1 only
//! and writes to both partitions at once: the image of p1 keeps p1's
//! pre-snapshot content, p2 gets exactly what was written to it, and the
//! change map of p1 marks exactly the blocks written to p1.

use std::time::Duration;

use anyhow::{Context, Result};
use blksnap::DevId;

use super::fill_pattern;
use crate::ctx::{storage_ranges, wait_path, Ctx, Snap};
use crate::disks::{self, Disk};
use crate::io;
use crate::workload::{run_writers, verify_model, WriterSpec, Written};
use crate::{check, note, params};

const P1_START: u64 = 2048;
const P1_SECTORS: u64 = 40960;

/// An MBR with two Linux partitions: p1 at [`P1_START`], p2 after it to the
/// end of the disk.
fn mbr(disk_sectors: u64) -> Vec<u8> {
    let mut sector = vec![0u8; 512];
    sector[440..444].copy_from_slice(&0x6b74_6573u32.to_le_bytes());
    let p2_start = P1_START + P1_SECTORS;
    let parts = [(P1_START, P1_SECTORS), (p2_start, disk_sectors - p2_start)];
    for (i, (start, count)) in parts.iter().enumerate() {
        let e = &mut sector[446 + 16 * i..446 + 16 * (i + 1)];
        e[0] = 0x00;
        e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
        e[4] = 0x83;
        e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
        e[8..12].copy_from_slice(&(*start as u32).to_le_bytes());
        e[12..16].copy_from_slice(&(*count as u32).to_le_bytes());
    }
    sector[510] = 0x55;
    sector[511] = 0xaa;
    sector
}

fn partition_table(disk: &Disk) -> Result<(Disk, Disk)> {
    let table = mbr(disk.size / 512);
    {
        let f = io::open_direct(&disk.path, true)?;
        io::write_direct(&f, 0, &table).context("write MBR")?;
        f.sync_all()?;
        disks::reread_partitions(&f).context("BLKRRPART")?;
    }
    let p1 = disk.partition(1)?;
    let p2 = disk.partition(2)?;
    wait_path(&p1.path, Duration::from_secs(10))?;
    wait_path(&p2.path, Duration::from_secs(10))?;
    check!(
        p1.size == P1_SECTORS * 512,
        "{} has {} bytes, expected {}",
        p1.name,
        p1.size,
        P1_SECTORS * 512
    );
    Ok((p1, p2))
}

fn writers(seed: u64, max_direct: u64) -> Vec<WriterSpec> {
    vec![
        WriterSpec {
            seed,
            direct: true,
            writes: 40,
            max_len: max_direct,
            forced: Vec::new(),
        },
        WriterSpec {
            seed: seed + 1,
            direct: false,
            writes: 40,
            max_len: 64 << 10,
            forced: Vec::new(),
        },
    ]
}

pub fn run(ctx: &Ctx) -> Result<()> {
    let disk = ctx.disk("orig1")?;
    let store = ctx.disk("store1")?;
    let ctl = ctx.ctl()?;
    let (p1, p2) = partition_table(disk)?;
    note!(
        "partitions: {} {} {} bytes, {} {} {} bytes",
        p1.name,
        p1.dev,
        p1.size,
        p2.name,
        p2.dev,
        p2.size
    );
    let m1 = fill_pattern(&p1, 0x91)?;
    let m2 = fill_pattern(&p2, 0x92)?;
    let chunk = params::chunk_size(p1.size)?;
    let pre1 = m1.copy();

    let snap = Snap::take_new(&ctl, &[p1.dev], store, &storage_ranges(store, 2))?;
    let trackers: Vec<DevId> = ctl.tracker_collect()?.iter().map(|i| i.dev).collect();
    check!(
        trackers == vec![p1.dev],
        "trackers {trackers:?}, expected only {} (partition 1)",
        p1.dev
    );
    let info = ctl.tracker_info(p1.dev)?.context("p1 tracker")?;
    check!(
        info.device_capacity == p1.size,
        "tracker capacity {} != partition size {}",
        info.device_capacity,
        p1.size
    );
    let image = snap.image_of(p1.dev)?;
    let (w1, w2, during) = std::thread::scope(|s| {
        let a = s.spawn(|| run_writers(&p1.path, &m1, &writers(0x100, 256 << 10)));
        let b = s.spawn(|| run_writers(&p2.path, &m2, &writers(0x200, 256 << 10)));
        let during = io::verify_device(&image, &pre1, chunk);
        (a.join(), b.join(), during)
    });
    let w1: Vec<Written> = w1.map_err(|_| anyhow::anyhow!("p1 writer panicked"))??;
    w2.map_err(|_| anyhow::anyhow!("p2 writer panicked"))??;
    during.context("image of p1 during writes")?;
    let image_hash = io::verify_device(&image, &pre1, chunk).context("image of p1 after writes")?;
    verify_model(&p1.path, &m1, chunk).context("p1")?;
    let p2_hash = verify_model(&p2.path, &m2, chunk).context("p2 (not snapshotted)")?;
    let first = io::read_device(&disk.path, 512)?;
    check!(first == mbr(disk.size / 512), "the MBR changed");
    snap.destroy()?;
    note!(
        "partitions: image of p1 {} == pre-snapshot; p2 {} holds exactly its writes",
        io::short(&image_hash),
        io::short(&p2_hash)
    );

    // The change map of p1 between the two snapshots.
    let snap2 = Snap::take_new(&ctl, &[p1.dev], store, &storage_ranges(store, 1))?;
    let info2 = ctl.tracker_info(p1.dev)?.context("p1 tracker")?;
    check!(
        info2.snap_number == info.snap_number.wrapping_add(1),
        "snap number {} after {}",
        info2.snap_number,
        info.snap_number
    );
    let map = ctl.read_cbt_map(p1.dev, 0, info2.blk_count)?;
    check!(
        map.len() == info2.blk_count as usize,
        "change map: {} of {} bytes",
        map.len(),
        info2.blk_count
    );
    let bs = u64::from(info2.blk_size);
    let mut touched = vec![false; map.len()];
    for w in &w1 {
        for &(off, len) in &w.ranges {
            for b in off / bs..=(off + len - 1) / bs {
                touched[b as usize] = true;
            }
        }
    }
    let wrong: Vec<String> = (0..map.len())
        .filter(|&b| (map[b] == info2.snap_number) != touched[b] || map[b] > info2.snap_number)
        .take(10)
        .map(|b| format!("block {b}: map {} written {}", map[b], touched[b]))
        .collect();
    check!(
        wrong.is_empty(),
        "change map of p1 (snap {}, block {bs} bytes) disagrees with the writes: {wrong:?}",
        info2.snap_number
    );
    snap2.destroy()?;
    ctl.tracker_remove(p1.dev)?;
    note!(
        "partitions: change map of p1 marks exactly the {} blocks written to p1",
        touched.iter().filter(|t| **t).count()
    );
    Ok(())
}

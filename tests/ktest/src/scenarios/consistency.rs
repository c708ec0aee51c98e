//! `consistency`: the image of a snapshot holds exactly the content the
//! original had at TAKE while four writers (O_DIRECT and buffered, random
//! lengths and offsets, chunk-crossing and last-partial-chunk writes) change
//! the original, and every production write lands on the original. Then a
//! two-disk snapshot: both images match their pre-snapshot content, and
//! both were taken at one instant.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{Context, Result};

use super::fill_pattern;
use crate::ctx::{storage_ranges, Ctx, Snap};
use crate::disks::Disk;
use crate::io;
use crate::workload::{run_writers, standard_writers, verify_model, Model};
use crate::{check, note, params};

/// Random writes per writer per round (besides the edge writes).
const WRITES: usize = 30;

pub fn run(ctx: &Ctx) -> Result<()> {
    let orig = ctx.disk("orig0")?;
    let store = ctx.disk("store0")?;
    let ctl = ctx.ctl()?;
    let chunk = params::chunk_size(orig.size)?;
    note!(
        "consistency: {} is {} bytes, chunk {chunk} bytes, last chunk {} bytes",
        orig.name,
        orig.size,
        match orig.size % chunk {
            0 => chunk,
            r => r,
        }
    );
    let model = fill_pattern(orig, 0xc0)?;
    let mut total_bytes = 0u64;
    for round in 0..ctx.rounds {
        total_bytes += one_round(ctx, orig, store, &model, chunk, round as u64)
            .with_context(|| format!("round {round}"))?;
    }
    note!(
        "consistency: {} rounds passed, {total_bytes} bytes written under snapshots",
        ctx.rounds
    );

    let orig1 = ctx.disk("orig1")?;
    let model1 = fill_pattern(orig1, 0xc1)?;
    two_disks(ctx, orig, &model, orig1, &model1, chunk).context("two-disk snapshot")?;
    one_instant(ctx, orig, orig1).context("two-disk snapshot at one instant")?;
    drop(ctl);
    Ok(())
}

fn one_round(
    ctx: &Ctx,
    orig: &Disk,
    store: &Disk,
    model: &Model,
    chunk: u64,
    round: u64,
) -> Result<u64> {
    let ctl = ctx.ctl()?;
    let started = std::time::Instant::now();
    let pre = model.copy();
    let pre_hash = blake3::hash(&pre);
    let snap = Snap::take_new(&ctl, &[orig.dev], store, &storage_ranges(store, 4))?;
    let image = snap.image_of(orig.dev)?;
    let specs = standard_writers(orig.size, chunk, 0x5eed_0000 + round, WRITES);
    let (written, during) = std::thread::scope(|s| {
        let reader = s.spawn(|| io::verify_device(&image, &pre, chunk));
        let written = run_writers(&orig.path, model, &specs);
        (written, reader.join())
    });
    let written = written?;
    let during = match during {
        Ok(r) => r.context("image read while the original is written")?,
        Err(_) => anyhow::bail!("image reader panicked"),
    };
    let after = io::verify_device(&image, &pre, chunk).context("image after the writes")?;
    let now = verify_model(&orig.path, model, chunk)?;
    snap.destroy()?;
    let writes: usize = written.iter().map(|w| w.ranges.len()).sum();
    let bytes: u64 = written.iter().map(|w| w.bytes).sum();
    note!(
        "consistency round {round}: {writes} writes, {bytes} bytes; pre {} image during {} after {}; original now {} ({:.1} s)",
        io::short(&pre_hash),
        io::short(&during),
        io::short(&after),
        io::short(&now),
        started.elapsed().as_secs_f64()
    );
    Ok(bytes)
}

fn two_disks(
    ctx: &Ctx,
    a: &Disk,
    model_a: &Model,
    b: &Disk,
    model_b: &Model,
    chunk: u64,
) -> Result<()> {
    let ctl = ctx.ctl()?;
    let store = ctx.disk("store0")?;
    let pre_a = model_a.copy();
    let pre_b = model_b.copy();
    let snap = Snap::take_new(&ctl, &[a.dev, b.dev], store, &storage_ranges(store, 2))?;
    let images = snap.images()?;
    check!(
        images.len() == 2,
        "two-disk snapshot has {} images",
        images.len()
    );
    let image_a = snap.image_of(a.dev)?;
    let image_b = snap.image_of(b.dev)?;
    let chunk_b = params::chunk_size(b.size)?;
    let specs_a = standard_writers(a.size, chunk, 0xa11, WRITES);
    let specs_b = standard_writers(b.size, chunk_b, 0xb22, WRITES);
    std::thread::scope(|s| -> Result<()> {
        let wa = s.spawn(|| run_writers(&a.path, model_a, &specs_a));
        let wb = s.spawn(|| run_writers(&b.path, model_b, &specs_b));
        let ra = io::verify_device(&image_a, &pre_a, chunk);
        let rb = io::verify_device(&image_b, &pre_b, chunk_b);
        wa.join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))??;
        wb.join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))??;
        ra.context("image of the first disk during writes")?;
        rb.context("image of the second disk during writes")?;
        Ok(())
    })?;
    let ha = io::verify_device(&image_a, &pre_a, chunk).context("first image after writes")?;
    let hb = io::verify_device(&image_b, &pre_b, chunk_b).context("second image after writes")?;
    verify_model(&a.path, model_a, chunk)?;
    verify_model(&b.path, model_b, chunk_b)?;
    snap.destroy()?;
    note!(
        "consistency: two-disk snapshot images {} {} match their pre-snapshot content",
        io::short(&ha),
        io::short(&hb)
    );
    Ok(())
}

const RECORD: usize = 4096;
const MAX_RECORDS: u64 = 2048;

fn record(k: u64) -> Vec<u8> {
    let mut r = vec![0u8; RECORD];
    for (i, word) in r.chunks_exact_mut(8).enumerate() {
        let v = if i == 0 { 0x4b54_4553_5452_4543 } else { k };
        word.copy_from_slice(&v.to_le_bytes());
    }
    r
}

/// A writer appends numbered 4 KiB records alternately to the two disks,
/// each write finished before the next starts, while the snapshot is taken:
/// the records found in the two images must be exactly those before one
/// cut-off number.
fn one_instant(ctx: &Ctx, a: &Disk, b: &Disk) -> Result<()> {
    let ctl = ctx.ctl()?;
    let store = ctx.disk("store0")?;
    let fa = io::open_direct(&a.path, true)?;
    let fb = io::open_direct(&b.path, true)?;
    let taken = AtomicBool::new(false);
    let next = AtomicU64::new(0);
    let (snap, writer) = std::thread::scope(|s| {
        let writer = s.spawn(|| -> Result<u64> {
            let mut after_take = 0;
            for k in 0..MAX_RECORDS {
                let file = if k % 2 == 0 { &fa } else { &fb };
                io::write_direct(file, (k / 2) * RECORD as u64, &record(k))
                    .with_context(|| format!("record {k}"))?;
                next.store(k + 1, Ordering::SeqCst);
                if taken.load(Ordering::SeqCst) {
                    after_take += 1;
                    if after_take >= 64 {
                        return Ok(k + 1);
                    }
                }
            }
            Ok(MAX_RECORDS)
        });
        while next.load(Ordering::SeqCst) < 64 && !writer.is_finished() {
            std::thread::yield_now();
        }
        let snap = Snap::take_new(&ctl, &[a.dev, b.dev], store, &storage_ranges(store, 1));
        taken.store(true, Ordering::SeqCst);
        let joined = writer.join();
        (snap, joined)
    });
    let snap = snap?;
    let written = writer.map_err(|_| anyhow::anyhow!("record writer panicked"))??;
    let img_a = io::open_direct(&snap.image_of(a.dev)?, false)?;
    let img_b = io::open_direct(&snap.image_of(b.dev)?, false)?;
    let mut present = Vec::new();
    for k in 0..written {
        let file = if k % 2 == 0 { &img_a } else { &img_b };
        let got = io::read_direct(file, (k / 2) * RECORD as u64, RECORD)
            .with_context(|| format!("read record {k} from an image"))?;
        present.push(got == record(k));
    }
    snap.destroy()?;
    let cut = present.iter().position(|p| !p).unwrap_or(present.len());
    let stray: Vec<usize> = present
        .iter()
        .enumerate()
        .skip(cut)
        .filter(|(_, p)| **p)
        .map(|(k, _)| k)
        .take(8)
        .collect();
    check!(
        stray.is_empty(),
        "images were not taken at one instant: records 0..{cut} are in the images, \
         but so are later records {stray:?} (even records on {}, odd on {})",
        a.name,
        b.name
    );
    check!(
        cut > 0 && cut < written as usize,
        "cut-off {cut} of {written} records is not inside the write stream"
    );
    note!("consistency: one instant: records 0..{cut} of {written} in the images");
    Ok(())
}

//! `discard`: BLKDISCARD and BLKZEROOUT on the original after TAKE count as
//! writes: the image keeps the pre-snapshot content, the original reads
//! back zeros where it was zeroed, and the rest of it is unchanged.

use anyhow::{Context, Result};

use super::fill_pattern;
use crate::ctx::{storage_ranges, Ctx, Snap};
use crate::disks;
use crate::io;
use crate::{check, note, params};

pub fn run(ctx: &Ctx) -> Result<()> {
    let orig = ctx.disk("orig0")?;
    let store = ctx.disk("store0")?;
    let ctl = ctx.ctl()?;
    let chunk = params::chunk_size(orig.size)?;
    let discard_max: u64 = orig.queue_attr("discard_max_bytes")?.parse().unwrap_or(0);
    let zeroes_max: u64 = orig
        .queue_attr("write_zeroes_max_bytes")?
        .parse()
        .unwrap_or(0);
    note!(
        "discard: {} discard_max_bytes {discard_max}, write_zeroes_max_bytes {zeroes_max}, chunk {chunk}",
        orig.name
    );
    check!(
        discard_max > 0,
        "{} does not support discard: the VM must give it discard=unmap",
        orig.name
    );
    let model = fill_pattern(orig, 0xd1)?;
    let pre = model.copy();
    let snap = Snap::take_new(&ctl, &[orig.dev], store, &storage_ranges(store, 2))?;
    let image = snap.image_of(orig.dev)?;

    let size = orig.size;
    let chunks = size.div_ceil(chunk);
    let last = (chunks - 1) * chunk;
    let discards = [
        (5 * chunk - (64 << 10), 192 << 10),
        (9 * chunk + 4096, 8192),
        (12 * chunk, chunk),
        (20 * chunk, 4 << 20),
        (last, size - last),
    ];
    let zeroes = [
        (40 * chunk - 4096, 12288),
        (44 * chunk + 512, 1024),
        (48 * chunk, 3 * chunk),
        (size - 8192, 8192),
    ];
    let file = io::open_buffered(&orig.path, true)?;
    for &(off, len) in &discards {
        disks::discard(&file, off, len)
            .with_context(|| format!("BLKDISCARD {len} bytes at {off}"))?;
    }
    for &(off, len) in &zeroes {
        disks::zero_out(&file, off, len)
            .with_context(|| format!("BLKZEROOUT {len} bytes at {off}"))?;
        model.zero(off, len);
    }
    file.sync_all()?;
    drop(file);

    let image_hash = io::verify_device(&image, &pre, chunk).context("image after discards")?;
    // Discarded ranges read back as anything; the rest must be exact.
    let mut expected = model.copy();
    let actual = io::read_device(&orig.path, size)?;
    for &(off, len) in &discards {
        let r = off as usize..(off + len) as usize;
        expected[r.clone()].copy_from_slice(&actual[r]);
    }
    for &(off, len) in &zeroes {
        let zeros = actual[off as usize..(off + len) as usize]
            .iter()
            .all(|b| *b == 0);
        check!(
            zeros,
            "original does not read zeros at {off}+{len} after BLKZEROOUT"
        );
    }
    if actual != expected {
        let first = actual
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        anyhow::bail!(
            "original changed outside the discarded/zeroed ranges, first at byte {first}"
        );
    }
    let discarded_zero = discards
        .iter()
        .all(|&(o, l)| actual[o as usize..(o + l) as usize].iter().all(|b| *b == 0));
    snap.destroy()?;
    note!(
        "discard: {} discards, {} zero-outs; image {} == pre-snapshot; discarded ranges read zeros: {discarded_zero}",
        discards.len(),
        zeroes.len(),
        io::short(&image_hash)
    );
    Ok(())
}

//! `low_space`: a snapshot with a small first piece of storage raises a
//! low_free_space event (asking for diff_storage_minimum sectors) once about
//! half of diff_storage_minimum is left; storage appended after TAKE is
//! used; the image stays exact and no corrupted event comes.

use std::time::Duration;

use anyhow::{Context, Result};
use blksnap::{Event, SectorRange};

use super::fill_pattern;
use crate::ctx::{storage_ranges, Ctx, Snap};
use crate::io;
use crate::workload::{run_writers, standard_writers, verify_model};
use crate::{check, note, params};

/// diff_storage_minimum used when the loaded one is larger (sectors: 8 MiB).
const SMALL_MINIMUM: u64 = 16384;

/// Restores a module parameter when dropped.
struct ParamGuard {
    name: &'static str,
    old: u64,
}

impl ParamGuard {
    fn set(name: &'static str, value: u64) -> Result<Self> {
        let old = params::get(name)?;
        params::set(name, value)?;
        Ok(Self { name, old })
    }
}

impl Drop for ParamGuard {
    fn drop(&mut self) {
        if let Err(e) = params::set(self.name, self.old) {
            note!("could not restore {}: {e:#}", self.name);
        }
    }
}

pub fn run(ctx: &Ctx) -> Result<()> {
    let orig = ctx.disk("orig0")?;
    let store0 = ctx.disk("store0")?;
    let store1 = ctx.disk("store1")?;
    let ctl = ctx.ctl()?;
    let chunk = params::chunk_size(orig.size)?;
    let loaded = params::get("diff_storage_minimum")?;
    let mut guards = Vec::new();
    let minimum = if loaded > SMALL_MINIMUM {
        guards.push(ParamGuard::set("diff_storage_minimum", SMALL_MINIMUM)?);
        SMALL_MINIMUM
    } else {
        loaded
    };
    // This module may copy ahead of sequential writers (its own parameter,
    // not part of the contract): off, so the storage used is known here.
    if params::get("copy_ahead_chunks").is_ok() {
        guards.push(ParamGuard::set("copy_ahead_chunks", 0)?);
    }
    let minimum_bytes = minimum * 512;
    note!("low_space: diff_storage_minimum {minimum} sectors, chunk {chunk}");
    let model = fill_pattern(orig, 0x10)?;
    let pre = model.copy();

    let snap = Snap::create(&ctl, &[orig.dev])?;
    match ctl.wait_event(snap.id, Duration::from_secs(2))? {
        Some(Event::LowFreeSpace { requested_sectors }) => check!(
            requested_sectors == minimum,
            "the event at CREATE asks for {requested_sectors} sectors, expected {minimum}"
        ),
        other => anyhow::bail!("expected a low_free_space event right after CREATE, got {other:?}"),
    }
    // The first piece: one and a half minimums.
    let first = minimum + minimum / 2;
    snap.append(store0, &[SectorRange::new(0, first)])?;
    snap.take()?;
    let image = snap.image_of(orig.dev)?;

    // One 4 KiB write at the start of a chunk copies that chunk; the chunks
    // are visited out of order (stride 37) so no write follows another.
    let f = io::open_direct(&orig.path, true)?;
    let mut copied = 0u64;
    let mut seen = None;
    let budget = first * 512 - chunk;
    let chunks = orig.size / chunk;
    let mut k = 0u64;
    while copied + chunk <= budget {
        let at = (k * 37 % chunks) * chunk;
        let data = crate::rng::Rng::new(k).bytes(4096);
        io::write_direct(&f, at, &data).with_context(|| format!("write at {at}"))?;
        model.apply(at, &data);
        copied += chunk;
        k += 1;
        if let Some(ev) = ctl.wait_event(snap.id, Duration::from_millis(10))? {
            seen = Some((ev, copied));
            break;
        }
    }
    let (ev, at) = seen.with_context(|| {
        format!(
            "no event after {copied} bytes were copied into a {}-byte storage",
            first * 512
        )
    })?;
    match ev {
        Event::LowFreeSpace { requested_sectors } => check!(
            requested_sectors == minimum,
            "low_free_space asks for {requested_sectors} sectors, expected {minimum}"
        ),
        other => anyhow::bail!("expected low_free_space, got {other}"),
    }
    let left = first * 512 - at;
    note!(
        "low_space: event after {at} bytes copied, {left} bytes left (half the minimum is {})",
        minimum_bytes / 2
    );
    let slack = 2 * chunk + minimum_bytes / 8;
    check!(
        left <= minimum_bytes / 2 + slack && left + slack >= minimum_bytes / 2,
        "the event came with {left} bytes left, expected about {}",
        minimum_bytes / 2
    );

    // More storage on another disk, then write over the whole original.
    snap.append(store1, &storage_ranges(store1, 1))?;
    let specs = standard_writers(orig.size, chunk, 0x1057, 40);
    let written = run_writers(&orig.path, &model, &specs)?;
    let seq = crate::rng::Rng::new(99).bytes(1 << 20);
    let mut pos = 0;
    while pos < orig.size {
        let n = (orig.size - pos).min(1 << 20);
        io::write_direct(&f, pos, &seq[..n as usize])?;
        model.apply(pos, &seq[..n as usize]);
        pos += n;
    }
    loop {
        match ctl.wait_event(snap.id, Duration::from_millis(200))? {
            None => break,
            Some(Event::LowFreeSpace { .. }) => note!("low_space: another low_free_space event"),
            Some(other) => anyhow::bail!("unexpected event after appending storage: {other}"),
        }
    }
    let hash = io::verify_device(&image, &pre, chunk).context("image after the storage grew")?;
    verify_model(&orig.path, &model, chunk)?;
    snap.destroy()?;
    let bytes: u64 = written.iter().map(|w| w.bytes).sum();
    note!(
        "low_space: image {} exact after {} random bytes and a full overwrite",
        io::short(&hash),
        bytes
    );
    Ok(())
}

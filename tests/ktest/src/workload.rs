//! Concurrent random writers that keep an exact model of what a device must
//! hold afterwards.
//!
//! Writers reserve the 4 KiB pages a write touches before issuing it, so no
//! two writes in flight share a page (mixing O_DIRECT and buffered writes on
//! one page at the same time is undefined in Linux, module or not); the
//! model is updated while the reservation is held, so it ends up exactly as
//! the device must be.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};

use crate::io::{self, SECTOR};
use crate::rng::Rng;

const PAGE: u64 = 4096;

/// The bytes a device must hold, shared by concurrent writers.
pub struct Model {
    data: Mutex<Vec<u8>>,
    inflight: Mutex<Vec<(u64, u64)>>,
    len: u64,
}

impl Model {
    pub fn new(data: Vec<u8>) -> Self {
        let len = data.len() as u64;
        Self {
            data: Mutex::new(data),
            inflight: Mutex::new(Vec::new()),
            len,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// A copy of the current content.
    pub fn copy(&self) -> Vec<u8> {
        self.lock_data().clone()
    }

    pub fn hash(&self) -> blake3::Hash {
        blake3::hash(&self.lock_data())
    }

    fn lock_data(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A writer that panicked leaves the data as it was: still usable.
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_inflight(&self) -> std::sync::MutexGuard<'_, Vec<(u64, u64)>> {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `data` was written at `offset` (for writes made outside
    /// the random writers, with no concurrency).
    pub fn apply(&self, offset: u64, data: &[u8]) {
        let start = offset as usize;
        self.lock_data()[start..start + data.len()].copy_from_slice(data);
    }

    /// Records that `len` bytes at `offset` now read as zeros.
    pub fn zero(&self, offset: u64, len: u64) {
        let start = offset as usize;
        self.lock_data()[start..start + len as usize].fill(0);
    }

    /// Reserves the pages of `offset..offset+len`; false if a write in
    /// flight shares one of them.
    fn try_reserve(&self, offset: u64, len: u64) -> Option<(u64, u64)> {
        let start = offset / PAGE * PAGE;
        let end = (offset + len).div_ceil(PAGE) * PAGE;
        let mut inflight = self.lock_inflight();
        if inflight.iter().any(|&(s, e)| s < end && start < e) {
            return None;
        }
        inflight.push((start, end));
        Some((start, end))
    }

    fn release(&self, range: (u64, u64)) {
        let mut inflight = self.lock_inflight();
        if let Some(pos) = inflight.iter().position(|r| *r == range) {
            inflight.swap_remove(pos);
        }
    }
}

/// What one writer thread does.
#[derive(Debug, Clone)]
pub struct WriterSpec {
    pub seed: u64,
    /// O_DIRECT (sector-aligned writes) or buffered (any byte range, fsync at
    /// the end).
    pub direct: bool,
    /// Number of random writes.
    pub writes: usize,
    /// Longest random write in bytes.
    pub max_len: u64,
    /// Writes made first, at these (offset, len); for O_DIRECT they are
    /// widened to whole sectors.
    pub forced: Vec<(u64, u64)>,
}

/// What a writer did.
#[derive(Debug, Default, Clone)]
pub struct Written {
    /// (offset, len) of every write, in order.
    pub ranges: Vec<(u64, u64)>,
    pub bytes: u64,
}

fn widen_to_sectors(offset: u64, len: u64, size: u64) -> (u64, u64) {
    let start = offset / SECTOR * SECTOR;
    let end = ((offset + len).div_ceil(SECTOR) * SECTOR).min(size);
    (start, end - start)
}

/// Runs one writer against the device at `path` whose content `model`
/// mirrors. Every write must succeed: a failed production write is an error.
pub fn write_random(path: &Path, model: &Model, spec: &WriterSpec) -> Result<Written> {
    let file = if spec.direct {
        io::open_direct(path, true)?
    } else {
        io::open_buffered(path, true)?
    };
    let size = model.len();
    let mut rng = Rng::new(spec.seed);
    let mut done = Written::default();
    let total = spec.forced.len() + spec.writes;
    for i in 0..total {
        let (offset, len, reservation) = loop {
            let (offset, len) = if let Some(&(o, l)) = spec.forced.get(i) {
                let l = l.min(size - o.min(size));
                if spec.direct {
                    widen_to_sectors(o, l, size)
                } else {
                    (o, l)
                }
            } else if spec.direct {
                let sectors = rng.range(1, (spec.max_len / SECTOR).max(1));
                let len = sectors * SECTOR;
                (rng.below(size / SECTOR - sectors + 1) * SECTOR, len)
            } else {
                let len = rng.range(1, spec.max_len.max(1));
                (rng.below(size - len + 1), len)
            };
            if len == 0 {
                continue;
            }
            match model.try_reserve(offset, len) {
                Some(r) => break (offset, len, r),
                None => std::thread::yield_now(),
            }
        };
        let data = rng.bytes(len as usize);
        let result = write_at(&file, spec.direct, offset, &data);
        if result.is_ok() {
            model.apply(offset, &data);
        }
        model.release(reservation);
        result.with_context(|| {
            format!(
                "production write of {len} bytes at {offset} ({}) to {} failed",
                if spec.direct { "O_DIRECT" } else { "buffered" },
                path.display()
            )
        })?;
        done.ranges.push((offset, len));
        done.bytes += len;
    }
    if !spec.direct {
        file.sync_all()
            .with_context(|| format!("fsync {} after buffered writes", path.display()))?;
    }
    Ok(done)
}

fn write_at(file: &File, direct: bool, offset: u64, data: &[u8]) -> std::io::Result<()> {
    if direct {
        io::write_direct(file, offset, data)
    } else {
        file.write_all_at(data, offset)
    }
}

/// Writes that cross chunk boundaries and hit the device's last (possibly
/// partial) chunk: (offset, len) pairs for a device of `size` bytes with
/// chunks of `chunk` bytes. `unaligned` gives odd byte offsets and lengths.
pub fn edge_writes(size: u64, chunk: u64, rng: &mut Rng, unaligned: bool) -> Vec<(u64, u64)> {
    let chunks = size.div_ceil(chunk);
    let mut out = Vec::new();
    let odd = |rng: &mut Rng| if unaligned { rng.range(1, 511) } else { 0 };
    for _ in 0..3 {
        // Straddles the boundary between chunk k-1 and k.
        let k = rng.range(1, chunks - 1);
        let back = rng.range(1, 8) * 512 - odd(rng);
        out.push((k * chunk - back, back + rng.range(1, 8) * 512 + odd(rng)));
    }
    // Spans more than two chunks.
    let k = rng.range(1, chunks.saturating_sub(3).max(1));
    out.push((k * chunk - 512 - odd(rng), 2 * chunk + 1024));
    // The last sector, and a write inside the last chunk.
    out.push((size - 512, 512));
    let last_chunk = (chunks - 1) * chunk;
    let room = size - last_chunk;
    out.push((last_chunk + odd(rng), room.min(8192)));
    out.into_iter()
        .map(|(o, l)| (o.min(size - 1), l.min(size - o.min(size - 1))))
        .collect()
}

/// The writers the consistency-type scenarios run: two O_DIRECT and two
/// buffered, each starting with edge writes.
pub fn standard_writers(size: u64, chunk: u64, seed: u64, writes: usize) -> Vec<WriterSpec> {
    let mut rng = Rng::new(seed);
    (0..4)
        .map(|t| {
            let direct = t < 2;
            WriterSpec {
                seed: rng.next_u64(),
                direct,
                writes,
                max_len: if direct { 512 << 10 } else { 96 << 10 },
                forced: edge_writes(size, chunk, &mut rng, !direct),
            }
        })
        .collect()
}

/// Runs `specs` concurrently against `path`; returns what each did.
pub fn run_writers(path: &Path, model: &Model, specs: &[WriterSpec]) -> Result<Vec<Written>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = specs
            .iter()
            .map(|spec| s.spawn(move || write_random(path, model, spec)))
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("a writer thread panicked")),
            })
            .collect()
    })
}

/// Checks the whole device against the model (O_DIRECT read).
pub fn verify_model(path: &Path, model: &Model, chunk: u64) -> Result<blake3::Hash> {
    let expected = model.copy();
    io::verify_device(path, &expected, chunk).context("original device content")
}

//! Device I/O helpers: aligned buffers, O_DIRECT and buffered access, reading
//! a whole device and comparing it with the bytes it should hold.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Alignment of O_DIRECT buffers, offsets and lengths used here.
pub const ALIGN: usize = 4096;
/// Logical block size of the test disks: the O_DIRECT granule.
pub const SECTOR: u64 = 512;
/// Size of the pieces whole-device reads and writes are made of.
pub const PIECE: usize = 1 << 20;

/// A heap buffer whose start is aligned to [`ALIGN`] (for O_DIRECT).
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> Self {
        let storage = vec![0u8; len + ALIGN];
        let start = storage.as_ptr().align_offset(ALIGN);
        Self {
            storage,
            start,
            len,
        }
    }

    pub fn from_slice(data: &[u8]) -> Self {
        let mut buf = Self::new(data.len());
        buf.as_mut_slice().copy_from_slice(data);
        buf
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

pub fn open_direct(path: &Path, write: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(nix::libc::O_DIRECT)
        .open(path)
        .with_context(|| format!("open {} O_DIRECT", path.display()))
}

pub fn open_buffered(path: &Path, write: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .open(path)
        .with_context(|| format!("open {}", path.display()))
}

/// Writes `data` at `offset` through an O_DIRECT descriptor (offset and
/// length must be multiples of the logical block size).
pub fn write_direct(file: &File, offset: u64, data: &[u8]) -> std::io::Result<()> {
    let buf = AlignedBuf::from_slice(data);
    file.write_all_at(buf.as_slice(), offset)
}

/// Reads `len` bytes at `offset` through an O_DIRECT descriptor.
pub fn read_direct(file: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = AlignedBuf::new(len);
    file.read_exact_at(buf.as_mut_slice(), offset)?;
    Ok(buf.as_slice().to_vec())
}

/// Writes `data` to the start of the device at `path` with O_DIRECT, in
/// [`PIECE`]s, and waits for it to be on the device.
pub fn write_device(path: &Path, data: &[u8]) -> Result<()> {
    let file = open_direct(path, true)?;
    let mut buf = AlignedBuf::new(PIECE);
    for (i, piece) in data.chunks(PIECE).enumerate() {
        let slot = &mut buf.as_mut_slice()[..piece.len()];
        slot.copy_from_slice(piece);
        file.write_all_at(slot, (i * PIECE) as u64)
            .with_context(|| format!("write {} at {}", path.display(), i * PIECE))?;
    }
    file.sync_all()
        .with_context(|| format!("fsync {}", path.display()))
}

/// Reads `size` bytes of the device at `path` with O_DIRECT.
pub fn read_device(path: &Path, size: u64) -> Result<Vec<u8>> {
    let file = open_direct(path, false)?;
    let mut out = vec![0u8; size as usize];
    let mut buf = AlignedBuf::new(PIECE);
    for (i, piece) in out.chunks_mut(PIECE).enumerate() {
        let slot = &mut buf.as_mut_slice()[..piece.len()];
        file.read_exact_at(slot, (i * PIECE) as u64)
            .with_context(|| format!("read {} at {}", path.display(), i * PIECE))?;
        piece.copy_from_slice(slot);
    }
    Ok(out)
}

/// Short hex form of a hash for the log.
pub fn short(hash: &blake3::Hash) -> String {
    hash.to_hex()[..16].to_owned()
}

/// Reads the device at `path` (O_DIRECT) and checks that it holds exactly
/// `expected`; returns the hash of what was read. A mismatch is reported with
/// the first differing offset, the number of differing 4 KiB blocks and the
/// chunk indexes (for `chunk` bytes per chunk) they fall in.
pub fn verify_device(path: &Path, expected: &[u8], chunk: u64) -> Result<blake3::Hash> {
    let file = open_direct(path, false)?;
    let size =
        crate::disks::size_of(&file).with_context(|| format!("size of {}", path.display()))?;
    if size != expected.len() as u64 {
        bail!(
            "{} has {size} bytes, expected {}",
            path.display(),
            expected.len()
        );
    }
    let mut hasher = blake3::Hasher::new();
    let mut buf = AlignedBuf::new(PIECE);
    let mut bad_blocks = 0u64;
    let mut first_bad: Option<u64> = None;
    let mut bad_chunks: Vec<u64> = Vec::new();
    for (i, want) in expected.chunks(PIECE).enumerate() {
        let base = (i * PIECE) as u64;
        let got = &mut buf.as_mut_slice()[..want.len()];
        file.read_exact_at(got, base)
            .with_context(|| format!("read {} at {base}", path.display()))?;
        hasher.update(got);
        if got != want {
            for (j, (g, w)) in got.chunks(4096).zip(want.chunks(4096)).enumerate() {
                if g != w {
                    let at = base + (j as u64) * 4096;
                    let in_block = g.iter().zip(w).position(|(a, b)| a != b).unwrap_or(0);
                    first_bad.get_or_insert(at + in_block as u64);
                    bad_blocks += 1;
                    let c = at / chunk.max(1);
                    if bad_chunks.last() != Some(&c) && bad_chunks.len() < 16 {
                        bad_chunks.push(c);
                    }
                }
            }
        }
    }
    if let Some(first) = first_bad {
        bail!(
            "{} differs from the expected content: first difference at byte {first}, \
             {bad_blocks} 4 KiB blocks differ, in chunks {bad_chunks:?} (chunk size {chunk}); \
             read hash {} expected {}",
            path.display(),
            short(&hasher.finalize()),
            short(&blake3::hash(expected)),
        );
    }
    Ok(hasher.finalize())
}

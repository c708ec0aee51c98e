//! Reading, hashing and writing devices; a background writer that can be paused around
//! TAKE.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

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

/// A small deterministic random number generator for offsets.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// SHA-256 (hex) of the first `len` bytes of `path`.
pub fn sha256_prefix(path: &Path, len: u64) -> Result<String> {
    let f = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; (4 * MIB) as usize];
    let mut at = 0u64;
    while at < len {
        let n = ((len - at) as usize).min(buf.len());
        f.read_exact_at(&mut buf[..n], at)
            .with_context(|| format!("read {} at {at}", path.display()))?;
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hex(&h.finalize()))
}

/// SHA-256 (hex) of `data`.
pub fn sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `data` at `offset` of `path` and syncs it.
pub fn write_sync(path: &Path, offset: u64, data: &[u8]) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("open {} for writing", path.display()))?;
    f.write_all_at(data, offset).with_context(|| {
        format!(
            "write {} bytes at {offset} of {}",
            data.len(),
            path.display()
        )
    })?;
    f.sync_all()
        .with_context(|| format!("sync {}", path.display()))?;
    Ok(())
}

/// Reads `len` bytes at `offset`.
pub fn read_at(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let f = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset)
        .with_context(|| format!("read {len} bytes at {offset} of {}", path.display()))?;
    Ok(buf)
}

/// Drops the page cache, so timings read the disk.
pub fn drop_caches() {
    nix::unistd::sync();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

mod ioctl {
    nix::ioctl_none!(blkrrpart, 0x12, 95);
}

/// BLKRRPART: re-read the partition table of a whole disk.
pub fn reread_partitions(path: &Path) -> Result<()> {
    let f = File::open(path).with_context(|| format!("open {}", path.display()))?;
    // SAFETY: the request takes no argument; the descriptor is open for the call.
    unsafe { ioctl::blkrrpart(f.as_raw_fd()) }
        .with_context(|| format!("BLKRRPART {}", path.display()))?;
    Ok(())
}

/// A thread writing random blocks (4-64 KiB, buffered, synced every 16 writes) all over
/// a device; [`Writer::pause`] stops it at a write boundary with everything synced.
pub struct Writer {
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    pub writes: Arc<AtomicU64>,
    path: PathBuf,
    handle: Mutex<Option<JoinHandle<Result<()>>>>,
}

impl Writer {
    pub fn start(path: &Path, size: u64, seed: u64) -> Result<Writer> {
        let stop = Arc::new(AtomicBool::new(false));
        let pause = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        let (s, p, pd, w) = (stop.clone(), pause.clone(), paused.clone(), writes.clone());
        let handle = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || -> Result<()> {
                let mut rng = Rng::new(seed);
                let mut n = 0u64;
                while !s.load(Ordering::SeqCst) {
                    if p.load(Ordering::SeqCst) {
                        if !pd.load(Ordering::SeqCst) {
                            f.sync_all().context("writer sync")?;
                            pd.store(true, Ordering::SeqCst);
                        }
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    pd.store(false, Ordering::SeqCst);
                    let len = (1 + rng.below(16)) * 4096;
                    let off = rng.below((size - len) / 4096) * 4096;
                    let data = noise(rng.next(), len as usize);
                    f.write_all_at(&data, off)
                        .with_context(|| format!("writer: write {len} at {off}"))?;
                    n += 1;
                    w.store(n, Ordering::SeqCst);
                    if n % 16 == 0 {
                        f.sync_data().context("writer sync")?;
                    }
                }
                f.sync_all().context("writer sync")?;
                Ok(())
            })
            .context("spawn writer")?;
        Ok(Writer {
            stop,
            pause,
            paused,
            writes,
            path: path.to_path_buf(),
            handle: Mutex::new(Some(handle)),
        })
    }

    /// Stops writing (after the write in flight) and syncs; returns when done.
    pub fn pause(&self) -> Result<()> {
        self.pause.store(true, Ordering::SeqCst);
        let start = Instant::now();
        while !self.paused.load(Ordering::SeqCst) {
            if start.elapsed() > Duration::from_secs(60) {
                bail!("the writer on {} did not pause", self.path.display());
            }
            let finished = self
                .handle
                .lock()
                .map(|h| h.as_ref().map(|h| h.is_finished()).unwrap_or(true))
                .unwrap_or(true);
            if finished {
                bail!("the writer on {} stopped", self.path.display());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.pause.store(false, Ordering::SeqCst);
    }

    /// Stops the thread; its error, if it had one. Returns the number of writes.
    pub fn stop(&self) -> Result<u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.resume();
        let handle = self.handle.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            match h.join() {
                Ok(r) => r?,
                Err(_) => bail!("the writer panicked"),
            }
        }
        Ok(self.writes.load(Ordering::SeqCst))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.pause.store(false, Ordering::SeqCst);
        let handle = self.handle.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

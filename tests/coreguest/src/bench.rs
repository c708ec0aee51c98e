//! The benchmark (`core.scenario=bench`): figures printed as `CORE-BENCH <json>` lines.
//!
//! - `dd`: a sequential copy of bench0 into a file on the backup filesystem (4 MiB
//!   reads and writes, fsync at the end): the reference throughput;
//! - `full`: a full backup job of bench0 (snapshot, read, hash, compress, store,
//!   publish) to a repository on the same filesystem; the ratio to `dd` is the throughput
//!   ratio;
//! - `incremental`: after 1% of the 64 KiB blocks were rewritten at random places, an
//!   incremental backup job; its time as a fraction of the full one;
//! - the full backup's compression and deduplication ratios;
//! - SHA-256 throughput of one guest CPU, which bounds the full backup under TCG.
//!
//! Repeated for repositories with 4 MiB chunks (what object stores get) and 256 KiB chunks
//! (what the appliance makes on local disks and directories). The page cache is
//! dropped before each timed step. TCG makes absolute figures meaningless; the ratios
//! are what to read.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use repo::{ChunkSize, InitOptions, Repository};
use snapcore::jobs::{BackupSource, BackupSpec, JobSpec};
use snapcore::{DiffStorage, SessionOptions};

use crate::env::{self, backup_done, run_job};
use crate::io::{self, Rng, MIB};
use crate::{check, note, proto};

/// Serials of the benchmark disks.
pub const DISKS: &[&str] = &["bench0", "scratch0", "backup0"];
const BLOCK: u64 = 4 * MIB;

/// 40% noise, 30% text-like (compressible), 20% copies of block 0, 10% zeros.
fn content(i: u64) -> Vec<u8> {
    match i % 10 {
        0..=3 => io::noise(900 + i, BLOCK as usize),
        4..=6 => io::noise(900 + i, BLOCK as usize)
            .into_iter()
            .map(|b| b"etaoin shrdlu cmfwyp"[usize::from(b) % 20])
            .collect(),
        7 | 8 => io::noise(900, BLOCK as usize),
        _ => vec![0u8; BLOCK as usize],
    }
}

fn dd(src: &Path, size: u64, dest: &Path) -> Result<f64> {
    use std::io::{Read, Write};
    io::drop_caches();
    let t = Instant::now();
    let mut input = std::fs::File::open(src)?;
    let mut out = std::fs::File::create(dest)?;
    let mut buf = vec![0u8; BLOCK as usize];
    let mut left = size;
    while left > 0 {
        let n = (left.min(BLOCK)) as usize;
        input.read_exact(&mut buf[..n])?;
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.sync_all()?;
    let secs = t.elapsed().as_secs_f64();
    drop(out);
    std::fs::remove_file(dest)?;
    Ok(secs)
}

fn spec(repo: &Repository) -> BackupSpec {
    BackupSpec {
        source: BackupSource::Device {
            device: "bench0".into(),
            storage: DiffStorage::device("scratch0"),
            session: SessionOptions::default(),
        },
        ..BackupSpec::device(repo.clone(), "bench0", DiffStorage::device("scratch0"))
    }
}

/// SHA-256 throughput of one CPU in this guest (MiB/s), over 64 MiB in memory: a full
/// backup hashes every byte twice (the chunk's name and the whole image's checksum).
fn sha256_mib_s() -> f64 {
    use sha2::Digest as _;
    let data = io::noise(7, (64 * MIB) as usize);
    let t = Instant::now();
    let digest = sha2::Sha256::digest(&data);
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(digest);
    mib_s(64 * MIB, secs)
}

fn mib_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / MIB as f64 / secs.max(1e-9)
}

pub fn run() -> Result<()> {
    let disks = env::disks(DISKS)?;
    let bench = disks.get("bench0").context("bench0")?.clone();
    let backup = disks.get("backup0").context("backup0")?.clone();
    env::mount_ext4(&backup.path, "/mnt/backup")?;
    let size = bench.size_bytes;
    for i in 0..size / BLOCK {
        io::write_sync(&bench.path, i * BLOCK, &content(i))?;
    }
    let jm = env::manager();
    let dd_secs = dd(&bench.path, size, Path::new("/mnt/backup/dd.img"))?;
    note!("dd: {size} bytes in {dd_secs:.1} s");
    let sha_mib_s = sha256_mib_s();
    note!("SHA-256 on one CPU: {sha_mib_s:.1} MiB/s");
    let mut rng = Rng::new(4242);
    for (label, chunk) in [("4 MiB chunks", 4u32 << 20), ("256 KiB chunks", 256 << 10)] {
        let dir = format!("/mnt/backup/repo-{chunk}");
        let repo = Repository::open_local(
            &dir,
            InitOptions {
                chunk_size: ChunkSize::new(chunk)?,
                ..InitOptions::default()
            },
        )?;
        io::drop_caches();
        let t = Instant::now();
        let full = backup_done(&run_job(&jm, JobSpec::Backup(spec(&repo)))?)?;
        let full_secs = t.elapsed().as_secs_f64();
        check!(
            full.mode == repo::BackupKind::Full,
            "{label}: first backup not full"
        );

        // 1% of the 64 KiB blocks, at random places.
        let blocks = size / (64 * 1024);
        let n = blocks.div_ceil(100);
        for _ in 0..n {
            let b = rng.below(blocks);
            io::write_sync(
                &bench.path,
                b * 64 * 1024,
                &io::noise(rng.next(), 64 * 1024),
            )?;
        }
        io::drop_caches();
        let t = Instant::now();
        let inc = backup_done(&run_job(&jm, JobSpec::Backup(spec(&repo)))?)?;
        let inc_secs = t.elapsed().as_secs_f64();
        check!(
            inc.mode == repo::BackupKind::Incremental,
            "{label}: second backup not incremental"
        );

        let zero_bytes = full.zero_chunks * u64::from(chunk);
        let json = serde_json::json!({
            "config": label,
            "image_bytes": size,
            "dd_secs": dd_secs,
            "dd_mib_s": mib_s(size, dd_secs),
            "sha256_one_cpu_mib_s": sha_mib_s,
            "full_secs": full_secs,
            "full_read_secs": full.seconds,
            "full_mib_s": mib_s(size, full_secs),
            "full_vs_dd_throughput": dd_secs / full_secs,
            "changed_blocks": n,
            "inc_changed_bytes": inc.changed_bytes,
            "inc_read_bytes": inc.read_bytes,
            "inc_secs": inc_secs,
            "inc_vs_full_time": inc_secs / full_secs,
            "zero_bytes": zero_bytes,
            "new_bytes": full.new_bytes,
            "stored_bytes": full.stored_bytes,
            "dedup_ratio": (size - zero_bytes) as f64 / full.new_bytes.max(1) as f64,
            "compression_ratio": full.new_bytes as f64 / full.stored_bytes.max(1) as f64,
            "total_reduction": size as f64 / full.stored_bytes.max(1) as f64,
        });
        proto::PROTO.bench(&json.to_string());
    }
    jm.shutdown();
    Ok(())
}

//! Throughput figures (printed, never asserted). Run with
//! `cargo test -p repo --release --test bench -- --ignored --nocapture`;
//! `REPO_BENCH_DIR` chooses the target directory (default: a temporary directory).

mod common;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use repo::{ByteRange, JobCtl, Repository};

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime is the 12th, stime the 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

fn drop_caches() {
    // Best effort (root only): measure reads from disk, not from the page cache.
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3\n");
}

/// A plain `dd bs=4M conv=fsync`-like copy.
fn plain_copy(src: &Path, dst: &Path) -> Duration {
    let t = Instant::now();
    let mut input = File::open(src).unwrap();
    let mut out = File::create(dst).unwrap();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = input.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).unwrap();
    }
    out.sync_all().unwrap();
    t.elapsed()
}

/// 256 MiB: 40% random, 30% text, 20% zeros, 10% copies of earlier random data.
fn bench_image(path: &Path, size: u64) {
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .unwrap();
    let block = 4 * MIB;
    let blocks = size / block;
    for b in 0..blocks {
        let data = match b % 10 {
            0..=3 => random_bytes(block as usize, b),
            4..=6 => text_bytes(block as usize, b),
            7 | 8 => vec![0u8; block as usize],
            _ => random_bytes(block as usize, b - 9), // same as block b-9
        };
        f.write_all_at(&data, b * block).unwrap();
    }
    f.sync_all().unwrap();
}

#[test]
#[ignore = "benchmark: prints figures, run explicitly"]
fn bench_backup_vs_plain_copy() {
    let base = std::env::var_os("REPO_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).unwrap();
    let size = 256 * MIB;
    let src = dir.path().join("source.img");
    bench_image(&src, size);
    let target = dir.path().join("target");
    std::fs::create_dir(&target).unwrap();

    drop_caches();
    let copy = plain_copy(&src, &target.join("copy.img"));
    std::fs::remove_file(target.join("copy.img")).unwrap();

    let repo = Repository::open_local(target.join("repo"), repo::InitOptions::default()).unwrap();
    drop_caches();
    let cpu = cpu_seconds();
    let t = Instant::now();
    let full = repo
        .backup_full(
            &File::open(&src).unwrap(),
            &request("bench", size, 4 << 20),
            &JobCtl::new(),
        )
        .unwrap();
    let full_time = t.elapsed();
    let full_cpu = cpu_seconds() - cpu;
    let s = full.manifest.stats;

    let t = Instant::now();
    let again = repo
        .backup_full(
            &File::open(&src).unwrap(),
            &request("bench", size, 4 << 20),
            &JobCtl::new(),
        )
        .unwrap();
    let again_time = t.elapsed();

    // 1% of the image changed: 8 writes of 320 KiB at spread-out offsets.
    let write_len = 320 << 10;
    let mut changed = Vec::new();
    let f = OpenOptions::new().write(true).open(&src).unwrap();
    for i in 0..8u64 {
        let off = (i * 31 + 7) * MIB + i * 4096;
        f.write_all_at(&random_bytes(write_len, 1000 + i), off)
            .unwrap();
        changed.push(ByteRange::new(off, write_len as u64));
    }
    f.sync_all().unwrap();
    drop_caches();
    let t = Instant::now();
    let inc = repo
        .backup_incremental(
            &File::open(&src).unwrap(),
            full.id(),
            &changed,
            &request("bench", size, 4 << 20),
            &JobCtl::new(),
        )
        .unwrap();
    let inc_time = t.elapsed();

    let t = Instant::now();
    let restored = dir.path().join("restored.img");
    repo.restore(inc.id(), &restored, &JobCtl::new()).unwrap();
    let restore_time = t.elapsed();
    let t = Instant::now();
    let report = repo.verify(full.id(), &JobCtl::new()).unwrap();
    let verify_time = t.elapsed();
    assert!(report.is_ok());
    let t = Instant::now();
    repo.export_qcow2(inc.id(), &dir.path().join("x.qcow2"), &JobCtl::new())
        .unwrap();
    let qcow2_time = t.elapsed();

    let nonzero = s.read_bytes - s.zero_chunks * (4 << 20);
    println!(
        "--- repo benchmark: {} MiB image in {} ---",
        size / MIB,
        base.display()
    );
    println!(
        "plain copy (4 MiB blocks + fsync): {:>7.2} s  {:>7.1} MiB/s",
        copy.as_secs_f64(),
        mib_s(size, copy)
    );
    println!(
        "full backup:                       {:>7.2} s  {:>7.1} MiB/s  (time ratio to copy {:.2})",
        full_time.as_secs_f64(),
        mib_s(size, full_time),
        full_time.as_secs_f64() / copy.as_secs_f64()
    );
    println!(
        "full backup CPU time:              {:>7.2} s  ({:.2} CPU-s per GiB; 2 cores = {:.2} s wall at best)",
        full_cpu,
        full_cpu * 1024.0 / (size / MIB) as f64,
        full_cpu / 2.0
    );
    println!(
        "second full backup (all dedup):    {:>7.2} s  {:>7.1} MiB/s  new chunks {}",
        again_time.as_secs_f64(),
        mib_s(size, again_time),
        again.manifest.stats.new_chunks
    );
    println!(
        "incremental after 1% change:       {:>7.2} s  ({:.1}% of full time), read {} MiB in {} chunks",
        inc_time.as_secs_f64(),
        100.0 * inc_time.as_secs_f64() / full_time.as_secs_f64(),
        inc.read_bytes() / MIB,
        inc.manifest.stats.read_chunks
    );
    println!(
        "restore (sparse file):             {:>7.2} s  {:>7.1} MiB/s",
        restore_time.as_secs_f64(),
        mib_s(size, restore_time)
    );
    println!(
        "verify:                            {:>7.2} s  {:>7.1} MiB/s",
        verify_time.as_secs_f64(),
        mib_s(size, verify_time)
    );
    println!(
        "qcow2 export:                      {:>7.2} s  {:>7.1} MiB/s",
        qcow2_time.as_secs_f64(),
        mib_s(size, qcow2_time)
    );
    println!(
        "zero chunks {} of {}; dedup: {} MiB non-zero data -> {} MiB unique ({:.2}x); \
         compression: {} MiB -> {} MiB stored ({:.2}x); image/stored {:.2}x",
        s.zero_chunks,
        full.manifest.chunk_count,
        nonzero / MIB,
        s.new_bytes / MIB,
        nonzero as f64 / s.new_bytes as f64,
        s.new_bytes / MIB,
        s.stored_bytes / MIB,
        s.new_bytes as f64 / s.stored_bytes as f64,
        size as f64 / s.stored_bytes as f64
    );
}

//! Backup throughput to a local Garage vs a local directory target, same source, same run.
//!
//! `cargo test -p s3target --release --test bench -- --ignored --nocapture`
//! (`BENCH_MIB=N` sets the image size, default 256).

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use repo::{BackupRequest, ChunkSize, DiskIdentity, InitOptions, JobCtl, LocalDir, Repository};
use s3target::S3Target;

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn backup_throughput_s3_vs_local_dir() {
    let mib: usize = std::env::var("BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let g = Garage::start();
    let work = tempfile::tempdir().unwrap();
    // Half incompressible noise, half zeros-and-text-like repetitive data.
    let mut img = noise(mib << 20, 11);
    for block in img.chunks_mut(8 << 20).skip(1).step_by(2) {
        for (i, b) in block.iter_mut().enumerate() {
            *b = b"backup snapshot chunk "[i % 22];
        }
    }
    let path = work.path().join("disk.img");
    std::fs::write(&path, &img).unwrap();
    let opts = InitOptions {
        chunk_size: ChunkSize::new(4 << 20).unwrap(),
        ..InitOptions::default()
    };
    let targets: Vec<(&str, Arc<dyn repo::Target>)> = vec![
        (
            "local dir",
            Arc::new(LocalDir::create(work.path().join("repo")).unwrap()),
        ),
        (
            "garage s3",
            Arc::new(S3Target::connect(&g.config("bench")).unwrap()),
        ),
    ];
    for (name, target) in targets {
        let repo = Repository::open_or_init(target, opts).unwrap();
        let src = std::fs::File::open(&path).unwrap();
        let t = Instant::now();
        let res = repo
            .backup_full(
                &src,
                &BackupRequest::new(DiskIdentity::default()),
                &JobCtl::new(),
            )
            .unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "bench: full backup of {mib} MiB to {name}: {secs:.2} s, {:.1} MiB/s ({} new chunks, {} MiB stored)",
            mib as f64 / secs,
            res.manifest.stats.new_chunks,
            res.manifest.stats.stored_bytes >> 20
        );
    }
}

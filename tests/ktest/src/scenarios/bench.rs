//! `bench`: write throughput of bench0 with O_DIRECT, iodepth 1, for the
//! plain disk, a fresh blksnap snapshot (first pass: chunks copied), the
//! same snapshot again (chunks already copied), a tracked device with no
//! snapshot, and dm-snapshot (transient store on the same COW disk, same
//! chunk size) fresh and copied. Each figure is the median of five
//! (sequential) or three (random) runs in this boot, configurations
//! interleaved within each repetition; ratios are against the plain disk.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::ctx::{storage_ranges, wait_path, Ctx, Snap};
use crate::disks::Disk;
use crate::io::{self, AlignedBuf};
use crate::rng::Rng;
use crate::{note, params, proto};

/// Repetitions of each measurement: a sequential pass is short (a fraction
/// of a second with the host cache bypassed), so it gets more.
const REPS_SEQ: usize = 5;
const REPS_RAND: usize = 3;
const SEQ_BLOCK: usize = 1 << 20;
const RAND_BLOCK: usize = 4096;
const RAND_TOTAL: u64 = 64 << 20;
const RAND_SEED: u64 = 0xbe7c4;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    Seq,
    Rand,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Seq => "seq_1m",
            Workload::Rand => "rand_4k",
        }
    }
}

/// One pass of `w` over the device at `path`; returns MB/s (10^6 bytes).
fn pass(path: &Path, size: u64, w: Workload) -> Result<f64> {
    let f = io::open_direct(path, true)?;
    let start = Instant::now();
    let bytes = match w {
        Workload::Seq => {
            let mut buf = AlignedBuf::new(SEQ_BLOCK);
            Rng::new(1).fill(buf.as_mut_slice());
            let mut pos = 0u64;
            while pos < size {
                let n = (size - pos).min(SEQ_BLOCK as u64) as usize;
                std::os::unix::fs::FileExt::write_all_at(&f, &buf.as_slice()[..n], pos)
                    .with_context(|| format!("write at {pos}"))?;
                pos += n as u64;
            }
            size
        }
        Workload::Rand => {
            let mut buf = AlignedBuf::new(RAND_BLOCK);
            Rng::new(2).fill(buf.as_mut_slice());
            let mut rng = Rng::new(RAND_SEED);
            let slots = size / RAND_BLOCK as u64;
            for _ in 0..RAND_TOTAL / RAND_BLOCK as u64 {
                let pos = rng.below(slots) * RAND_BLOCK as u64;
                std::os::unix::fs::FileExt::write_all_at(&f, buf.as_slice(), pos)
                    .with_context(|| format!("write at {pos}"))?;
            }
            RAND_TOTAL
        }
    };
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    Ok(bytes as f64 / secs / 1e6)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Row {
    config: &'static str,
    workload: Workload,
    runs: Vec<f64>,
}

impl Row {
    fn mbps(&self) -> f64 {
        median(self.runs.clone())
    }
}

fn dmsetup_path() -> Option<PathBuf> {
    [
        "/bin/dmsetup",
        "/sbin/dmsetup",
        "/usr/sbin/dmsetup",
        "/usr/bin/dmsetup",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn dmsetup(bin: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(bin)
        .args(args)
        .env("DM_DISABLE_UDEV", "1")
        .output()
        .with_context(|| format!("run {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "dmsetup {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// dm-snapshot of `origin` with a transient store on `cow`; writes go to
/// /dev/mapper/bo. Removed on drop.
struct DmSnap<'a> {
    bin: &'a Path,
}

impl<'a> DmSnap<'a> {
    fn new(bin: &'a Path, origin: &Disk, cow: &Disk, chunk: u64) -> Result<Self> {
        let sectors = origin.size / 512;
        let snap_table = format!(
            "0 {sectors} snapshot {} {} N {}",
            origin.path.display(),
            cow.path.display(),
            chunk / 512
        );
        let origin_table = format!("0 {sectors} snapshot-origin {}", origin.path.display());
        dmsetup(
            bin,
            &["create", "bs", "--noudevsync", "--table", &snap_table],
        )?;
        let me = Self { bin };
        dmsetup(
            bin,
            &["create", "bo", "--noudevsync", "--table", &origin_table],
        )?;
        wait_path(Path::new("/dev/mapper/bo"), Duration::from_secs(10))?;
        Ok(me)
    }
}

impl Drop for DmSnap<'_> {
    fn drop(&mut self) {
        for name in ["bo", "bs"] {
            if let Err(e) = dmsetup(self.bin, &["remove", "--noudevsync", name]) {
                note!("bench: {e:#}");
            }
        }
    }
}

pub fn run(ctx: &Ctx) -> Result<()> {
    let disk = ctx.disk("bench0")?;
    let cow = ctx.disk("bcow0")?;
    let ctl = ctx.ctl()?;
    let chunk = params::chunk_size(disk.size)?;
    note!(
        "bench: {} {} bytes, COW on {} {} bytes, chunk {chunk}",
        disk.name,
        disk.size,
        cow.name,
        cow.size
    );
    // Every block of both disks written once first: the sparse image files
    // behind them then need no allocation on the host during the runs.
    for d in [disk, cow] {
        let mbps = pass(&d.path, d.size, Workload::Seq)?;
        note!("bench: warm-up of {} at {mbps:.1} MB/s", d.name);
    }
    let dm = dmsetup_path();
    if dm.is_none() {
        note!("bench: no dmsetup in the image: dm-snapshot rows skipped");
    }
    // Configurations are interleaved within each repetition so that drifts
    // of the host's load touch them all alike.
    let mut runs: Vec<(&'static str, Workload, Vec<f64>)> = Vec::new();
    let mut record = |config: &'static str, w: Workload, v: f64| match runs
        .iter_mut()
        .find(|(c, x, _)| *c == config && *x == w)
    {
        Some(entry) => entry.2.push(v),
        None => runs.push((config, w, vec![v])),
    };
    for w in [Workload::Seq, Workload::Rand] {
        let reps = match w {
            Workload::Seq => REPS_SEQ,
            Workload::Rand => REPS_RAND,
        };
        for rep in 0..reps {
            record("plain", w, pass(&disk.path, disk.size, w)?);
            let snap = Snap::take_new(&ctl, &[disk.dev], cow, &storage_ranges(cow, 1))?;
            record("blksnap_fresh", w, pass(&disk.path, disk.size, w)?);
            record("blksnap_copied", w, pass(&disk.path, disk.size, w)?);
            snap.destroy()?;
            record("tracked_no_snapshot", w, pass(&disk.path, disk.size, w)?);
            ctl.tracker_remove(disk.dev)?;
            if let Some(bin) = &dm {
                let bo = Path::new("/dev/mapper/bo");
                let snap = DmSnap::new(bin, disk, cow, chunk)?;
                record("dm_snapshot_fresh", w, pass(bo, disk.size, w)?);
                record("dm_snapshot_copied", w, pass(bo, disk.size, w)?);
                drop(snap);
            }
            note!("bench: {} repetition {rep} done", w.name());
        }
    }
    let rows: Vec<Row> = runs
        .into_iter()
        .map(|(config, workload, runs)| Row {
            config,
            workload,
            runs,
        })
        .collect();
    for row in &rows {
        note!(
            "bench: {} {} {:.1} MB/s (runs {:?})",
            row.config,
            row.workload.name(),
            row.mbps(),
            row.runs
        );
    }
    report(&rows, chunk);
    Ok(())
}

fn report(rows: &[Row], chunk: u64) {
    let plain = |w: Workload| {
        rows.iter()
            .find(|r| r.config == "plain" && r.workload == w)
            .map(Row::mbps)
            .unwrap_or(f64::NAN)
    };
    for r in rows {
        let runs: Vec<String> = r.runs.iter().map(|v| format!("{v:.2}")).collect();
        proto::PROTO.bench(&format!(
            "{{\"config\":\"{}\",\"workload\":\"{}\",\"mbps\":{:.2},\"ratio\":{:.3},\"runs\":[{}],\"chunk\":{chunk}}}",
            r.config,
            r.workload.name(),
            r.mbps(),
            r.mbps() / plain(r.workload),
            runs.join(",")
        ));
    }
    note!(
        "bench: {:<22} {:>12} {:>8} {:>12} {:>8}",
        "config",
        "seq_1m MB/s",
        "ratio",
        "rand_4k MB/s",
        "ratio"
    );
    let mut configs: Vec<&str> = Vec::new();
    for r in rows {
        if !configs.contains(&r.config) {
            configs.push(r.config);
        }
    }
    for c in configs {
        let cell = |w: Workload| {
            rows.iter()
                .find(|r| r.config == c && r.workload == w)
                .map(|r| (r.mbps(), r.mbps() / plain(w)))
        };
        let fmt = |v: Option<(f64, f64)>| match v {
            Some((m, ratio)) => (format!("{m:.1}"), format!("{ratio:.2}x")),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let (s, sr) = fmt(cell(Workload::Seq));
        let (r, rr) = fmt(cell(Workload::Rand));
        note!("bench: {c:<22} {s:>12} {sr:>8} {r:>12} {rr:>8}");
    }
}

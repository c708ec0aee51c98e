//! `overflow`: a snapshot whose storage runs out. A corrupted event names the
//! original device; the image then fails reads with EIO; every production
//! write succeeded and the original holds exactly what was written. A new
//! snapshot with enough storage works again afterwards.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use blksnap::{Event, SectorRange};

use super::fill_pattern;
use crate::ctx::{storage_ranges, Ctx, Snap};
use crate::io;
use crate::workload::{run_writers, standard_writers, verify_model};
use crate::{check, note, params};

pub fn run(ctx: &Ctx) -> Result<()> {
    let orig = ctx.disk("orig0")?;
    let store0 = ctx.disk("store0")?;
    let store1 = ctx.disk("store1")?;
    let ctl = ctx.ctl()?;
    let chunk = params::chunk_size(orig.size)?;
    let model = fill_pattern(orig, 0x0f)?;

    // Storage for eight chunks only.
    let tiny = 8 * chunk / 512;
    let snap = Snap::create(&ctl, &[orig.dev])?;
    snap.append(store1, &[SectorRange::new(0, tiny)])?;
    snap.take()?;
    let image = snap.image_of(orig.dev)?;
    let specs = standard_writers(orig.size, chunk, 0x0f10, 60);
    let written = run_writers(&orig.path, &model, &specs).context("production writes")?;
    let bytes: u64 = written.iter().map(|w| w.bytes).sum();

    let start = Instant::now();
    let mut corrupted = None;
    while start.elapsed() < Duration::from_secs(30) {
        match ctl.wait_event(snap.id, Duration::from_secs(2))? {
            Some(Event::Corrupted { dev, errno }) => {
                corrupted = Some((dev, errno));
                break;
            }
            Some(ev) => note!("overflow: event {ev}"),
            None => {}
        }
    }
    let (dev, errno) = corrupted.context("no corrupted event within 30 s of the overflow")?;
    check!(
        dev == orig.dev,
        "corrupted event names {dev}, the original is {}",
        orig.dev
    );
    note!(
        "overflow: corrupted event for {dev} with error {}",
        nix::errno::Errno::from_raw(errno)
    );

    let f = io::open_direct(&image, false)?;
    for off in [0, orig.size / 2 / chunk * chunk, orig.size - 4096] {
        match io::read_direct(&f, off, 4096) {
            Ok(_) => anyhow::bail!("reading the corrupted image at {off} succeeded"),
            Err(e) => check!(
                e.raw_os_error() == Some(nix::libc::EIO),
                "reading the corrupted image at {off} failed with {e}, expected EIO"
            ),
        }
    }
    drop(f);
    let hash = verify_model(&orig.path, &model, chunk)?;
    snap.destroy()?;
    note!(
        "overflow: {bytes} bytes written, all succeeded; original {} exact; image reads fail with EIO",
        io::short(&hash)
    );

    // The next snapshot with enough storage is sound.
    let pre = model.copy();
    let again = Snap::take_new(&ctl, &[orig.dev], store0, &storage_ranges(store0, 1))?;
    let image = again.image_of(orig.dev)?;
    run_writers(
        &orig.path,
        &model,
        &standard_writers(orig.size, chunk, 0x0f20, 10),
    )?;
    io::verify_device(&image, &pre, chunk).context("image of the snapshot after an overflow")?;
    again.destroy()?;
    Ok(())
}

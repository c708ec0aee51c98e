//! `image_write`: writes to a snapshot image are kept in the difference
//! storage. The image reads back what was written to it (over its
//! pre-snapshot content); the original keeps its own content plus its own
//! production writes, also where both were written to the same chunks, in
//! either order.

use anyhow::{Context, Result};

use super::fill_pattern;
use crate::ctx::{storage_ranges, Ctx, Snap};
use crate::rng::Rng;
use crate::workload::{edge_writes, run_writers, verify_model, Model, WriterSpec};
use crate::{io, note, params};

pub fn run(ctx: &Ctx) -> Result<()> {
    let orig = ctx.disk("orig0")?;
    let store = ctx.disk("store0")?;
    let ctl = ctx.ctl()?;
    let chunk = params::chunk_size(orig.size)?;
    let model = fill_pattern(orig, 0x1e)?;
    let pre_hash = model.hash();
    let image_model = Model::new(model.copy());
    let snap = Snap::take_new(&ctl, &[orig.dev], store, &storage_ranges(store, 2))?;
    let image = snap.image_of(orig.dev)?;
    let mut rng = Rng::new(0x1e1e);

    // 1. The image alone: edge and random writes, O_DIRECT and buffered.
    let first = vec![
        WriterSpec {
            seed: 1,
            direct: true,
            writes: 20,
            max_len: 256 << 10,
            forced: edge_writes(orig.size, chunk, &mut rng, false),
        },
        WriterSpec {
            seed: 2,
            direct: false,
            writes: 20,
            max_len: 64 << 10,
            forced: edge_writes(orig.size, chunk, &mut rng, true),
        },
    ];
    let image_writes = run_writers(&image, &image_model, &first).context("writes to the image")?;
    io::verify_device(&image, &image_model.copy(), chunk).context("image after its own writes")?;
    verify_model(&orig.path, &model, chunk).context("original after image writes")?;

    // 2. The original over the same places (chunks the image already wrote),
    //    while the image is written again elsewhere and over chunks the
    //    original copies now.
    let same_places: Vec<(u64, u64)> = image_writes
        .iter()
        .flat_map(|w| w.ranges.iter().copied())
        .take(24)
        .collect();
    let production = vec![
        WriterSpec {
            seed: 3,
            direct: true,
            writes: 20,
            max_len: 128 << 10,
            forced: same_places.clone(),
        },
        WriterSpec {
            seed: 4,
            direct: false,
            writes: 20,
            max_len: 64 << 10,
            forced: same_places.iter().rev().take(8).copied().collect(),
        },
    ];
    let second = vec![WriterSpec {
        seed: 5,
        direct: true,
        writes: 30,
        max_len: 128 << 10,
        forced: edge_writes(orig.size, chunk, &mut rng, false),
    }];
    std::thread::scope(|s| -> Result<()> {
        let p = s.spawn(|| run_writers(&orig.path, &model, &production));
        let i = s.spawn(|| run_writers(&image, &image_model, &second));
        p.join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))?
            .context("production writes")?;
        i.join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))?
            .context("image writes")?;
        Ok(())
    })?;
    let image_hash =
        io::verify_device(&image, &image_model.copy(), chunk).context("image after both")?;
    let orig_hash = verify_model(&orig.path, &model, chunk).context("original after both")?;
    snap.destroy()?;
    let after = verify_model(&orig.path, &model, chunk).context("original after destroy")?;
    note!(
        "image_write: pre {}; image {} holds its writes; original {} (== {} after destroy) holds only its own",
        io::short(&pre_hash),
        io::short(&image_hash),
        io::short(&orig_hash),
        io::short(&after)
    );
    Ok(())
}

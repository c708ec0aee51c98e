//! The scenarios, one function each; names are the protocol names.

mod bad_input;
mod bench;
mod cbt;
mod consistency;
mod cycles;
mod discard;
mod image_write;
mod low_space;
mod overflow;
mod partitions;

use anyhow::Result;

use crate::ctx::Ctx;

pub type Scenario = fn(&Ctx) -> Result<()>;

/// The scenarios `all` runs, in that order.
pub const FUNCTIONAL: &[(&str, Scenario)] = &[
    ("consistency", consistency::run),
    ("partitions", partitions::run),
    ("discard", discard::run),
    ("cbt", cbt::run),
    ("low_space", low_space::run),
    ("overflow", overflow::run),
    ("image_write", image_write::run),
    ("cycles", cycles::run),
    ("bad_input", bad_input::run),
];

pub fn find(name: &str) -> Option<Scenario> {
    if name == "bench" {
        return Some(bench::run);
    }
    FUNCTIONAL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Ensures a condition, failing the scenario with the formatted message.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            anyhow::bail!($($arg)*);
        }
    };
}

/// Fills `disk` with a pseudo-random pattern from `seed`, checks it reads
/// back, and returns the model of its content.
pub fn fill_pattern(disk: &crate::disks::Disk, seed: u64) -> Result<crate::workload::Model> {
    let data = crate::rng::Rng::new(seed).bytes(disk.size as usize);
    crate::io::write_device(&disk.path, &data)?;
    let hash = crate::io::verify_device(&disk.path, &data, 1 << 18)?;
    crate::note!(
        "filled {} ({} bytes) with pattern {seed:#x}: hash {}",
        disk.name,
        disk.size,
        crate::io::short(&hash)
    );
    Ok(crate::workload::Model::new(data))
}

//! The module's parameters as loaded (`/sys/module/blksnap/parameters`) and
//! the sizes the contract derives from them.

use anyhow::{Context, Result};

const DIR: &str = "/sys/module/blksnap/parameters";

pub fn get(name: &str) -> Result<u64> {
    let path = format!("{DIR}/{name}");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    text.trim()
        .parse()
        .with_context(|| format!("parse {path}: {text:?}"))
}

pub fn set(name: &str, value: u64) -> Result<()> {
    let path = format!("{DIR}/{name}");
    std::fs::write(&path, value.to_string()).with_context(|| format!("write {value} to {path}"))
}

/// The smallest power of two `>= 2^min_shift` with at most `max_count`
/// units covering `capacity` bytes (the contract's rule for chunks and
/// tracking blocks: the shift grows by one at a time).
pub fn unit_size(capacity: u64, min_shift: u64, max_count: u64) -> u64 {
    let mut shift = min_shift;
    while shift < 63 && capacity.div_ceil(1u64 << shift) > max_count.max(1) {
        shift += 1;
    }
    1u64 << shift
}

/// Copy-on-write chunk size for a device of `capacity` bytes.
pub fn chunk_size(capacity: u64) -> Result<u64> {
    Ok(unit_size(
        capacity,
        get("chunk_minimum_shift")?,
        get("chunk_maximum_count")?,
    ))
}

/// Change-tracking block size for a device of `capacity` bytes.
pub fn tracking_block_size(capacity: u64) -> Result<u64> {
    Ok(unit_size(
        capacity,
        get("tracking_block_minimum_shift")?,
        get("tracking_block_maximum_count")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_size_grows_one_shift_at_a_time() {
        assert_eq!(unit_size(64 << 20, 16, 2_097_152), 64 << 10);
        // 1 TiB with at most 2^21 blocks of >= 64 KiB: 512 KiB, not 2^32.
        assert_eq!(unit_size(1 << 40, 16, 2_097_152), 512 << 10);
        assert_eq!(unit_size((1 << 40) + 1, 16, 2_097_152), 1 << 20);
        assert_eq!(unit_size(100 << 20, 18, 100), 1 << 20);
    }
}

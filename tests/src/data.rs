//! Test data: deterministic pseudo-random bytes (xorshift64), different for each seed and
//! incompressible, so that checksums and compression figures mean something.

/// `len` pseudo-random bytes for `seed`.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_give_different_repeatable_bytes() {
        assert_eq!(noise(100, 1), noise(100, 1));
        assert_ne!(noise(100, 1), noise(100, 2));
        assert_eq!(noise(13, 5).len(), 13);
        assert_eq!(&noise(64, 3)[..13], &noise(13, 3)[..]);
    }
}

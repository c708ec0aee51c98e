//! A streaming qcow2 (version 3) writer, and [`Repository::export_qcow2`].
//!
//! The image is fed in order. Host clusters are allocated strictly one after the other,
//! each exactly once, so every allocated cluster has refcount 1 and there are no holes:
//!
//! | host clusters               | what                                                  |
//! |-----------------------------|-------------------------------------------------------|
//! | 0                           | header (written last)                                 |
//! | 1 ..                        | data clusters and L2 tables, interleaved: an L2 table |
//! |                             | is written as soon as its 512 MiB of guest space is done |
//! | then                        | the L1 table                                          |
//! | then                        | refcount blocks (16-bit), then the refcount table     |
//!
//! All-zero guest clusters are left unallocated (no backing file, so they read as zeros);
//! an L2 table with nothing allocated is not written (its L1 entry stays 0). L1 and L2
//! entries carry `QCOW_OFLAG_COPIED` because every refcount is 1. Numbers are big endian.
//! Memory use: one L2 table, the L1 table and one cluster buffer.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{RepoError, Result};
use crate::formats::{
    QCOW2_CLUSTER_BITS, QCOW2_HEADER_LEN, QCOW2_MAGIC, QCOW2_OFLAG_COPIED, QCOW2_REFCOUNT_ORDER,
    QCOW2_VERSION,
};
use crate::job::{JobCtl, Phase};
use crate::repo::Repository;
use crate::restore::ChunkData;
use crate::source::is_zero;
use crate::types::{BackupId, Digest};

/// Outcome of a qcow2 export.
#[derive(Debug, Clone)]
pub struct Qcow2Export {
    /// SHA-256 of the guest image (the backup's content).
    pub image_sha256: Digest,
    /// Guest (virtual) size in bytes.
    pub virtual_size: u64,
    /// Size of the qcow2 file in bytes.
    pub file_size: u64,
    /// Guest clusters holding data.
    pub data_clusters: u64,
}

/// Writes a qcow2 file from a guest image fed in order.
pub(crate) struct Qcow2Writer {
    file: File,
    cluster_bits: u32,
    cluster_size: u64,
    virtual_size: u64,
    /// L2 entries per table (= cluster size / 8).
    l2_entries: u64,
    l1: Vec<u64>,
    /// The L2 table being filled, for L1 slot `l2_slot`.
    l2: Vec<u64>,
    l2_slot: u64,
    l2_used: bool,
    /// Next free host cluster.
    next_cluster: u64,
    /// Partial guest cluster.
    buf: Vec<u8>,
    /// Guest bytes fed so far (including `buf`).
    fed: u64,
    data_clusters: u64,
}

fn io_err(what: &str, e: io::Error) -> RepoError {
    RepoError::Destination {
        context: format!("writing the qcow2 {what}"),
        source: e,
    }
}

impl Qcow2Writer {
    /// Creates (or truncates) `file` for a guest of `virtual_size` bytes, with clusters of
    /// `1 << cluster_bits` bytes (9 ..= 21; exports use [`QCOW2_CLUSTER_BITS`]).
    pub(crate) fn new(file: File, virtual_size: u64, cluster_bits: u32) -> Result<Self> {
        if !(9..=21).contains(&cluster_bits) {
            return Err(RepoError::invalid(
                "qcow2 cluster size",
                format!("2^{cluster_bits} bytes"),
            ));
        }
        if virtual_size == 0 || virtual_size % 512 != 0 {
            return Err(RepoError::invalid(
                "qcow2 export",
                format!("image size {virtual_size} is not a positive multiple of 512"),
            ));
        }
        file.set_len(0).map_err(|e| io_err("file", e))?;
        let cluster_size = 1u64 << cluster_bits;
        let l2_entries = cluster_size / 8;
        let l1_len = virtual_size.div_ceil(cluster_size * l2_entries);
        let l1_len = usize::try_from(l1_len)
            .map_err(|_| RepoError::invalid("qcow2 export", "image too large"))?;
        Ok(Qcow2Writer {
            file,
            cluster_bits,
            cluster_size,
            virtual_size,
            l2_entries,
            l1: vec![0; l1_len],
            l2: vec![0; l2_entries as usize],
            l2_slot: 0,
            l2_used: false,
            next_cluster: 1,
            buf: Vec::with_capacity(cluster_size as usize),
            fed: 0,
            data_clusters: 0,
        })
    }

    fn alloc(&mut self) -> u64 {
        let off = self.next_cluster * self.cluster_size;
        self.next_cluster += 1;
        off
    }

    /// Feeds guest bytes.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let room = self.cluster_size as usize - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            self.fed += take as u64;
            data = &data[take..];
            if self.buf.len() == self.cluster_size as usize {
                self.emit_buffer()?;
            }
        }
        Ok(())
    }

    /// Feeds `len` zero bytes without touching whole clusters.
    pub(crate) fn feed_zeros(&mut self, mut len: u64) -> Result<()> {
        while len > 0 {
            if self.buf.is_empty() && len >= self.cluster_size {
                let whole = len / self.cluster_size * self.cluster_size;
                self.fed += whole;
                len -= whole;
                continue;
            }
            let room = self.cluster_size - self.buf.len() as u64;
            let take = room.min(len);
            self.buf.resize(self.buf.len() + take as usize, 0);
            self.fed += take;
            len -= take;
            if self.buf.len() == self.cluster_size as usize {
                self.emit_buffer()?;
            }
        }
        Ok(())
    }

    /// Writes the buffered guest cluster (zero-padded) unless it is all zero.
    fn emit_buffer(&mut self) -> Result<()> {
        let guest_cluster = (self.fed - 1) / self.cluster_size;
        if !is_zero(&self.buf) {
            self.buf.resize(self.cluster_size as usize, 0);
            let slot = guest_cluster / self.l2_entries;
            if slot != self.l2_slot {
                self.flush_l2()?;
                self.l2_slot = slot;
            }
            let off = self.alloc();
            self.file
                .write_all_at(&self.buf, off)
                .map_err(|e| io_err("data", e))?;
            self.l2[(guest_cluster % self.l2_entries) as usize] = off | QCOW2_OFLAG_COPIED;
            self.l2_used = true;
            self.data_clusters += 1;
        }
        self.buf.clear();
        Ok(())
    }

    /// Writes the current L2 table if it maps anything.
    fn flush_l2(&mut self) -> Result<()> {
        if self.l2_used {
            let off = self.alloc();
            let bytes: Vec<u8> = self.l2.iter().flat_map(|e| e.to_be_bytes()).collect();
            self.file
                .write_all_at(&bytes, off)
                .map_err(|e| io_err("L2 table", e))?;
            if let Some(e) = self.l1.get_mut(self.l2_slot as usize) {
                *e = off | QCOW2_OFLAG_COPIED;
            }
        }
        self.l2.iter_mut().for_each(|e| *e = 0);
        self.l2_used = false;
        Ok(())
    }

    /// Writes the remaining metadata and the header; returns the file.
    pub(crate) fn finish(mut self) -> Result<(File, u64, u64)> {
        if self.fed != self.virtual_size {
            return Err(RepoError::invalid(
                "qcow2 export",
                format!(
                    "fed {} bytes for {} byte guest",
                    self.fed, self.virtual_size
                ),
            ));
        }
        if !self.buf.is_empty() {
            self.emit_buffer()?;
        }
        self.flush_l2()?;

        let cs = self.cluster_size;
        let l1_bytes: Vec<u8> = self.l1.iter().flat_map(|e| e.to_be_bytes()).collect();
        let l1_clusters = (l1_bytes.len() as u64).div_ceil(cs).max(1);
        let l1_offset = self.next_cluster * cs;
        self.next_cluster += l1_clusters;
        self.file
            .write_all_at(&l1_bytes, l1_offset)
            .map_err(|e| io_err("L1 table", e))?;

        // Refcount blocks and table also need refcounts: find the fixed point.
        let refs_per_block = cs * 8 / (1 << QCOW2_REFCOUNT_ORDER);
        let entries_per_table_cluster = cs / 8;
        let base = self.next_cluster;
        let (mut blocks, mut table) = (0u64, 0u64);
        loop {
            let total = base + blocks + table;
            let b = total.div_ceil(refs_per_block);
            let t = b.div_ceil(entries_per_table_cluster).max(1);
            if (b, t) == (blocks, table) {
                break;
            }
            (blocks, table) = (b, t);
        }
        let total_clusters = base + blocks + table;
        let blocks_offset = base * cs;
        let table_offset = (base + blocks) * cs;

        let mut table_bytes = Vec::with_capacity((table * cs) as usize);
        for b in 0..blocks {
            let first = b * refs_per_block;
            let block: Vec<u8> = (first..first + refs_per_block)
                .flat_map(|c| u16::from(c < total_clusters).to_be_bytes())
                .collect();
            let off = blocks_offset + b * cs;
            self.file
                .write_all_at(&block, off)
                .map_err(|e| io_err("refcount block", e))?;
            table_bytes.extend_from_slice(&off.to_be_bytes());
        }
        table_bytes.resize((table * cs) as usize, 0);
        self.file
            .write_all_at(&table_bytes, table_offset)
            .map_err(|e| io_err("refcount table", e))?;

        let l1_len = u32::try_from(self.l1.len())
            .map_err(|_| RepoError::invalid("qcow2 export", "L1 table too large"))?;
        let table_clusters = u32::try_from(table)
            .map_err(|_| RepoError::invalid("qcow2 export", "refcount table too large"))?;
        let mut h = Vec::with_capacity(QCOW2_HEADER_LEN as usize);
        h.extend_from_slice(&QCOW2_MAGIC.to_be_bytes());
        h.extend_from_slice(&QCOW2_VERSION.to_be_bytes());
        h.extend_from_slice(&0u64.to_be_bytes()); // backing_file_offset
        h.extend_from_slice(&0u32.to_be_bytes()); // backing_file_size
        h.extend_from_slice(&self.cluster_bits.to_be_bytes());
        h.extend_from_slice(&self.virtual_size.to_be_bytes());
        h.extend_from_slice(&0u32.to_be_bytes()); // crypt_method
        h.extend_from_slice(&l1_len.to_be_bytes());
        h.extend_from_slice(&l1_offset.to_be_bytes());
        h.extend_from_slice(&table_offset.to_be_bytes());
        h.extend_from_slice(&table_clusters.to_be_bytes());
        h.extend_from_slice(&0u32.to_be_bytes()); // nb_snapshots
        h.extend_from_slice(&0u64.to_be_bytes()); // snapshots_offset
        h.extend_from_slice(&0u64.to_be_bytes()); // incompatible_features
        h.extend_from_slice(&0u64.to_be_bytes()); // compatible_features
        h.extend_from_slice(&0u64.to_be_bytes()); // autoclear_features
        h.extend_from_slice(&QCOW2_REFCOUNT_ORDER.to_be_bytes());
        h.extend_from_slice(&QCOW2_HEADER_LEN.to_be_bytes());
        // The rest of cluster 0 is zero: a header extension of type 0 ends the list.
        h.resize(cs as usize, 0);
        self.file
            .write_all_at(&h, 0)
            .map_err(|e| io_err("header", e))?;
        let file_size = total_clusters * cs;
        self.file
            .set_len(file_size)
            .map_err(|e| io_err("file", e))?;
        self.file.sync_all().map_err(|e| io_err("file", e))?;
        Ok((self.file, file_size, self.data_clusters))
    }
}

impl Repository {
    /// Writes backup `id` as a qcow2 v3 file at `path` (64 KiB clusters, zero clusters
    /// unallocated). The image size must be a multiple of 512 bytes.
    pub fn export_qcow2(&self, id: &BackupId, path: &Path, ctl: &JobCtl) -> Result<Qcow2Export> {
        let m = self.manifest(id)?;
        let index = self.index(&m)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| RepoError::Destination {
                context: format!("creating {}", path.display()),
                source: e,
            })?;
        let mut writer = Qcow2Writer::new(file, m.image_size, QCOW2_CLUSTER_BITS)?;
        let digest = self.read_image(&m, &index, Phase::Export, ctl, |_, data| match data {
            ChunkData::Zero(len) => writer.feed_zeros(len as u64),
            ChunkData::Data(d) => writer.feed(&d),
        })?;
        let (_, file_size, data_clusters) = writer.finish()?;
        Ok(Qcow2Export {
            image_sha256: digest,
            virtual_size: m.image_size,
            file_size,
            data_clusters,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// Writes `image` through the writer with small clusters (many L2 tables, many refcount
    /// blocks, a refcount table of several clusters) and checks it with qemu-img.
    fn round_trip(image: &[u8], cluster_bits: u32, feed_step: usize) {
        let Ok(out) = Command::new("qemu-img").arg("--version").output() else {
            eprintln!("skipping: qemu-img is not installed");
            return;
        };
        assert!(out.status.success());
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("t.qcow2");
        let raw = dir.path().join("t.raw");
        std::fs::write(&raw, image).unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&q)
            .unwrap();
        let mut w = Qcow2Writer::new(file, image.len() as u64, cluster_bits).unwrap();
        for part in image.chunks(feed_step) {
            if is_zero(part) {
                w.feed_zeros(part.len() as u64).unwrap();
            } else {
                w.feed(part).unwrap();
            }
        }
        w.finish().unwrap();
        let check = Command::new("qemu-img")
            .args(["check", "-f", "qcow2"])
            .arg(&q)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let cmp = Command::new("qemu-img")
            .args(["compare", "-f", "qcow2", "-F", "raw"])
            .arg(&q)
            .arg(&raw)
            .output()
            .unwrap();
        assert!(
            cmp.status.success(),
            "{}{}",
            String::from_utf8_lossy(&cmp.stdout),
            String::from_utf8_lossy(&cmp.stderr)
        );
    }

    fn pattern(size: usize) -> Vec<u8> {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut v: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        // Zero stretches: whole L2 ranges, single clusters, a partial cluster.
        v[40_000..200_000].fill(0);
        v[300_000..300_512].fill(0);
        v[500_000..900_000].fill(0);
        v
    }

    #[test]
    fn small_clusters_many_tables() {
        // 512-byte clusters: an L2 table covers 32 KiB, a refcount block 256 clusters, a
        // refcount table cluster 64 blocks: 12 MiB needs a refcount table of 2 clusters.
        round_trip(&pattern(12 << 20), 9, 4096);
        // Feeds that do not line up with clusters.
        round_trip(&pattern((1 << 20) + 1536), 12, 3000);
    }

    #[test]
    fn all_zero_image_has_only_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("z.qcow2")).unwrap();
        let mut w = Qcow2Writer::new(file, 8 << 20, QCOW2_CLUSTER_BITS).unwrap();
        w.feed_zeros(8 << 20).unwrap();
        let (_, size, data) = w.finish().unwrap();
        assert_eq!(data, 0);
        // Header, L1, one refcount block, the refcount table.
        assert_eq!(size, 4 << QCOW2_CLUSTER_BITS);
        round_trip(&vec![0u8; 8 << 20], 16, 1 << 20);
    }

    #[test]
    fn sizes_must_be_sector_multiples() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("z.qcow2")).unwrap();
        assert!(Qcow2Writer::new(file, 1000, 16).is_err());
    }
}

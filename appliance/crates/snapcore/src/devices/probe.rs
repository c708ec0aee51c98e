//! What a device holds, from the signatures in its first [`PROBE_LEN`] bytes: a filesystem
//! (or swap, an LVM2 physical volume, a LUKS container, ...) and a partition table.
//!
//! | content        | where the signature is                                         |
//! |----------------|----------------------------------------------------------------|
//! | ext2/3/4       | superblock at 1024: magic 0xEF53 at +56; features decide 2/3/4 |
//! | xfs            | `XFSB` at 0                                                    |
//! | btrfs          | `_BHRfS_M` at 65536 + 64                                       |
//! | vfat           | `FAT12   `/`FAT16   ` at 54 or `FAT32   ` at 82, 0x55AA at 510 |
//! | ntfs           | `NTFS    ` at 3                                                |
//! | swap           | `SWAPSPACE2`/`SWAP-SPACE` 10 bytes before the end of a page    |
//! | LVM2 PV        | `LABELONE` at the start of one of sectors 0-3, `LVM2 001` +24  |
//! | LUKS           | `LUKS\xba\xbe` at 0                                            |
//! | iso9660        | `CD001` at 32769                                               |
//! | squashfs       | `hsqs` at 0                                                    |
//! | scratch label  | [`crate::formats::SCRATCH_MAGIC`] at 0 (written by this crate) |
//! | GPT            | `EFI PART` at logical block 1                                  |
//! | MBR            | 0x55AA at 510 without a FAT/NTFS boot sector                   |
//!
//! A hybrid ISO holds both iso9660 and an MBR: both are reported.

use serde::{Deserialize, Serialize};

use crate::formats::SCRATCH_MAGIC;

/// Bytes read from the start of a device to probe it (btrfs needs a little past 64 KiB).
pub const PROBE_LEN: usize = 68 * 1024;

/// A recognised filesystem or other content signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsType {
    Ext2,
    Ext3,
    Ext4,
    Xfs,
    Btrfs,
    Vfat,
    Ntfs,
    Swap,
    Lvm2Member,
    CryptoLuks,
    Iso9660,
    Squashfs,
    /// Difference storage prepared by this crate (see [`crate::formats`]).
    BlksnapScratch,
}

impl FsType {
    /// The name `blkid` would print (`ext4`, `LVM2_member`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FsType::Ext2 => "ext2",
            FsType::Ext3 => "ext3",
            FsType::Ext4 => "ext4",
            FsType::Xfs => "xfs",
            FsType::Btrfs => "btrfs",
            FsType::Vfat => "vfat",
            FsType::Ntfs => "ntfs",
            FsType::Swap => "swap",
            FsType::Lvm2Member => "LVM2_member",
            FsType::CryptoLuks => "crypto_LUKS",
            FsType::Iso9660 => "iso9660",
            FsType::Squashfs => "squashfs",
            FsType::BlksnapScratch => "blksnap_scratch",
        }
    }
}

impl std::fmt::Display for FsType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A recognised partition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartTable {
    Gpt,
    /// An MBR ("dos") partition table.
    Mbr,
}

/// What [`probe`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub fs_type: Option<FsType>,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub partition_table: Option<PartTable>,
}

impl Content {
    /// Whether anything was recognised.
    pub fn is_empty(&self) -> bool {
        self.fs_type.is_none() && self.partition_table.is_none()
    }

    /// A short description for messages: `ext4 "data"`, `GPT partition table`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(fs) = self.fs_type {
            match &self.label {
                Some(l) => parts.push(format!("{fs} filesystem labelled {l:?}")),
                None => parts.push(format!("{fs} signature")),
            }
        }
        match self.partition_table {
            Some(PartTable::Gpt) => parts.push("a GPT partition table".to_owned()),
            Some(PartTable::Mbr) => parts.push("an MBR partition table".to_owned()),
            None => {}
        }
        if parts.is_empty() {
            "no recognised content".to_owned()
        } else {
            parts.join(" and ")
        }
    }
}

fn at(buf: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    buf.get(off..off.checked_add(len)?)
}

fn has(buf: &[u8], off: usize, sig: &[u8]) -> bool {
    at(buf, off, sig.len()) == Some(sig)
}

fn le16(buf: &[u8], off: usize) -> Option<u16> {
    at(buf, off, 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
}

fn le32(buf: &[u8], off: usize) -> Option<u32> {
    at(buf, off, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// A NUL- or space-padded text field; `None` when empty.
fn text(buf: &[u8], off: usize, len: usize) -> Option<String> {
    let raw = at(buf, off, len)?;
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let s = String::from_utf8_lossy(&raw[..end]).trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// A 16-byte uuid in the usual 8-4-4-4-12 form; `None` when all zero.
fn uuid(buf: &[u8], off: usize) -> Option<String> {
    let b = at(buf, off, 16)?;
    if b.iter().all(|&x| x == 0) {
        return None;
    }
    let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        hex[0..4].concat(),
        hex[4..6].concat(),
        hex[6..8].concat(),
        hex[8..10].concat(),
        hex[10..16].concat()
    ))
}

const EXT_SB: usize = 1024;
const EXT_COMPAT_HAS_JOURNAL: u32 = 0x4;
const EXT_INCOMPAT_JOURNAL_DEV: u32 = 0x8;
/// Incompatible features ext2/ext3 do not have (extents, 64bit, flex_bg, mmp, ...).
const EXT4_ONLY_INCOMPAT: u32 = !(0x1 | 0x2 | 0x4 | 0x8);
/// Read-only compatible features ext2/ext3 do not have (huge_file, gdt_csum, ...).
const EXT4_ONLY_RO_COMPAT: u32 = !(0x1 | 0x2 | 0x4);

fn probe_ext(buf: &[u8]) -> Option<(FsType, Option<String>, Option<String>)> {
    if le16(buf, EXT_SB + 56)? != 0xEF53 {
        return None;
    }
    let compat = le32(buf, EXT_SB + 92)?;
    let incompat = le32(buf, EXT_SB + 96)?;
    let ro_compat = le32(buf, EXT_SB + 100)?;
    if incompat & EXT_INCOMPAT_JOURNAL_DEV != 0 {
        // An external journal, not a mountable filesystem; still "in use".
        return Some((FsType::Ext3, None, uuid(buf, EXT_SB + 104)));
    }
    let kind = if incompat & EXT4_ONLY_INCOMPAT != 0 || ro_compat & EXT4_ONLY_RO_COMPAT != 0 {
        FsType::Ext4
    } else if compat & EXT_COMPAT_HAS_JOURNAL != 0 {
        FsType::Ext3
    } else {
        FsType::Ext2
    };
    Some((kind, text(buf, EXT_SB + 120, 16), uuid(buf, EXT_SB + 104)))
}

fn fat_boot_sector(buf: &[u8]) -> Option<(Option<String>, Option<String>)> {
    if le16(buf, 510)? != 0xAA55 {
        return None;
    }
    let serial = |off: usize| le32(buf, off).map(|s| format!("{:04X}-{:04X}", s >> 16, s & 0xffff));
    if has(buf, 82, b"FAT32   ") {
        return Some((text(buf, 71, 11).filter(|l| l != "NO NAME"), serial(67)));
    }
    if has(buf, 54, b"FAT12   ") || has(buf, 54, b"FAT16   ") {
        return Some((text(buf, 43, 11).filter(|l| l != "NO NAME"), serial(39)));
    }
    None
}

fn probe_fs(buf: &[u8]) -> Option<(FsType, Option<String>, Option<String>)> {
    if has(buf, 0, SCRATCH_MAGIC) {
        return Some((FsType::BlksnapScratch, None, None));
    }
    if let Some(found) = probe_ext(buf) {
        return Some(found);
    }
    if has(buf, 0, b"XFSB") {
        return Some((FsType::Xfs, text(buf, 108, 12), uuid(buf, 32)));
    }
    if has(buf, 0x10040, b"_BHRfS_M") {
        return Some((FsType::Btrfs, text(buf, 0x1012b, 256), uuid(buf, 0x10020)));
    }
    if has(buf, 0, b"LUKS\xba\xbe") {
        return Some((FsType::CryptoLuks, None, text(buf, 168, 40)));
    }
    if has(buf, 0, b"hsqs") {
        return Some((FsType::Squashfs, None, None));
    }
    if has(buf, 3, b"NTFS    ") {
        return Some((FsType::Ntfs, None, None));
    }
    if let Some((label, id)) = fat_boot_sector(buf) {
        return Some((FsType::Vfat, label, id));
    }
    for s in 0..4 {
        let off = s * 512;
        if has(buf, off, b"LABELONE") && has(buf, off + 24, b"LVM2 001") {
            return Some((FsType::Lvm2Member, None, text(buf, off + 32, 32)));
        }
    }
    for page in [4096usize, 8192, 16384, 65536] {
        if has(buf, page - 10, b"SWAPSPACE2") || has(buf, page - 10, b"SWAP-SPACE") {
            return Some((FsType::Swap, text(buf, 1052, 16), uuid(buf, 1036)));
        }
    }
    if has(buf, 32769, b"CD001") {
        return Some((FsType::Iso9660, text(buf, 32808, 32), None));
    }
    None
}

fn probe_table(buf: &[u8], sector: usize) -> Option<PartTable> {
    if has(buf, sector, b"EFI PART") || has(buf, 512, b"EFI PART") {
        return Some(PartTable::Gpt);
    }
    if le16(buf, 510)? != 0xAA55 || fat_boot_sector(buf).is_some() || has(buf, 3, b"NTFS    ") {
        return None;
    }
    // Four 16-byte entries from 446: status 0x00 or 0x80, and at least one used type.
    let entries: Vec<&[u8]> = (0..4).filter_map(|i| at(buf, 446 + 16 * i, 16)).collect();
    let sane = entries.iter().all(|e| e[0] == 0 || e[0] == 0x80);
    let used = entries.iter().any(|e| e[4] != 0);
    (sane && used).then_some(PartTable::Mbr)
}

/// Recognises the content of a device from its first bytes (`buf`, up to [`PROBE_LEN`];
/// shorter buffers are probed as far as they go). `sector` is the logical sector size,
/// where a GPT header is looked for.
pub fn probe(buf: &[u8], sector: u32) -> Content {
    let sector = sector as usize;
    let (fs_type, label, uuid) = match probe_fs(buf) {
        Some((fs, label, uuid)) => (Some(fs), label, uuid),
        None => (None, None, None),
    };
    Content {
        fs_type,
        label,
        uuid,
        partition_table: probe_table(buf, sector),
    }
}

#[cfg(test)]
pub(crate) mod samples {
    //! Hand-made signatures of each kind, shared with the device scan tests.

    use super::*;

    pub fn blank() -> Vec<u8> {
        vec![0u8; PROBE_LEN]
    }

    pub fn ext(incompat: u32, ro_compat: u32, compat: u32, label: &str) -> Vec<u8> {
        let mut b = blank();
        b[EXT_SB + 56..EXT_SB + 58].copy_from_slice(&0xEF53u16.to_le_bytes());
        b[EXT_SB + 92..EXT_SB + 96].copy_from_slice(&compat.to_le_bytes());
        b[EXT_SB + 96..EXT_SB + 100].copy_from_slice(&incompat.to_le_bytes());
        b[EXT_SB + 100..EXT_SB + 104].copy_from_slice(&ro_compat.to_le_bytes());
        b[EXT_SB + 104..EXT_SB + 120].copy_from_slice(&[0x11; 16]);
        b[EXT_SB + 120..EXT_SB + 120 + label.len()].copy_from_slice(label.as_bytes());
        b
    }

    pub fn ext4(label: &str) -> Vec<u8> {
        // extents | 64bit | flex_bg, as mkfs.ext4 makes.
        ext(0x40 | 0x80 | 0x200 | 0x2, 0x1 | 0x2 | 0x8, 0x4, label)
    }

    pub fn put(b: &mut [u8], off: usize, bytes: &[u8]) {
        b[off..off + bytes.len()].copy_from_slice(bytes);
    }

    pub fn mbr() -> Vec<u8> {
        let mut b = blank();
        // One Linux partition from sector 2048.
        put(&mut b, 446, &[0x00, 0, 0, 0, 0x83, 0, 0, 0]);
        put(&mut b, 454, &2048u32.to_le_bytes());
        put(&mut b, 458, &4096u32.to_le_bytes());
        put(&mut b, 510, &[0x55, 0xAA]);
        b
    }

    pub fn gpt() -> Vec<u8> {
        let mut b = mbr();
        b[450] = 0xEE;
        put(&mut b, 512, b"EFI PART");
        b
    }
}

#[cfg(test)]
mod tests {
    use super::samples::*;
    use super::*;

    fn fs(buf: &[u8]) -> Option<FsType> {
        probe(buf, 512).fs_type
    }

    #[test]
    fn blank_and_short_buffers_hold_nothing() {
        assert!(probe(&blank(), 512).is_empty());
        assert!(probe(&[], 512).is_empty());
        assert!(probe(&[0xff; 100], 512).is_empty());
    }

    #[test]
    fn ext_generations() {
        let c = probe(&ext4("root"), 512);
        assert_eq!(c.fs_type, Some(FsType::Ext4));
        assert_eq!(c.label.as_deref(), Some("root"));
        assert_eq!(
            c.uuid.as_deref(),
            Some("11111111-1111-1111-1111-111111111111")
        );
        assert_eq!(fs(&ext(0x2, 0x1 | 0x2, 0x4, "")), Some(FsType::Ext3));
        assert_eq!(fs(&ext(0x2, 0x1 | 0x2, 0x0, "")), Some(FsType::Ext2));
        assert_eq!(probe(&ext(0x2, 0x1, 0, ""), 512).label, None);
    }

    #[test]
    fn other_filesystems() {
        let mut b = blank();
        put(&mut b, 0, b"XFSB");
        put(&mut b, 108, b"xfsdata\0");
        let c = probe(&b, 512);
        assert_eq!(
            (c.fs_type, c.label.as_deref()),
            (Some(FsType::Xfs), Some("xfsdata"))
        );

        let mut b = blank();
        put(&mut b, 0x10040, b"_BHRfS_M");
        assert_eq!(fs(&b), Some(FsType::Btrfs));

        let mut b = blank();
        put(&mut b, 0, &[0xEB, 0x58, 0x90]);
        put(&mut b, 71, b"BOOT       ");
        put(&mut b, 82, b"FAT32   ");
        put(&mut b, 510, &[0x55, 0xAA]);
        let c = probe(&b, 512);
        assert_eq!(
            (c.fs_type, c.label.as_deref()),
            (Some(FsType::Vfat), Some("BOOT"))
        );
        assert_eq!(c.partition_table, None, "a FAT boot sector is not an MBR");

        let mut b = blank();
        put(&mut b, 4086, b"SWAPSPACE2");
        put(&mut b, 1052, b"swap0");
        let c = probe(&b, 512);
        assert_eq!(
            (c.fs_type, c.label.as_deref()),
            (Some(FsType::Swap), Some("swap0"))
        );

        let mut b = blank();
        put(&mut b, 512, b"LABELONE");
        put(&mut b, 512 + 24, b"LVM2 001");
        assert_eq!(fs(&b), Some(FsType::Lvm2Member));

        let mut b = blank();
        put(&mut b, 32769, b"CD001");
        put(&mut b, 32808, b"APPLIANCE                       ");
        let c = probe(&b, 512);
        assert_eq!(
            (c.fs_type, c.label.as_deref()),
            (Some(FsType::Iso9660), Some("APPLIANCE"))
        );

        let mut b = blank();
        put(&mut b, 0, b"LUKS\xba\xbe");
        assert_eq!(fs(&b), Some(FsType::CryptoLuks));

        let mut b = blank();
        put(&mut b, 0, SCRATCH_MAGIC);
        assert_eq!(fs(&b), Some(FsType::BlksnapScratch));
    }

    #[test]
    fn partition_tables() {
        assert_eq!(probe(&mbr(), 512).partition_table, Some(PartTable::Mbr));
        assert_eq!(probe(&gpt(), 512).partition_table, Some(PartTable::Gpt));
        let mut g4k = mbr();
        put(&mut g4k, 4096, b"EFI PART");
        assert_eq!(probe(&g4k, 4096).partition_table, Some(PartTable::Gpt));
        // 0x55AA with garbage entries is not a table.
        let mut junk = blank();
        put(&mut junk, 446, &[0x42; 64]);
        put(&mut junk, 510, &[0x55, 0xAA]);
        assert_eq!(probe(&junk, 512).partition_table, None);
        // A hybrid ISO: iso9660 and an MBR.
        let mut iso = mbr();
        put(&mut iso, 32769, b"CD001");
        let c = probe(&iso, 512);
        assert_eq!(c.fs_type, Some(FsType::Iso9660));
        assert_eq!(c.partition_table, Some(PartTable::Mbr));
        assert_eq!(c.describe(), "iso9660 signature and an MBR partition table");
    }
}

//! Newtypes of the safe API: device ids, snapshot ids, sectors and ranges,
//! change tracking state, images and events.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use nix::errno::Errno;
use nix::sys::stat::{major, minor, SFlag};

use crate::error::Error;
use crate::uapi;

/// Size of the sectors the interface counts in.
pub const SECTOR_SIZE: u64 = 512;

/// A block device identity: major and minor number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DevId {
    pub major: u32,
    pub minor: u32,
}

impl DevId {
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// The device a block special file stands for (its `st_rdev`).
    ///
    /// Fails with ENOTBLK when the path is not a block device.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, Error> {
        let st = nix::sys::stat::stat(path.as_ref()).map_err(|errno| Error::new("stat", errno))?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind != SFlag::S_IFBLK {
            return Err(Error::new("stat", Errno::ENOTBLK));
        }
        Ok(Self::from_dev_t(st.st_rdev))
    }

    /// Splits a user-space `dev_t`.
    pub fn from_dev_t(dev: nix::libc::dev_t) -> Self {
        // Majors and minors of Linux fit 32 bits (12 and 20 in the kernel).
        Self {
            major: major(dev) as u32,
            minor: minor(dev) as u32,
        }
    }

    /// The user-space `dev_t` of this device.
    pub fn to_dev_t(self) -> nix::libc::dev_t {
        nix::sys::stat::makedev(u64::from(self.major), u64::from(self.minor))
    }

    pub(crate) fn to_raw(self) -> uapi::BlkSnapDev {
        uapi::BlkSnapDev {
            mj: self.major,
            mn: self.minor,
        }
    }

    pub(crate) fn from_raw(raw: uapi::BlkSnapDev) -> Self {
        Self {
            major: raw.mj,
            minor: raw.mn,
        }
    }
}

impl fmt::Display for DevId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// A `MAJ:MIN` string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected MAJOR:MINOR, got {0:?}")]
pub struct ParseDevIdError(pub String);

impl FromStr for DevId {
    type Err = ParseDevIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseDevIdError(s.to_owned());
        let (maj, min) = s.trim().split_once(':').ok_or_else(bad)?;
        Ok(Self {
            major: maj.parse().map_err(|_| bad())?,
            minor: min.parse().map_err(|_| bad())?,
        })
    }
}

/// A 16-byte identifier as the module hands it out (snapshot ids and change
/// map generation ids); shown as a uuid (`8-4-4-4-12` hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SnapshotId(pub [u8; 16]);

/// Generation id of a change map: a new one means the map restarted.
pub type GenerationId = SnapshotId;

impl SnapshotId {
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    pub(crate) fn to_raw(self) -> uapi::BlkSnapUuid {
        uapi::BlkSnapUuid { b: self.0 }
    }

    pub(crate) fn from_raw(raw: uapi::BlkSnapUuid) -> Self {
        Self(raw.b)
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A string is not a uuid of 32 hex digits (dashes allowed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a uuid of 32 hex digits, got {0:?}")]
pub struct ParseSnapshotIdError(pub String);

impl FromStr for SnapshotId {
    type Err = ParseSnapshotIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseSnapshotIdError(s.to_owned());
        let digits: Vec<u8> = s.trim().bytes().filter(|&c| c != b'-').collect();
        if digits.len() != 32 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

/// A position or length in 512-byte sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Sector(pub u64);

impl Sector {
    /// The sector holding byte `bytes`.
    pub const fn from_bytes_floor(bytes: u64) -> Self {
        Self(bytes / SECTOR_SIZE)
    }

    /// The byte position of this sector, if it fits.
    pub const fn to_bytes(self) -> Option<u64> {
        self.0.checked_mul(SECTOR_SIZE)
    }
}

impl fmt::Display for Sector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

/// A range of 512-byte sectors: `count` sectors from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SectorRange {
    pub start: Sector,
    pub count: u64,
}

impl SectorRange {
    pub const fn new(start: u64, count: u64) -> Self {
        Self {
            start: Sector(start),
            count,
        }
    }

    /// The sectors covering bytes `offset .. offset + len` (rounded outwards).
    pub fn from_bytes(offset: u64, len: u64) -> Self {
        let start = offset / SECTOR_SIZE;
        let end = offset.saturating_add(len).div_ceil(SECTOR_SIZE);
        Self::new(start, end - start)
    }

    /// One past the last sector.
    pub const fn end(&self) -> Sector {
        Sector(self.start.0.saturating_add(self.count))
    }

    pub(crate) fn to_raw(self) -> uapi::BlkSnapBlockRange {
        uapi::BlkSnapBlockRange {
            sector_offset: self.start.0,
            sector_count: self.count,
        }
    }
}

impl fmt::Display for SectorRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}+{}]", self.start.0, self.count)
    }
}

/// Change tracking state of one tracked device (TRACKER_COLLECT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CbtInfo {
    pub dev: DevId,
    /// Tracking block size in bytes.
    pub blk_size: u32,
    /// Device capacity in bytes.
    pub device_capacity: u64,
    /// Number of tracking blocks, i.e. bytes of the change map.
    pub blk_count: u32,
    pub generation_id: GenerationId,
    /// Number of the last snapshot taken.
    pub snap_number: u8,
}

impl CbtInfo {
    pub(crate) fn from_raw(raw: &uapi::BlkSnapCbtInfo) -> Self {
        Self {
            dev: DevId::from_raw(raw.dev_id),
            blk_size: raw.blk_size,
            device_capacity: raw.device_capacity,
            blk_count: raw.blk_count,
            generation_id: SnapshotId::from_raw(raw.generation_id),
            snap_number: raw.snap_number,
        }
    }
}

/// An original device of a taken snapshot and its image device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageInfo {
    pub orig: DevId,
    pub image: DevId,
}

impl ImageInfo {
    /// The image's device node under `/dev` (`/dev/blksnap-image<minor>`).
    pub fn image_path(&self) -> std::path::PathBuf {
        format!("/dev/{}{}", uapi::BLK_SNAP_IMAGE_NAME, self.image.minor).into()
    }
}

/// A snapshot event (WAIT_EVENT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The difference storage runs low: append at least `requested_sectors`.
    LowFreeSpace { requested_sectors: u64 },
    /// A chunk of `dev` could not be stored: the snapshot is corrupted.
    /// `errno` is the (positive) error number.
    Corrupted { dev: DevId, errno: i32 },
    /// A code this crate does not know.
    Unknown { code: u32 },
}

impl Event {
    pub(crate) fn from_raw(raw: &uapi::BlkSnapSnapshotEvent) -> Self {
        match raw.code {
            uapi::BLK_SNAP_EVENT_CODE_LOW_FREE_SPACE => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&raw.data[..8]);
                Event::LowFreeSpace {
                    requested_sectors: u64::from_ne_bytes(n),
                }
            }
            uapi::BLK_SNAP_EVENT_CODE_CORRUPTED => {
                let word = |at: usize| {
                    let mut w = [0u8; 4];
                    w.copy_from_slice(&raw.data[at..at + 4]);
                    w
                };
                let err = i32::from_ne_bytes(word(8));
                Event::Corrupted {
                    dev: DevId::new(u32::from_ne_bytes(word(0)), u32::from_ne_bytes(word(4))),
                    errno: err.saturating_abs(),
                }
            }
            code => Event::Unknown { code },
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::LowFreeSpace { requested_sectors } => {
                write!(f, "low free space (requested {requested_sectors} sectors)")
            }
            Event::Corrupted { dev, errno } => {
                write!(f, "corrupted on {dev}: {}", Errno::from_raw(*errno))
            }
            Event::Unknown { code } => write!(f, "unknown event code {code}"),
        }
    }
}

/// The module's version (informational).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
    pub revision: u16,
    pub build: u16,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.major, self.minor, self.revision, self.build
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_id_display_and_parse() {
        let d = DevId::new(259, 3);
        assert_eq!(d.to_string(), "259:3");
        assert_eq!("259:3".parse::<DevId>(), Ok(d));
        assert!("259".parse::<DevId>().is_err());
        assert!("a:b".parse::<DevId>().is_err());
        assert_eq!(DevId::from_dev_t(d.to_dev_t()), d);
    }

    #[test]
    fn dev_id_from_path() {
        assert_eq!(
            DevId::from_path("/dev/null").map_err(|e| e.errno),
            Err(Errno::ENOTBLK)
        );
        assert_eq!(
            DevId::from_path("/nonexistent/x").map_err(|e| e.errno),
            Err(Errno::ENOENT)
        );
    }

    #[test]
    fn snapshot_id_display_and_parse() {
        let id = SnapshotId([
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ]);
        let text = id.to_string();
        assert_eq!(text, "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(text.parse::<SnapshotId>(), Ok(id));
        assert_eq!(
            "00112233445566778899AABBCCDDEEFF".parse::<SnapshotId>(),
            Ok(id)
        );
        assert!("0011".parse::<SnapshotId>().is_err());
        assert!("zz112233445566778899aabbccddeeff"
            .parse::<SnapshotId>()
            .is_err());
    }

    #[test]
    fn sector_range_from_bytes_rounds_outwards() {
        assert_eq!(SectorRange::from_bytes(0, 4096), SectorRange::new(0, 8));
        assert_eq!(SectorRange::from_bytes(100, 1), SectorRange::new(0, 1));
        assert_eq!(SectorRange::from_bytes(511, 2), SectorRange::new(0, 2));
        assert_eq!(SectorRange::from_bytes(1024, 0), SectorRange::new(2, 0));
        assert_eq!(SectorRange::new(5, 3).end(), Sector(8));
    }

    #[test]
    fn events_decode() {
        let mut raw = uapi::BlkSnapSnapshotEvent {
            code: uapi::BLK_SNAP_EVENT_CODE_LOW_FREE_SPACE,
            ..Default::default()
        };
        raw.data[..8].copy_from_slice(&2_097_152u64.to_ne_bytes());
        assert_eq!(
            Event::from_raw(&raw),
            Event::LowFreeSpace {
                requested_sectors: 2_097_152
            }
        );

        raw.code = uapi::BLK_SNAP_EVENT_CODE_CORRUPTED;
        raw.data[..4].copy_from_slice(&254u32.to_ne_bytes());
        raw.data[4..8].copy_from_slice(&16u32.to_ne_bytes());
        raw.data[8..12].copy_from_slice(&(-28i32).to_ne_bytes());
        assert_eq!(
            Event::from_raw(&raw),
            Event::Corrupted {
                dev: DevId::new(254, 16),
                errno: 28
            }
        );

        raw.code = 7;
        assert_eq!(Event::from_raw(&raw), Event::Unknown { code: 7 });
    }

    #[test]
    fn image_path() {
        let info = ImageInfo {
            orig: DevId::new(254, 0),
            image: DevId::new(251, 2),
        };
        assert_eq!(
            info.image_path(),
            std::path::PathBuf::from("/dev/blksnap-image2")
        );
    }
}

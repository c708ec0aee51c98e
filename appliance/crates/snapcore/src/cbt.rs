//! Change block tracking: from the module's change map to the byte ranges an incremental
//! backup reads, and the choice between an incremental and a full backup.
//!
//! The map has one byte per tracking block: the snap number that was current when the
//! block was last written (blksnap-uapi.md). A backup records the generation id and snap
//! number of the snapshot it read ([`repo::CbtPosition`]). A later snapshot of the same
//! tracker (same generation) changed exactly the blocks whose byte is greater than that
//! snap number. A new generation (module reloaded, machine rebooted, or the number passed
//! 255) means the map restarted: only a full backup is safe then.

use repo::{ByteRange, CbtPosition, Manifest};
use serde::{Deserialize, Serialize};

use blksnap::CbtInfo;

/// Byte ranges of the tracking blocks whose map byte is greater than `since`, merged where
/// adjacent, the last one clipped to `capacity`.
pub fn changed_ranges(map: &[u8], since: u8, block_size: u32, capacity: u64) -> Vec<ByteRange> {
    let bs = u64::from(block_size);
    let mut out: Vec<ByteRange> = Vec::new();
    for (i, &snap) in map.iter().enumerate() {
        if snap <= since {
            continue;
        }
        let start = i as u64 * bs;
        if start >= capacity {
            break;
        }
        let len = bs.min(capacity - start);
        match out.last_mut() {
            Some(last) if last.offset + last.len == start => last.len += len,
            _ => out.push(ByteRange::new(start, len)),
        }
    }
    out
}

/// Total bytes of `ranges`.
pub fn total_bytes(ranges: &[ByteRange]) -> u64 {
    ranges.iter().map(|r| r.len).sum()
}

/// The position of a snapshot in its tracker's history, as recorded in a manifest.
pub fn position(info: &CbtInfo) -> CbtPosition {
    CbtPosition {
        generation_id: info.generation_id.to_string(),
        snap_number: u32::from(info.snap_number),
    }
}

/// Full or incremental, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Read every byte.
    Full { reason: String },
    /// Read only `ranges` on top of `parent`.
    Incremental {
        parent: Box<Manifest>,
        ranges: Vec<ByteRange>,
    },
}

/// Whether a backup job may make an incremental backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupMode {
    /// Incremental when a usable parent exists, else full.
    #[default]
    Auto,
    /// Always full.
    Full,
}

/// Chooses the parent for a backup of the snapshot described by `info` (with its frozen
/// `map`) among `backups`: the one with the same generation, the highest snap number below
/// the current one, and the same image size.
pub fn plan(backups: &[Manifest], info: &CbtInfo, map: &[u8], mode: BackupMode) -> Plan {
    if mode == BackupMode::Full {
        return Plan::Full {
            reason: "a full backup was asked for".to_owned(),
        };
    }
    if map.len() != info.blk_count as usize {
        return Plan::Full {
            reason: format!(
                "the change map could not be read completely ({} of {} bytes)",
                map.len(),
                info.blk_count
            ),
        };
    }
    let generation = info.generation_id.to_string();
    let now = u32::from(info.snap_number);
    let same_gen: Vec<&Manifest> = backups
        .iter()
        .filter(|m| m.cbt.as_ref().map(|c| c.generation_id.as_str()) == Some(&generation))
        .collect();
    if same_gen.is_empty() {
        return Plan::Full {
            reason: "no earlier backup of this change-tracking generation (first backup since the tracker was attached)".to_owned(),
        };
    }
    let best = same_gen
        .iter()
        .filter(|m| {
            m.cbt.as_ref().map(|c| c.snap_number < now).unwrap_or(false)
                && m.image_size == info.device_capacity
        })
        .max_by_key(|m| {
            (
                m.cbt.as_ref().map(|c| c.snap_number).unwrap_or(0),
                m.created_unix,
            )
        });
    match best {
        None => Plan::Full {
            reason: "the earlier backups of this generation do not fit (different size or snapshot number)".to_owned(),
        },
        Some(parent) => {
            let since = parent
                .cbt
                .as_ref()
                .and_then(|c| u8::try_from(c.snap_number).ok())
                .unwrap_or(0);
            Plan::Incremental {
                parent: Box::new((*parent).clone()),
                ranges: changed_ranges(map, since, info.blk_size, info.device_capacity),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use blksnap::{DevId, SnapshotId};
    use repo::{BackupId, BackupKind, BackupStats, ChunkSize, Compression, Digest, DiskIdentity};

    use super::*;

    const BS: u32 = 65536;

    #[test]
    fn exact_ranges_for_a_known_map() {
        // Blocks: 0 1 2 3 4 5 6 7 8 9 (the last one partial).
        let map = [3, 0, 2, 2, 1, 4, 5, 0, 0, 7];
        let cap = 9 * 65536 + 1000;
        assert_eq!(
            changed_ranges(&map, 1, BS, cap),
            [
                ByteRange::new(0, 65536),
                ByteRange::new(2 * 65536, 2 * 65536),
                ByteRange::new(5 * 65536, 2 * 65536),
                ByteRange::new(9 * 65536, 1000),
            ]
        );
        assert_eq!(
            changed_ranges(&map, 4, BS, cap),
            [
                ByteRange::new(6 * 65536, 65536),
                ByteRange::new(9 * 65536, 1000)
            ]
        );
        assert_eq!(changed_ranges(&map, 0, BS, cap).len(), 3);
        assert!(changed_ranges(&map, 7, BS, cap).is_empty());
        assert_eq!(
            total_bytes(&changed_ranges(&map, 0, BS, cap)),
            6 * 65536 + 1000
        );
        // Every block changed: one range of the whole device.
        assert_eq!(
            changed_ranges(&[1; 4], 0, BS, 4 * 65536),
            [ByteRange::new(0, 4 * 65536)]
        );
    }

    fn gen(n: u8) -> SnapshotId {
        SnapshotId([n; 16])
    }

    fn info(generation: u8, snap: u8, cap: u64) -> CbtInfo {
        CbtInfo {
            dev: DevId::new(254, 0),
            blk_size: BS,
            device_capacity: cap,
            blk_count: cap.div_ceil(u64::from(BS)) as u32,
            generation_id: gen(generation),
            snap_number: snap,
        }
    }

    fn manifest(id: &str, generation: u8, snap: u32, size: u64, created: u64) -> Manifest {
        Manifest {
            manifest_version: 1,
            backup_id: BackupId::new(id).unwrap(),
            kind: BackupKind::Full,
            parent: None,
            disk: DiskIdentity::default(),
            image_size: size,
            chunk_size: ChunkSize::default(),
            chunk_count: ChunkSize::default().chunk_count(size),
            created: String::new(),
            created_unix: created,
            cbt: Some(CbtPosition {
                generation_id: gen(generation).to_string(),
                snap_number: snap,
            }),
            image_sha256: None,
            content_digest: Digest::of(b""),
            index_sha256: Digest::of(b""),
            stats: BackupStats::default(),
            compression: Compression {
                algorithm: "zstd".into(),
                level: 3,
            },
            tool_version: String::new(),
        }
    }

    #[test]
    fn parent_choice() {
        let cap = 4 * 65536;
        let map = [1, 2, 3, 4];
        let backups = [
            manifest("a", 9, 1, cap, 10),
            manifest("b", 9, 2, cap, 20),
            manifest("c", 8, 3, cap, 30),
            manifest("d", 9, 3, cap * 2, 40),
        ];
        // Snapshot 4 of generation 9: parent b (snap 2), blocks with bytes 3 and 4.
        match plan(&backups, &info(9, 4, cap), &map, BackupMode::Auto) {
            Plan::Incremental { parent, ranges } => {
                assert_eq!(parent.backup_id.as_str(), "b");
                assert_eq!(ranges, [ByteRange::new(2 * 65536, 2 * 65536)]);
            }
            other => panic!("{other:?}"),
        }
        // A new generation: full.
        assert!(matches!(
            plan(&backups, &info(7, 1, cap), &map, BackupMode::Auto),
            Plan::Full { reason } if reason.starts_with("no earlier backup of this change-tracking generation")
        ));
        // Same generation, but only later or differently sized backups: full.
        assert!(matches!(
            plan(&backups[3..], &info(9, 4, cap), &map, BackupMode::Auto),
            Plan::Full { .. }
        ));
        assert!(matches!(
            plan(&backups, &info(9, 1, cap), &map, BackupMode::Auto),
            Plan::Full { .. }
        ));
        // Asked for, or a short map: full.
        assert!(matches!(
            plan(&backups, &info(9, 4, cap), &map, BackupMode::Full),
            Plan::Full { reason } if reason == "a full backup was asked for"
        ));
        assert!(matches!(
            plan(&backups, &info(9, 4, cap), &map[..3], BackupMode::Auto),
            Plan::Full { reason } if reason.contains("3 of 4 bytes")
        ));
    }
}

//! The per-backup manifest (`backups/<id>/manifest.json`): what was backed up, from where,
//! how, and the checksums that tie it to its index. Writing it publishes the backup.

use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};
use crate::formats::MANIFEST_VERSION;
use crate::types::{BackupId, ChunkSize, Digest};

/// Identity of the backed-up disk, as the appliance saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DiskIdentity {
    /// Kernel name at backup time (e.g. `vda`); informational, names change across boots.
    #[serde(default)]
    pub name: Option<String>,
    /// Serial number (QEMU `serial=`), the stable way to find the disk again.
    #[serde(default)]
    pub serial: Option<String>,
    /// Model string.
    #[serde(default)]
    pub model: Option<String>,
    /// Disk size in bytes.
    pub size_bytes: u64,
}

/// Full (every chunk read) or incremental (only changed chunks read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    /// Every chunk was read from the source.
    Full,
    /// Only the chunks covering the changed ranges were read; the rest come from the parent.
    Incremental,
}

/// The change-block-tracking position a backup corresponds to: an incremental backup on
/// top of this one is valid only while the tracker's generation is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CbtPosition {
    /// The CBT map's generation id (a UUID, as text).
    pub generation_id: String,
    /// The snapshot number within that generation.
    pub snap_number: u32,
}

/// Counters of one backup job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BackupStats {
    /// Bytes read from the source.
    pub read_bytes: u64,
    /// Chunks read from the source.
    pub read_chunks: u64,
    /// Chunks taken from the parent's index without reading (incremental only).
    pub unchanged_chunks: u64,
    /// Chunks that were all zero (nothing stored).
    pub zero_chunks: u64,
    /// Chunks read whose content was already in the repository.
    pub reused_chunks: u64,
    /// Chunk objects written by this backup.
    pub new_chunks: u64,
    /// Uncompressed bytes of the chunk objects written.
    pub new_bytes: u64,
    /// Bytes the written chunk objects take on the target (compressed, with headers).
    pub stored_bytes: u64,
}

/// Compression settings used for the chunks this backup wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    /// Always `zstd` in this version.
    pub algorithm: String,
    /// zstd level.
    pub level: i32,
}

/// The manifest of a published backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version ([`MANIFEST_VERSION`]).
    pub manifest_version: u32,
    /// The backup's id (also its directory name).
    pub backup_id: BackupId,
    /// Full or incremental.
    pub kind: BackupKind,
    /// Parent backup of an incremental.
    pub parent: Option<BackupId>,
    /// The disk backed up.
    pub disk: DiskIdentity,
    /// Image size in bytes.
    pub image_size: u64,
    /// Chunk size in bytes.
    pub chunk_size: ChunkSize,
    /// Number of chunks (= index entries).
    pub chunk_count: u64,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// CBT position of the snapshot this backup was read from, if tracked.
    pub cbt: Option<CbtPosition>,
    /// SHA-256 of the whole image, computed while reading it: present for full backups.
    pub image_sha256: Option<Digest>,
    /// Content digest of the index (see [`crate::Index::content_digest`]).
    pub content_digest: Digest,
    /// SHA-256 of the index object, tying the manifest to exactly one index.
    pub index_sha256: Digest,
    /// Job counters.
    pub stats: BackupStats,
    /// Compression of the chunks written.
    pub compression: Compression,
    /// Program that wrote the backup, e.g. `appliance 0.1.0`.
    pub tool_version: String,
}

impl Manifest {
    /// Serialises to pretty JSON.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let mut v = serde_json::to_vec_pretty(self)
            .map_err(|e| RepoError::invalid("manifest", e.to_string()))?;
        v.push(b'\n');
        Ok(v)
    }

    /// Parses a manifest; `what` names it in errors.
    pub fn from_json(bytes: &[u8], what: &str) -> Result<Self> {
        // Look at the version first so that a newer manifest gives a version error rather
        // than a confusing missing-field error.
        #[derive(Deserialize)]
        struct Probe {
            manifest_version: Option<u32>,
        }
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|e| RepoError::corrupt(what, format!("not valid JSON: {e}")))?;
        match probe.manifest_version {
            Some(MANIFEST_VERSION) => {}
            Some(found) => {
                return Err(RepoError::FormatVersion {
                    what: what.to_owned(),
                    found,
                    supported: MANIFEST_VERSION,
                })
            }
            None => return Err(RepoError::corrupt(what, "manifest_version is missing")),
        }
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| RepoError::corrupt(what, format!("unexpected content: {e}")))?;
        if m.chunk_count != m.chunk_size.chunk_count(m.image_size) {
            return Err(RepoError::corrupt(
                what,
                format!(
                    "chunk_count {} does not fit image_size {} and chunk_size {}",
                    m.chunk_count,
                    m.image_size,
                    m.chunk_size.bytes()
                ),
            ));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            manifest_version: MANIFEST_VERSION,
            backup_id: BackupId::new("b1").unwrap(),
            kind: BackupKind::Incremental,
            parent: Some(BackupId::new("b0").unwrap()),
            disk: DiskIdentity {
                name: Some("vda".into()),
                serial: Some("prod0".into()),
                model: None,
                size_bytes: 8192,
            },
            image_size: 8192,
            chunk_size: ChunkSize::new(4096).unwrap(),
            chunk_count: 2,
            created: "2025-01-02T03:04:05Z".into(),
            created_unix: 1_735_787_045,
            cbt: Some(CbtPosition {
                generation_id: "00112233-4455-6677-8899-aabbccddeeff".into(),
                snap_number: 3,
            }),
            image_sha256: None,
            content_digest: Digest::of(b"c"),
            index_sha256: Digest::of(b"i"),
            stats: BackupStats::default(),
            compression: Compression {
                algorithm: "zstd".into(),
                level: 3,
            },
            tool_version: "test".into(),
        }
    }

    #[test]
    fn json_round_trip() {
        let m = sample();
        let json = m.to_json().unwrap();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains("\"kind\": \"incremental\""));
        assert!(text.contains("\"serial\": \"prod0\""));
        assert_eq!(Manifest::from_json(&json, "m").unwrap(), m);
    }

    #[test]
    fn bad_manifests_give_clear_errors() {
        let e = Manifest::from_json(
            b"{\"manifest_version\": 1, \"backup",
            "manifest of backup b1",
        )
        .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("manifest of backup b1 is corrupt: not valid JSON"));
        let e = Manifest::from_json(b"{\"manifest_version\": 7}", "m").unwrap_err();
        assert!(matches!(e, RepoError::FormatVersion { found: 7, .. }));
        let mut m = sample();
        m.chunk_count = 5;
        let json = serde_json::to_vec(&m).unwrap();
        assert!(matches!(
            Manifest::from_json(&json, "m"),
            Err(RepoError::Corrupt { .. })
        ));
    }
}

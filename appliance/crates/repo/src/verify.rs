//! Verifying a backup: the manifest and index are checked against each other, every
//! referenced chunk object is read, decoded and re-hashed, and (for full backups) the whole
//! image's SHA-256 is recomputed. Problems are reported per chunk index instead of stopping
//! at the first one.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use crate::chunk::{ChunkRead, ChunkStore};
use crate::error::Result;
use crate::index::ChunkRef;
use crate::job::{JobCtl, Phase};
use crate::pipeline::{default_workers, run_ordered};
use crate::repo::Repository;
use crate::types::{BackupId, ChunkIdx, Digest};

/// What is wrong with a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// No chunk object with the digest the index names.
    Missing,
    /// The chunk object does not decode, or its content has another digest.
    Corrupt,
}

/// One damaged chunk of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkProblem {
    /// Position of the chunk in the image.
    pub index: ChunkIdx,
    /// The digest the index names.
    pub digest: Digest,
    /// Missing or corrupt.
    pub kind: ProblemKind,
    /// Details.
    pub detail: String,
}

impl fmt::Display for ChunkProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ProblemKind::Missing => "missing",
            ProblemKind::Corrupt => "corrupt",
        };
        write!(
            f,
            "chunk {} ({}) is {kind}: {}",
            self.index,
            self.digest.short(),
            self.detail
        )
    }
}

/// Outcome of [`Repository::verify`].
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The backup verified.
    pub backup_id: BackupId,
    /// Chunks in the image.
    pub chunk_count: u64,
    /// Chunk objects read and re-hashed.
    pub checked_chunks: u64,
    /// Zero chunks (nothing stored to check).
    pub zero_chunks: u64,
    /// Every damaged chunk, by index.
    pub problems: Vec<ChunkProblem>,
    /// For a full backup whose chunks are all good: whether the recomputed image SHA-256
    /// equals the manifest's. `None` when not computed.
    pub image_sha256_ok: Option<bool>,
}

impl VerifyReport {
    /// No damaged chunk and no image checksum mismatch.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.image_sha256_ok != Some(false)
    }
}

type Status = std::result::Result<(), (ProblemKind, String)>;

impl Repository {
    /// Verifies backup `id`. A damaged manifest or index is an error; damaged chunks are
    /// listed in the report.
    pub fn verify(&self, id: &BackupId, ctl: &JobCtl) -> Result<VerifyReport> {
        let m = self.manifest(id)?;
        let index = self.index(&m)?;
        if index.content_digest() != m.content_digest {
            return Err(crate::error::RepoError::corrupt(
                format!("backup {id}"),
                "the index does not match the manifest's content digest",
            ));
        }
        let store = ChunkStore::new(self.target());
        let cs = index.chunk_size();
        let size = index.image_size();
        let hash_image = m.image_sha256.is_some();
        let cache: Mutex<HashMap<Digest, Status>> = Mutex::new(HashMap::new());

        let inputs = index.iter().map(|(idx, r)| {
            ctl.check()?;
            Ok((idx, r))
        });
        // Result per chunk: its status and, when the image is hashed, its content.
        let work = |(idx, r): (ChunkIdx, ChunkRef)| -> Result<(ChunkIdx, ChunkRef, Status, Option<Vec<u8>>)> {
            let len = cs.len_of(idx, size);
            let ChunkRef::Data(d) = r else {
                return Ok((idx, r, Ok(()), None));
            };
            if !hash_image {
                if let Some(st) = cache.lock().ok().and_then(|c| c.get(&d).cloned()) {
                    return Ok((idx, r, st, None));
                }
            }
            let (status, data) = match store.read_checked(&d)? {
                ChunkRead::Good(data) if data.len() == len => (Ok(()), Some(data)),
                ChunkRead::Good(data) => (
                    Err((
                        ProblemKind::Corrupt,
                        format!("{} bytes where the image needs {len}", data.len()),
                    )),
                    None,
                ),
                ChunkRead::Missing => (
                    Err((ProblemKind::Missing, "no chunk object with this digest".into())),
                    None,
                ),
                ChunkRead::Corrupt(why) => (Err((ProblemKind::Corrupt, why)), None),
            };
            if let Ok(mut c) = cache.lock() {
                c.insert(d, status.clone());
            }
            Ok((idx, r, status, if hash_image { data } else { None }))
        };

        let zeros = vec![0u8; cs.bytes() as usize];
        let mut hash = Sha256::new();
        let mut report = VerifyReport {
            backup_id: id.clone(),
            chunk_count: index.entries().len() as u64,
            checked_chunks: 0,
            zero_chunks: 0,
            problems: Vec::new(),
            image_sha256_ok: None,
        };
        let mut done = 0u64;
        let consume = |(idx, r, status, data): (ChunkIdx, ChunkRef, Status, Option<Vec<u8>>)| {
            ctl.check()?;
            let len = cs.len_of(idx, size);
            match (r, status) {
                (ChunkRef::Zero, _) => {
                    report.zero_chunks += 1;
                    hash.update(&zeros[..len]);
                }
                (ChunkRef::Data(_), Ok(())) => {
                    report.checked_chunks += 1;
                    if let Some(d) = &data {
                        hash.update(d);
                    }
                }
                (ChunkRef::Data(digest), Err((kind, detail))) => {
                    report.checked_chunks += 1;
                    report.problems.push(ChunkProblem {
                        index: idx,
                        digest,
                        kind,
                        detail,
                    });
                }
            }
            done += len as u64;
            ctl.report(Phase::Verify, done, size);
            Ok(())
        };
        ctl.report(Phase::Verify, 0, size);
        run_ordered(default_workers(), inputs, work, consume)?;
        if let Some(expected) = m.image_sha256 {
            if report.problems.is_empty() {
                report.image_sha256_ok = Some(Digest(hash.finalize().into()) == expected);
            }
        }
        Ok(report)
    }
}

//! The crate's one error type, [`RepoError`], and its coarse [`ErrorKind`].
//!
//! Callers that map errors to a protocol (HTTP status, CLI exit code) match on
//! [`RepoError::kind`]; the message is written for the person reading a job log.

use std::io;

/// Coarse classification of a [`RepoError`], stable for protocol mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A backup, object or repository does not exist.
    NotFound,
    /// Something that must be new already exists.
    AlreadyExists,
    /// Stored data failed a check (magic, checksum, digest, JSON).
    Corrupt,
    /// The target ran out of space (ENOSPC / EDQUOT).
    TargetFull,
    /// Any other I/O failure on the target.
    Io,
    /// The job was cancelled.
    Cancelled,
    /// Another writer holds the repository lock.
    Locked,
    /// Stored data has a format version this build does not read.
    FormatVersion,
    /// The caller passed something unusable.
    InvalidArgument,
    /// Reading the image source failed.
    Source,
    /// Writing the restore or export destination failed.
    Destination,
}

/// Errors of every repository operation.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A backup, object or repository does not exist.
    #[error("{what} does not exist")]
    NotFound {
        /// What was looked for, e.g. "backup 20250101T000000Z-1a2b3c4d".
        what: String,
    },
    /// Something that must be new already exists.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What exists already.
        what: String,
    },
    /// Stored data failed a check.
    #[error("{what} is corrupt: {detail}")]
    Corrupt {
        /// Which object, e.g. "manifest of backup X" or "chunk 17 of backup X".
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The target ran out of space; partial temporary objects were removed.
    #[error("backup target is full: {target}: {context}")]
    TargetFull {
        /// Description of the target (e.g. its path).
        target: String,
        /// What was being written.
        context: String,
        /// The ENOSPC / EDQUOT error.
        #[source]
        source: io::Error,
    },
    /// Any other I/O failure on the target.
    #[error("{context}")]
    Io {
        /// What was being done, e.g. "writing chunks/ab/ab12...".
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The job was cancelled; a cancelled backup publishes nothing.
    #[error("the job was cancelled; nothing was published")]
    Cancelled,
    /// Another writer holds the repository lock.
    #[error("the repository is locked by another writer ({holder})")]
    Locked {
        /// What is known about the holder (the lock file's contents).
        holder: String,
    },
    /// Stored data has a version this build does not read.
    #[error("{what} has format version {found}; this build reads up to version {supported}")]
    FormatVersion {
        /// Which object.
        what: String,
        /// The version found.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The caller passed something unusable.
    #[error("invalid {what}: {detail}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// Why it is unusable.
        detail: String,
    },
    /// Reading the image source failed.
    #[error("reading the source image at byte {offset} failed")]
    Source {
        /// Byte offset of the failed read.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing the restore or export destination failed.
    #[error("{context}")]
    Destination {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl RepoError {
    /// The coarse kind, for protocol mappings.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RepoError::NotFound { .. } => ErrorKind::NotFound,
            RepoError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            RepoError::Corrupt { .. } => ErrorKind::Corrupt,
            RepoError::TargetFull { .. } => ErrorKind::TargetFull,
            RepoError::Io { .. } => ErrorKind::Io,
            RepoError::Cancelled => ErrorKind::Cancelled,
            RepoError::Locked { .. } => ErrorKind::Locked,
            RepoError::FormatVersion { .. } => ErrorKind::FormatVersion,
            RepoError::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            RepoError::Source { .. } => ErrorKind::Source,
            RepoError::Destination { .. } => ErrorKind::Destination,
        }
    }

    /// A [`RepoError::Corrupt`].
    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Self {
        RepoError::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// A [`RepoError::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        RepoError::NotFound { what: what.into() }
    }

    /// A [`RepoError::InvalidArgument`].
    pub fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        RepoError::InvalidArgument {
            what,
            detail: detail.into(),
        }
    }

    /// Classifies a target I/O error: ENOSPC and EDQUOT become [`RepoError::TargetFull`],
    /// everything else [`RepoError::Io`].
    pub fn target_io(target: &str, context: impl Into<String>, source: io::Error) -> Self {
        let full = matches!(
            source.raw_os_error(),
            Some(code) if code == nix::libc::ENOSPC || code == nix::libc::EDQUOT
        );
        if full {
            RepoError::TargetFull {
                target: target.to_owned(),
                context: context.into(),
                source,
            }
        } else {
            RepoError::Io {
                context: format!("{}: {}", target, context.into()),
                source,
            }
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = RepoError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_target_full_with_a_clear_message() {
        let e = RepoError::target_io(
            "/mnt/backup",
            "writing chunks/ab/ab",
            io::Error::from_raw_os_error(nix::libc::ENOSPC),
        );
        assert_eq!(e.kind(), ErrorKind::TargetFull);
        assert!(e
            .to_string()
            .starts_with("backup target is full: /mnt/backup"));
        let e = RepoError::target_io("t", "x", io::Error::from_raw_os_error(nix::libc::EIO));
        assert_eq!(e.kind(), ErrorKind::Io);
    }
}

//! Progress reporting and cancellation shared by every long operation.
//!
//! Operations report [`Progress`] (bytes done of bytes total, so the caller computes rate
//! and ETA) from the calling thread, and check the [`CancelToken`] between chunks. A
//! cancelled operation returns [`RepoError::Cancelled`]; a cancelled backup publishes
//! nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{RepoError, Result};

/// Which operation a [`Progress`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading the source and storing chunks.
    Backup,
    /// Writing an image to a device or file.
    Restore,
    /// Re-reading and re-hashing chunks.
    Verify,
    /// Writing a raw or qcow2 file.
    Export,
}

/// A progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The operation.
    pub phase: Phase,
    /// Bytes processed so far.
    pub done_bytes: u64,
    /// Bytes the operation will process in total (for an incremental backup: the bytes
    /// of the chunks it reads, not the image size).
    pub total_bytes: u64,
}

/// A shared cancellation flag; clones refer to the same flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every operation using this token to stop at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Callback receiving progress reports.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How a caller controls a long operation: cancellation and progress.
#[derive(Clone, Default)]
pub struct JobCtl {
    cancel: CancelToken,
    progress: Option<ProgressFn>,
}

impl std::fmt::Debug for JobCtl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCtl")
            .field("cancel", &self.cancel)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl JobCtl {
    /// No progress reports, never cancelled (unless through [`JobCtl::cancel_token`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `token` for cancellation.
    pub fn with_cancel(mut self, token: CancelToken) -> Self {
        self.cancel = token;
        self
    }

    /// Sends progress reports to `f`.
    pub fn with_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// The cancellation token.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// `Err(Cancelled)` once cancelled.
    pub fn check(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(RepoError::Cancelled)
        } else {
            Ok(())
        }
    }

    pub(crate) fn report(&self, phase: Phase, done_bytes: u64, total_bytes: u64) {
        if let Some(f) = &self.progress {
            f(&Progress {
                phase,
                done_bytes,
                total_bytes,
            });
        }
    }
}

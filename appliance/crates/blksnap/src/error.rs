//! The crate's error: which call failed and the errno it gave.

use std::fmt;

use nix::errno::Errno;

/// A request to the module (or a system call the crate makes for one) failed.
///
/// Displays as `SNAPSHOT_TAKE failed: No space left on device (ENOSPC)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    /// The request (`SNAPSHOT_TAKE`, ...) or system call (`open`, `stat`).
    pub call: &'static str,
    pub errno: Errno,
}

impl Error {
    pub const fn new(call: &'static str, errno: Errno) -> Self {
        Self { call, errno }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {} ({:?})",
            self.call,
            self.errno.desc(),
            self.errno
        )
    }
}

/// Result of this crate's calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_call_and_errno() {
        let e = Error::new("SNAPSHOT_TAKE", Errno::ENOSPC);
        assert_eq!(
            e.to_string(),
            "SNAPSHOT_TAKE failed: No space left on device (ENOSPC)"
        );
    }
}

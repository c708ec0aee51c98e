//! The harness's error type.

use std::io;
use std::path::PathBuf;

/// Result with the harness's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while building or running test VMs.
///
/// `Debug` prints the message and its causes (not the fields), so `expect()` in a test and
/// a test returning `Result` show a readable failure with the serial log's tail.
#[derive(thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done, e.g. "cannot create".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A program could not be started.
    #[error("cannot run `{program}`")]
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A program exited unsuccessfully.
    #[error("`{command}` failed ({status}):\n{output}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The tail of its output.
        output: String,
    },
    /// An expected output file is missing after a successful build step.
    #[error("{} missing after `{step}`", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// The step that should have made it.
        step: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {seconds:.0} s waiting for {what}; log {} ends with:\n{tail}", log.display())]
    Timeout {
        /// What was awaited.
        what: String,
        /// The time waited.
        seconds: f64,
        /// The serial log.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },
    /// The VM exited while something was awaited.
    #[error("VM exited ({status}) while waiting for {what}; log {} ends with:\n{tail}", log.display())]
    VmExited {
        /// What was awaited.
        what: String,
        /// QEMU's exit status.
        status: std::process::ExitStatus,
        /// The serial log.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },
    /// A lock could not be taken.
    #[error("cannot lock {}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// Output of a tool could not be understood.
    #[error("unexpected output from `{command}`: {detail}")]
    Parse {
        /// The command.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// Nothing to boot: no kernel found.
    #[error("no kernel found: {0}")]
    NoKernel(String),
}

impl Error {
    /// Wraps an I/O error with what was being done to which file.
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong during early boot, each variant naming the step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating a mount point failed.
    #[error("early mount `{step}`: cannot create mount point")]
    MountPoint {
        /// The step's name, e.g. `proc` or `dev/pts`.
        step: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The mount system call failed.
    #[error("early mount `{step}` failed")]
    Mount {
        /// The step's name, e.g. `proc` or `dev/pts`.
        step: &'static str,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A line of `modules.dep` is not `path: dep dep ...`.
    #[error("{}:{line}: malformed modules.dep line", path.display())]
    DepSyntax {
        /// The `modules.dep` file.
        path: PathBuf,
        /// One-based line number.
        line: usize,
    },
    /// The module is neither in `modules.dep` nor built in.
    #[error("module `{0}` is not in modules.dep")]
    UnknownModule(String),
    /// Module parameters contain a NUL byte.
    #[error("parameters for module {} contain a NUL byte", path.display())]
    Params {
        /// The module file.
        path: PathBuf,
    },
    /// `finit_module` failed.
    #[error("loading module {} failed", path.display())]
    Load {
        /// The module file.
        path: PathBuf,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// `delete_module` failed.
    #[error("unloading module `{name}` failed")]
    Unload {
        /// The module name.
        name: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// `uname` failed.
    #[error("uname failed")]
    Uname(#[source] nix::Error),
}

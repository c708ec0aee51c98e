//! Advisory file locks (flock) that serialise work across test processes.

use std::fs::{File, OpenOptions};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::{Error, Result};

/// An exclusive lock, released on drop.
pub(crate) type Held = Flock<File>;

fn open(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("cannot create", parent))?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(Error::io("cannot open", path))
}

/// Takes the lock, waiting for other holders.
pub(crate) fn exclusive(path: &Path) -> Result<Held> {
    let file = open(path)?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, source)| Error::Lock {
        path: path.to_path_buf(),
        source,
    })
}

/// Takes the lock if nobody holds it; `None` when someone does.
pub(crate) fn try_exclusive(path: &Path) -> Result<Option<Held>> {
    let file = open(path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(held) => Ok(Some(held)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, source)) => Err(Error::Lock {
            path: path.to_path_buf(),
            source,
        }),
    }
}

//! [`LocalDir`]: a repository in a directory of a mounted filesystem (local disk, NFS, ...).
//!
//! | operation | how                                                                          |
//! |-----------|------------------------------------------------------------------------------|
//! | put       | write `.<name>.tmp-<nonce>` (O_EXCL), fsync it, rename over `<name>`; the     |
//! |           | directory is remembered as dirty                                             |
//! | flush     | fsync every dirty directory (and parents of directories created since)       |
//! | delete    | unlink, then remove the parent directory if it became empty (below depth 2)  |
//! | lock      | `flock(LOCK_EX | LOCK_NB)` on `<root>/lock`, which then holds the holder's pid |
//! | free      | `statvfs(root)`: `f_bavail * f_frsize`                                       |

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::{ObjectInfo, ObjectKey, Target, TargetLock};
use crate::error::{RepoError, Result};
use crate::formats::{LOCK_FILE_NAME, TEMP_INFIX, TEMP_PREFIX};
use crate::util::nonce_hex;

/// A repository rooted at a directory.
#[derive(Debug)]
pub struct LocalDir {
    root: PathBuf,
    /// Directories whose entries changed since the last `flush`.
    dirty: Mutex<HashSet<PathBuf>>,
    /// Objects written by `put_batched` under temporary names, not synced yet: `flush`
    /// syncs the filesystem once, then gives them their names (so no name ever points at
    /// data that is not on the disk), then syncs again for the names.
    pending: Mutex<Vec<Pending>>,
}

/// A batched object waiting for the next flush.
#[derive(Debug)]
struct Pending {
    key: ObjectKey,
    tmp: PathBuf,
    path: PathBuf,
}

struct LocalLock {
    _file: Flock<File>,
}

impl TargetLock for LocalLock {}

impl LocalDir {
    /// Uses `root`, creating it (and its parents) when missing.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| {
            RepoError::target_io(&root.display().to_string(), "creating the directory", e)
        })?;
        Self::open(root)
    }

    /// Uses the existing directory `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        match fs::metadata(&root) {
            Ok(m) if m.is_dir() => Ok(LocalDir {
                root,
                dirty: Mutex::new(HashSet::new()),
                pending: Mutex::new(Vec::new()),
            }),
            Ok(_) => Err(RepoError::invalid(
                "target",
                format!("{} is not a directory", root.display()),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(RepoError::not_found(format!(
                "target directory {}",
                root.display()
            ))),
            Err(e) => Err(RepoError::target_io(
                &root.display().to_string(),
                "opening the directory",
                e,
            )),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Filesystem path of an object.
    pub fn path_of(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    fn err(&self, context: impl Into<String>, e: io::Error) -> RepoError {
        RepoError::target_io(&self.describe(), context, e)
    }

    fn mark_dirty(&self, dir: &Path) {
        if let Ok(mut d) = self.dirty.lock() {
            d.insert(dir.to_path_buf());
        }
    }

    /// Creates `dir` when missing; every directory whose entries changed becomes dirty.
    fn ensure_dir(&self, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(dir)
            .map_err(|e| self.err(format!("creating directory {}", dir.display()), e))?;
        let mut p = dir;
        while let Some(parent) = p.parent() {
            self.mark_dirty(parent);
            if parent == self.root || !parent.starts_with(&self.root) {
                break;
            }
            p = parent;
        }
        Ok(())
    }

    fn write_temp(tmp: &Path, data: &[u8], sync: bool) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(tmp)?;
        f.write_all(data)?;
        if sync {
            f.sync_all()?;
        }
        Ok(())
    }

    /// A temporary name next to `key`'s file (and that directory, created when missing).
    fn temp_path(&self, key: &ObjectKey) -> Result<(PathBuf, PathBuf)> {
        let path = self.path_of(key);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        self.ensure_dir(&dir)?;
        let tmp = dir.join(format!(
            "{TEMP_PREFIX}{}{TEMP_INFIX}{}",
            key.file_name(),
            nonce_hex()
        ));
        Ok((tmp, path))
    }

    /// `syncfs(2)` on the target's filesystem.
    fn sync_filesystem(&self) -> Result<()> {
        let dir = File::open(&self.root).map_err(|e| self.err("opening the directory", e))?;
        nix::unistd::syncfs(dir.as_raw_fd())
            .map_err(|e| self.err("syncing the filesystem", io::Error::from(e)))
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_temp_name(name: &str) -> bool {
        name.starts_with(TEMP_PREFIX) && name.contains(TEMP_INFIX)
    }

    /// Walks `dir` recursively; `visit` gets each regular file's path and name.
    fn walk(
        &self,
        dir: &Path,
        visit: &mut dyn FnMut(&Path, &str, &fs::Metadata) -> Result<()>,
    ) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.err(format!("listing {}", dir.display()), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| self.err(format!("listing {}", dir.display()), e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Deleted while listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.err(format!("reading {}", path.display()), e)),
            };
            if meta.is_dir() {
                self.walk(&path, visit)?;
            } else if meta.is_file() {
                visit(&path, &name, &meta)?;
            }
        }
        Ok(())
    }
}

impl Target for LocalDir {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn put(&self, key: &ObjectKey, data: &[u8]) -> Result<()> {
        let (tmp, path) = self.temp_path(key)?;
        if let Err(e) = Self::write_temp(&tmp, data, true) {
            let _ = fs::remove_file(&tmp);
            return Err(self.err(format!("writing {key} ({} bytes)", data.len()), e));
        }
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(self.err(format!("publishing {key}"), e));
        }
        if let Some(dir) = path.parent() {
            self.mark_dirty(dir);
        }
        Ok(())
    }

    fn put_batched(&self, key: &ObjectKey, data: &[u8]) -> Result<()> {
        let (tmp, path) = self.temp_path(key)?;
        if let Err(e) = Self::write_temp(&tmp, data, false) {
            let _ = fs::remove_file(&tmp);
            return Err(self.err(format!("writing {key} ({} bytes)", data.len()), e));
        }
        self.lock_pending().push(Pending {
            key: key.clone(),
            tmp,
            path,
        });
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        let batch: Vec<Pending> = std::mem::take(&mut *self.lock_pending());
        if !batch.is_empty() {
            // Their data first, then their names.
            if let Err(e) = self.sync_filesystem() {
                self.lock_pending().extend(batch);
                return Err(e);
            }
            let mut left = batch.into_iter();
            while let Some(p) = left.next() {
                if let Err(e) = fs::rename(&p.tmp, &p.path) {
                    let err = self.err(format!("publishing {}", p.key), e);
                    let mut pending = self.lock_pending();
                    pending.push(p);
                    pending.extend(left);
                    return Err(err);
                }
                if let Some(dir) = p.path.parent() {
                    self.mark_dirty(dir);
                }
            }
        }
        let dirty = match self.dirty.lock() {
            Ok(mut d) => std::mem::take(&mut *d),
            Err(_) => HashSet::new(),
        };
        if dirty.is_empty() {
            return Ok(());
        }
        // One filesystem sync makes every changed directory durable.
        if let Err(e) = self.sync_filesystem() {
            if let Ok(mut d) = self.dirty.lock() {
                d.extend(dirty);
            }
            return Err(e);
        }
        Ok(())
    }

    fn get(&self, key: &ObjectKey) -> Result<Vec<u8>> {
        fs::read(self.path_of(key)).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                RepoError::not_found(format!("object {key} in {}", self.describe()))
            } else {
                self.err(format!("reading {key}"), e)
            }
        })
    }

    fn exists(&self, key: &ObjectKey) -> Result<bool> {
        match fs::symlink_metadata(self.path_of(key)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.err(format!("looking up {key}"), e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let prefix = ObjectKey::new(prefix)?;
        let base = self.path_of(&prefix);
        let mut out = Vec::new();
        self.walk(&base, &mut |path, name, meta| {
            if name.starts_with(TEMP_PREFIX) {
                return Ok(());
            }
            let rel = match path.strip_prefix(&self.root) {
                Ok(r) => r.to_string_lossy().into_owned(),
                Err(_) => return Ok(()),
            };
            // Files that are not valid keys were not written by a repository: skip them.
            if let Ok(key) = ObjectKey::new(rel) {
                out.push(ObjectInfo {
                    key,
                    size: meta.len(),
                    modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                });
            }
            Ok(())
        })?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &ObjectKey) -> Result<()> {
        let batched = {
            let mut pending = self.lock_pending();
            let at = pending.iter().position(|p| p.key == *key);
            at.map(|i| pending.remove(i))
        };
        if let Some(p) = batched {
            return match fs::remove_file(&p.tmp) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(self.err(format!("deleting {key}"), e)),
            };
        }
        let path = self.path_of(key);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.err(format!("deleting {key}"), e)),
        }
        if let Some(dir) = path.parent() {
            self.mark_dirty(dir);
            // Keep the top-level directories (chunks/, backups/); drop emptied ones below.
            if key.as_str().matches('/').count() >= 2 && fs::remove_dir(dir).is_ok() {
                if let Some(grandparent) = dir.parent() {
                    self.mark_dirty(grandparent);
                }
            }
        }
        Ok(())
    }

    fn free_space(&self) -> Result<Option<u64>> {
        let st = nix::sys::statvfs::statvfs(&self.root)
            .map_err(|e| self.err("querying free space", io::Error::from(e)))?;
        Ok(Some(
            st.blocks_available().saturating_mul(st.fragment_size()),
        ))
    }

    fn lock(&self) -> Result<Box<dyn TargetLock>> {
        let path = self.root.join(LOCK_FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| self.err("opening the lock file", e))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut locked) => {
                let note = format!("pid {}\n", std::process::id());
                let res = locked
                    .set_len(0)
                    .and_then(|()| locked.write_all(note.as_bytes()));
                if let Err(e) = res {
                    return Err(self.err("writing the lock file", e));
                }
                Ok(Box::new(LocalLock { _file: locked }))
            }
            Err((_, Errno::EWOULDBLOCK)) => {
                let holder = fs::read_to_string(&path)
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_default();
                Err(RepoError::Locked {
                    holder: if holder.is_empty() {
                        "unknown holder".to_owned()
                    } else {
                        holder
                    },
                })
            }
            Err((_, errno)) => Err(self.err("locking the repository", io::Error::from(errno))),
        }
    }

    fn remove_temp(&self) -> Result<u64> {
        let mut removed = 0;
        let root = self.root.clone();
        self.walk(&root, &mut |path, name, _| {
            if Self::is_temp_name(name) {
                match fs::remove_file(path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(RepoError::target_io(
                            &root.display().to_string(),
                            format!("removing {}", path.display()),
                            e,
                        ))
                    }
                }
            }
            Ok(())
        })?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ObjectKey {
        ObjectKey::new(s).unwrap()
    }

    #[test]
    fn batched_objects_appear_at_flush_and_never_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalDir::create(dir.path().join("repo")).unwrap();
        t.put_batched(&key("chunks/aa/one"), b"first").unwrap();
        t.put_batched(&key("chunks/bb/two"), b"second").unwrap();
        // Not visible yet, and not listed.
        assert!(!t.exists(&key("chunks/aa/one")).unwrap());
        assert!(t.list("chunks").unwrap().is_empty());
        // Deleting a batched object drops it before it ever appears.
        t.delete(&key("chunks/bb/two")).unwrap();
        t.flush().unwrap();
        assert_eq!(t.get(&key("chunks/aa/one")).unwrap(), b"first");
        assert!(!t.exists(&key("chunks/bb/two")).unwrap());
        assert_eq!(
            t.remove_temp().unwrap(),
            0,
            "the flush left a temporary file"
        );

        // A batch that never reaches a flush (the process died) leaves only temporary
        // files: nothing listed under the key, and remove_temp cleans them.
        let t2 = LocalDir::open(dir.path().join("repo")).unwrap();
        t2.put_batched(&key("chunks/cc/three"), b"lost").unwrap();
        drop(t2);
        let t3 = LocalDir::open(dir.path().join("repo")).unwrap();
        assert!(!t3.exists(&key("chunks/cc/three")).unwrap());
        let listed: Vec<String> = t3
            .list("chunks")
            .unwrap()
            .into_iter()
            .map(|o| o.key.as_str().to_owned())
            .collect();
        assert_eq!(listed, ["chunks/aa/one"]);
        assert_eq!(t3.remove_temp().unwrap(), 1);
    }

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalDir::create(dir.path().join("repo")).unwrap();
        t.put(&key("a/b/c"), b"hello").unwrap();
        t.put(&key("a/d"), b"x").unwrap();
        t.flush().unwrap();
        assert_eq!(t.get(&key("a/b/c")).unwrap(), b"hello");
        assert!(t.exists(&key("a/d")).unwrap());
        assert!(!t.exists(&key("a/e")).unwrap());
        // A leftover temporary file is not listed, and remove_temp cleans it.
        fs::write(
            dir.path().join("repo/a/b/.c.tmp-0011223344556677"),
            b"partial",
        )
        .unwrap();
        let keys: Vec<String> = t
            .list("a")
            .unwrap()
            .into_iter()
            .map(|o| o.key.to_string())
            .collect();
        assert_eq!(keys, ["a/b/c", "a/d"]);
        assert_eq!(t.remove_temp().unwrap(), 1);
        t.delete(&key("a/b/c")).unwrap();
        t.delete(&key("a/b/c")).unwrap();
        assert!(!dir.path().join("repo/a/b").exists());
        assert!(matches!(
            t.get(&key("a/b/c")),
            Err(RepoError::NotFound { .. })
        ));
        assert!(t.list("nothing").unwrap().is_empty());
        assert!(t.free_space().unwrap().unwrap() > 0);
    }

    #[test]
    fn second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t1 = LocalDir::create(dir.path()).unwrap();
        let t2 = LocalDir::open(dir.path()).unwrap();
        let held = t1.lock().unwrap();
        match t2.lock() {
            Err(RepoError::Locked { holder }) => {
                assert_eq!(holder, format!("pid {}", std::process::id()))
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("second lock was granted"),
        }
        drop(held);
        assert!(t2.lock().is_ok());
    }
}

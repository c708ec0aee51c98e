//! Helpers shared by the integration tests: deterministic images, checksums, fault-injecting
//! targets, counting sources, loop-mounted filesystems.
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use repo::{
    BackupRequest, ChunkSize, DiskIdentity, ImageSource, InitOptions, LocalDir, ObjectInfo,
    ObjectKey, RepoError, Repository, Target, TargetLock,
};
use sha2::{Digest as _, Sha256};

pub const MIB: u64 = 1 << 20;

/// Deterministic pseudo-random bytes (xorshift64*), incompressible.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Compressible text-like bytes.
pub fn text_bytes(len: usize, seed: u64) -> Vec<u8> {
    let words = [
        "backup ",
        "snapshot ",
        "block ",
        "chunk ",
        "index ",
        "zstd ",
        "\n",
    ];
    let r = random_bytes(len / 4 + 1, seed);
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(words[r[i % r.len()] as usize % words.len()].as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// A mixed image: random, zero and text regions, a size that is not a chunk multiple.
pub fn mixed_image(size: usize, seed: u64) -> Vec<u8> {
    let mut img = vec![0u8; size];
    let region = (size / 8).max(1);
    for (n, part) in img.chunks_mut(region).enumerate() {
        match n % 4 {
            0 => part.copy_from_slice(&random_bytes(part.len(), seed + n as u64)),
            1 => {} // zeros
            2 => part.copy_from_slice(&text_bytes(part.len(), seed + n as u64)),
            _ => part.copy_from_slice(&random_bytes(part.len(), seed * 31 + n as u64)),
        }
    }
    img
}

pub fn sha256(data: &[u8]) -> repo::Digest {
    repo::Digest(Sha256::digest(data).into())
}

pub fn sha256_file(path: &Path) -> repo::Digest {
    let mut f = File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    repo::Digest(h.finalize().into())
}

pub fn write_file(path: &Path, data: &[u8]) {
    fs::write(path, data).unwrap();
}

pub fn disk(serial: &str, size: u64) -> DiskIdentity {
    DiskIdentity {
        name: Some("vdb".into()),
        serial: Some(serial.into()),
        model: Some("QEMU HARDDISK".into()),
        size_bytes: size,
    }
}

pub fn request(serial: &str, size: u64, chunk: u32) -> BackupRequest {
    BackupRequest {
        chunk_size: Some(ChunkSize::new(chunk).unwrap()),
        tool_version: Some("repo-tests".into()),
        ..BackupRequest::new(disk(serial, size))
    }
}

pub fn init_opts(chunk: u32) -> InitOptions {
    InitOptions {
        chunk_size: ChunkSize::new(chunk).unwrap(),
        ..InitOptions::default()
    }
}

/// Files below `dir` (recursively) whose name passes `pred`.
pub fn files_below(dir: &Path, pred: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_below(&p, pred));
        } else if pred(&e.file_name().to_string_lossy()) {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Chunk object files of a local repository.
pub fn chunk_files(root: &Path) -> Vec<PathBuf> {
    files_below(&root.join("chunks"), &|n| n.len() == 64)
}

/// Temporary files anywhere in a local repository.
pub fn temp_files(root: &Path) -> Vec<PathBuf> {
    files_below(root, &|n| n.starts_with('.') && n.contains(".tmp-"))
}

/// A source that counts the bytes read from it.
pub struct CountingSource<S> {
    pub inner: S,
    pub read: AtomicU64,
}

impl<S> CountingSource<S> {
    pub fn new(inner: S) -> Self {
        CountingSource {
            inner,
            read: AtomicU64::new(0),
        }
    }
    pub fn read_bytes(&self) -> u64 {
        self.read.load(Ordering::SeqCst)
    }
}

impl<S: ImageSource> ImageSource for CountingSource<S> {
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read.fetch_add(buf.len() as u64, Ordering::SeqCst);
        self.inner.read_exact_at(buf, offset)
    }
}

/// What a [`FaultyTarget`] does to puts.
pub enum Fault {
    /// Puts of keys starting with this prefix fail with EIO.
    FailPrefix(&'static str),
    /// Puts of keys starting with this prefix panic (a crash that skips every cleanup).
    PanicPrefix(&'static str),
    /// Puts of keys starting with this prefix abort the process (a real crash).
    AbortPrefix(&'static str),
    /// Puts fail with ENOSPC once this many bytes were put in total.
    FullAfter(u64),
}

/// A [`LocalDir`] with injected faults.
pub struct FaultyTarget {
    pub inner: LocalDir,
    pub fault: Fault,
    pub put_bytes: AtomicU64,
}

impl FaultyTarget {
    pub fn new(root: &Path, fault: Fault) -> Arc<Self> {
        Arc::new(FaultyTarget {
            inner: LocalDir::create(root).unwrap(),
            fault,
            put_bytes: AtomicU64::new(0),
        })
    }
}

impl Target for FaultyTarget {
    fn describe(&self) -> String {
        format!("faulty {}", self.inner.describe())
    }
    fn put(&self, key: &ObjectKey, data: &[u8]) -> repo::Result<()> {
        match &self.fault {
            Fault::FailPrefix(p) if key.as_str().starts_with(p) => {
                return Err(RepoError::target_io(
                    &self.describe(),
                    format!("writing {key}"),
                    io::Error::from_raw_os_error(libc_eio()),
                ))
            }
            Fault::PanicPrefix(p) if key.as_str().starts_with(p) => {
                panic!("simulated crash before writing {key}")
            }
            Fault::AbortPrefix(p) if key.as_str().starts_with(p) => std::process::abort(),
            Fault::FullAfter(limit) => {
                let before = self
                    .put_bytes
                    .fetch_add(data.len() as u64, Ordering::SeqCst);
                if before + data.len() as u64 > *limit {
                    // Like a filesystem: a partial temp file, then ENOSPC, then cleanup.
                    return Err(RepoError::target_io(
                        &self.describe(),
                        format!("writing {key}"),
                        io::Error::from_raw_os_error(28),
                    ));
                }
            }
            _ => {}
        }
        self.inner.put(key, data)
    }
    fn flush(&self) -> repo::Result<()> {
        self.inner.flush()
    }
    fn get(&self, key: &ObjectKey) -> repo::Result<Vec<u8>> {
        self.inner.get(key)
    }
    fn exists(&self, key: &ObjectKey) -> repo::Result<bool> {
        self.inner.exists(key)
    }
    fn list(&self, prefix: &str) -> repo::Result<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &ObjectKey) -> repo::Result<()> {
        self.inner.delete(key)
    }
    fn free_space(&self) -> repo::Result<Option<u64>> {
        self.inner.free_space()
    }
    fn lock(&self) -> repo::Result<Box<dyn TargetLock>> {
        self.inner.lock()
    }
    fn remove_temp(&self) -> repo::Result<u64> {
        self.inner.remove_temp()
    }
}

fn libc_eio() -> i32 {
    5
}

/// Opens the repository in `root` without faults.
pub fn open_plain(root: &Path) -> Repository {
    Repository::open(Arc::new(LocalDir::open(root).unwrap())).unwrap()
}

/// Writes `data` into a new file and opens it for reading.
pub fn image_file(dir: &Path, name: &str, data: &[u8]) -> (PathBuf, File) {
    let p = dir.join(name);
    write_file(&p, data);
    let f = File::open(&p).unwrap();
    (p, f)
}

/// Overwrites bytes of a file in place.
pub fn patch_file(path: &Path, offset: u64, data: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(data, offset).unwrap();
}

pub fn have_tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A small ext4 filesystem in a file, loop-mounted; unmounted on drop.
pub struct LoopFs {
    pub mountpoint: PathBuf,
    _dir: tempfile::TempDir,
}

impl LoopFs {
    /// `None` (and a note on stderr) when not root or loop mounting fails.
    pub fn new(size: u64) -> Option<LoopFs> {
        if !is_root() {
            eprintln!("skipping loop-mounted filesystem: not root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        File::create(&img).unwrap().set_len(size).unwrap();
        let mkfs = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&img)
            .output();
        if !matches!(&mkfs, Ok(o) if o.status.success()) {
            eprintln!("skipping loop-mounted filesystem: mkfs.ext4 failed: {mkfs:?}");
            return None;
        }
        let mountpoint = dir.path().join("mnt");
        fs::create_dir(&mountpoint).unwrap();
        let mount = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mountpoint)
            .output();
        if !matches!(&mount, Ok(o) if o.status.success()) {
            eprintln!("skipping loop-mounted filesystem: mount failed: {mount:?}");
            return None;
        }
        Some(LoopFs {
            mountpoint,
            _dir: dir,
        })
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mountpoint).status();
    }
}

/// A loop block device over a new file of `size` bytes; detached on drop.
pub struct LoopDev {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl LoopDev {
    pub fn new(size: u64, fill: Option<&[u8]>) -> Option<LoopDev> {
        if !is_root() {
            eprintln!("skipping loop device: not root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("dev.img");
        File::create(&img).unwrap().set_len(size).unwrap();
        if let Some(data) = fill {
            File::options()
                .write(true)
                .open(&img)
                .unwrap()
                .write_all_at(data, 0)
                .unwrap();
        }
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&img)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "skipping loop device: losetup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Some(LoopDev { path, _dir: dir })
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}

/// Runs a backup of `data` with the given chunk size into `repo`.
pub fn backup_bytes(
    repo: &Repository,
    data: &[u8],
    serial: &str,
    chunk: u32,
) -> repo::BackupResult {
    repo.backup_full(
        data,
        &request(serial, data.len() as u64, chunk),
        &repo::JobCtl::new(),
    )
    .unwrap()
}

//! What an export serves: the [`Backend`] trait, and [`FileBackend`] for block devices
//! and regular files.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{fallocate, FallocateFlags};

/// A disk image the server exports. Calls are blocking; the server runs them off its
/// async threads. Offsets and lengths are checked against [`Backend::size`] by the
/// server before any call.
pub trait Backend: Send + Sync {
    /// Size in bytes.
    fn size(&self) -> u64;
    /// Whether writes, trims and write-zeroes are refused (`EPERM`).
    fn read_only(&self) -> bool;
    /// Fills `buf` from `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every completed write durable.
    fn flush(&self) -> io::Result<()>;
    /// Discards a range (its content is unspecified afterwards).
    fn trim(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Makes a range read as zeroes.
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()>;
}

/// A block device node or regular file: reads and writes go through the kernel's block
/// layer (so blksnap trackers see every write), flush is `fdatasync`, trim punches a
/// hole (a discard on a block device), write-zeroes uses `FALLOC_FL_ZERO_RANGE` and falls
/// back to writing zeroes.
#[derive(Debug)]
pub struct FileBackend {
    file: File,
    path: PathBuf,
    size: u64,
    read_only: bool,
}

impl FileBackend {
    /// Opens `path` read-write, or read-only when `read_only`.
    pub fn open(path: &Path, read_only: bool) -> io::Result<Self> {
        let mut file = OpenOptions::new().read(true).write(!read_only).open(path)?;
        let size = file.seek(SeekFrom::End(0))?;
        Ok(FileBackend {
            file,
            path: path.to_path_buf(),
            size,
            read_only,
        })
    }

    /// The path opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_zero_bytes(&self, mut offset: u64, len: u64) -> io::Result<()> {
        let zeros = vec![0u8; len.min(1 << 20) as usize];
        let end = offset + len;
        while offset < end {
            let n = (end - offset).min(zeros.len() as u64) as usize;
            self.file.write_all_at(&zeros[..n], offset)?;
            offset += n as u64;
        }
        Ok(())
    }
}

fn range(offset: u64, len: u64) -> io::Result<(i64, i64)> {
    match (i64::try_from(offset), i64::try_from(len)) {
        (Ok(o), Ok(l)) => Ok((o, l)),
        _ => Err(io::Error::from_raw_os_error(libc_einval())),
    }
}

fn libc_einval() -> i32 {
    nix::errno::Errno::EINVAL as i32
}

fn refuse_write() -> io::Error {
    io::Error::from_raw_os_error(nix::errno::Errno::EPERM as i32)
}

impl Backend for FileBackend {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.read_only {
            return Err(refuse_write());
        }
        self.file.write_all_at(buf, offset)
    }

    fn flush(&self) -> io::Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.file.sync_data()
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        if self.read_only {
            return Err(refuse_write());
        }
        let (o, l) = range(offset, len)?;
        let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        match fallocate(self.file.as_raw_fd(), flags, o, l) {
            Ok(()) => Ok(()),
            // A trim is advisory: a device that cannot discard keeps its data.
            Err(nix::errno::Errno::EOPNOTSUPP) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        if self.read_only {
            return Err(refuse_write());
        }
        let (o, l) = range(offset, len)?;
        let flags = FallocateFlags::FALLOC_FL_ZERO_RANGE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        match fallocate(self.file.as_raw_fd(), flags, o, l) {
            Ok(()) => Ok(()),
            Err(_) => self.write_zero_bytes(offset, len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_backend_reads_writes_zeroes_and_refuses_when_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, vec![7u8; 65536]).unwrap();
        let rw = FileBackend::open(&path, false).unwrap();
        assert_eq!(rw.size(), 65536);
        rw.write_at(&[1, 2, 3], 10).unwrap();
        rw.write_zeroes(4096, 8192).unwrap();
        rw.trim(32768, 4096).unwrap();
        rw.flush().unwrap();
        let mut buf = [0u8; 5];
        rw.read_at(&mut buf, 9).unwrap();
        assert_eq!(buf, [7, 1, 2, 3, 7]);
        let mut z = vec![1u8; 8192];
        rw.read_at(&mut z, 4096).unwrap();
        assert!(z.iter().all(|&b| b == 0));

        let ro = FileBackend::open(&path, true).unwrap();
        assert!(ro.read_only());
        let err = ro.write_at(&[0], 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::errno::Errno::EPERM as i32));
    }
}

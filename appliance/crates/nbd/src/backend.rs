//! What an export serves: the [`Backend`] trait, and [`FileBackend`] for block devices
//! and regular files.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{fallocate, FallocateFlags};

/// A disk image the server exports. Calls are blocking; the server runs them off its
/// async threads. Offsets and lengths are checked against [`Backend::size`] by the
/// server before any call.
///
/// The provided methods describe a read-only export (writes, trims and write-zeroes are
/// refused with `EPERM`, flush has nothing to do): a read-only backend implements `size`
/// and `read_at` only.
pub trait Backend: Send + Sync {
    /// Size in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` from `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Whether writes, trims and write-zeroes are refused (`EPERM`).
    fn read_only(&self) -> bool {
        true
    }
    /// Writes `buf` at `offset`.
    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(refuse_write())
    }
    /// Makes every completed write durable.
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    /// Discards a range (its content is unspecified afterwards).
    fn trim(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Err(refuse_write())
    }
    /// Makes a range read as zeroes.
    fn write_zeroes(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Err(refuse_write())
    }
}

/// A block device node or regular file: reads and writes go through the kernel's block
/// layer (so blksnap trackers see every write), flush is `fdatasync`, trim punches a
/// hole (a discard on a block device), write-zeroes uses `FALLOC_FL_ZERO_RANGE` and falls
/// back to writing zeroes.
///
/// Opened with [`FileBackend::open_direct`], reads and writes bypass the page cache
/// (`O_DIRECT`), so a write the client saw acknowledged has reached the device: a
/// snapshot taken afterwards holds it, and one taken before does not. Requests that are
/// not aligned to the device's blocks are served through an aligned bounce buffer
/// (read-modify-write for writes; requests of one connection never overlap in time).
pub struct FileBackend {
    file: File,
    path: PathBuf,
    size: u64,
    read_only: bool,
    /// `O_DIRECT`: every transfer is a multiple of this, at a multiple of it.
    direct_align: Option<u64>,
    /// Something kept as long as the backend lives (a lock on the device).
    _held: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileBackend")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("read_only", &self.read_only)
            .field("direct_align", &self.direct_align)
            .finish()
    }
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
            direct_align: None,
            _held: None,
        })
    }

    /// Opens `path` with `O_DIRECT` (see the type's docs). Block devices are multiples of
    /// 512 bytes; 4096-byte alignment is used when the size allows it, which also suits
    /// disks with 4 KiB logical blocks and files on 4 KiB-block filesystems.
    pub fn open_direct(path: &Path, read_only: bool) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .custom_flags(nix::libc::O_DIRECT)
            .open(path)?;
        let size = file.seek(SeekFrom::End(0))?;
        let align = if size % 4096 == 0 { 4096 } else { 512 };
        if size % align != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is not a whole number of 512-byte blocks",
                    path.display()
                ),
            ));
        }
        Ok(FileBackend {
            file,
            path: path.to_path_buf(),
            size,
            read_only,
            direct_align: Some(align),
            _held: None,
        })
    }

    /// Keeps `held` (for example a lock on the device) for as long as the backend lives.
    pub fn holding(mut self, held: impl std::any::Any + Send + Sync) -> Self {
        self._held = Some(Box::new(held));
        self
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
            self.write_at(&zeros[..n], offset)?;
            offset += n as u64;
        }
        Ok(())
    }

    /// `O_DIRECT` read: the aligned range around the request into a bounce buffer.
    fn read_direct(&self, buf: &mut [u8], offset: u64, align: u64) -> io::Result<()> {
        let (start, end) = aligned_range(offset, buf.len() as u64, align);
        let mut bounce = AlignedBuf::new((end - start) as usize, align as usize)?;
        self.file.read_exact_at(bounce.as_mut(), start)?;
        let skip = (offset - start) as usize;
        buf.copy_from_slice(&bounce.as_mut()[skip..skip + buf.len()]);
        Ok(())
    }

    /// `O_DIRECT` write: a partial block at either end is read first and patched.
    fn write_direct(&self, buf: &[u8], offset: u64, align: u64) -> io::Result<()> {
        let len = buf.len() as u64;
        let (start, end) = aligned_range(offset, len, align);
        let mut bounce = AlignedBuf::new((end - start) as usize, align as usize)?;
        let block = bounce.as_mut();
        if start != offset {
            self.file
                .read_exact_at(&mut block[..align as usize], start)?;
        }
        let tail = end - align;
        if end != offset + len && (tail != start || start == offset) {
            let at = (tail - start) as usize;
            self.file.read_exact_at(&mut block[at..], tail)?;
        }
        let skip = (offset - start) as usize;
        block[skip..skip + buf.len()].copy_from_slice(buf);
        self.file.write_all_at(block, start)
    }
}

/// The smallest `align`-aligned byte range holding `[offset, offset + len)`.
fn aligned_range(offset: u64, len: u64, align: u64) -> (u64, u64) {
    let start = offset / align * align;
    let end = (offset + len).div_ceil(align) * align;
    (start, end)
}

/// A zeroed buffer whose start is aligned for `O_DIRECT`, carved out of a slightly
/// larger vector (no unsafe allocation).
struct AlignedBuf {
    bytes: Vec<u8>,
    skip: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize, align: usize) -> io::Result<Self> {
        let bytes = vec![0u8; len + align];
        let skip = bytes.as_ptr().align_offset(align);
        if skip > align {
            return Err(io::Error::other("cannot align an O_DIRECT buffer"));
        }
        Ok(AlignedBuf { bytes, skip, len })
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.skip..self.skip + self.len]
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
        match self.direct_align {
            Some(align) if !buf.is_empty() => self.read_direct(buf, offset, align),
            _ => self.file.read_exact_at(buf, offset),
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.read_only {
            return Err(refuse_write());
        }
        match self.direct_align {
            Some(align) if !buf.is_empty() => self.write_direct(buf, offset, align),
            _ => self.file.write_all_at(buf, offset),
        }
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

    #[test]
    fn direct_backend_serves_unaligned_requests_exactly() {
        // O_DIRECT needs a real filesystem (tmpfs refuses it): the build directory.
        let base = std::env::var_os("CARGO_TARGET_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../target"));
        std::fs::create_dir_all(&base).unwrap();
        let dir = tempfile::tempdir_in(&base).unwrap();
        let path = dir.path().join("disk");
        let mut model: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &model).unwrap();
        let b = match FileBackend::open_direct(&path, false) {
            Ok(b) => b,
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EINVAL as i32) => {
                eprintln!("skipping: {} does not support O_DIRECT", base.display());
                return;
            }
            Err(e) => panic!("open_direct: {e}"),
        };
        // Inside one block, across a block border, aligned, and ending at the very end.
        let writes: &[(u64, usize, u8)] = &[
            (10, 3, 1),
            (4090, 20, 2),
            (8192, 4096, 3),
            (12288 + 5, 8192, 4),
            (65536 - 7, 7, 5),
            (100, 4096 * 2, 6),
        ];
        for &(offset, len, v) in writes {
            let data = vec![v; len];
            b.write_at(&data, offset).unwrap();
            model[offset as usize..offset as usize + len].copy_from_slice(&data);
        }
        b.write_zeroes(30000, 100).unwrap();
        model[30000..30100].fill(0);
        for &(offset, len) in &[
            (0u64, 65536usize),
            (9, 5),
            (4095, 2),
            (65535, 1),
            (12290, 9000),
        ] {
            let mut buf = vec![0xeeu8; len];
            b.read_at(&mut buf, offset).unwrap();
            assert!(
                buf == model[offset as usize..offset as usize + len],
                "{len} at {offset}"
            );
        }
        b.flush().unwrap();
        assert!(
            std::fs::read(&path).unwrap() == model,
            "the file differs from the model"
        );
    }
}

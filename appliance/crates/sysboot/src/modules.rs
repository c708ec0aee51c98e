//! Kernel module loading without `modprobe`.
//!
//! [`ModuleIndex`] reads the plain-text `modules.dep` of one kernel release
//! (`/lib/modules/<release>/modules.dep`: `path: dep dep ...`, paths relative to that
//! directory) and loads a module after its dependencies with `finit_module(2)`.
//! Module names are normalised the way the kernel does: `virtio-blk` and `virtio_blk`
//! are the same module. Soft dependencies (`modules.softdep`) are not followed: list
//! such modules explicitly, before the modules that want them.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs::File;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::kmod::{delete_module, finit_module, DeleteModuleFlags, ModuleInitFlags};

use crate::Error;

/// The list of modules to load at boot, beside `modules.dep`.
pub const LOAD_LIST: &str = "modules.load";

/// `MODULE_INIT_COMPRESSED_FILE` from `<linux/module.h>`: the kernel decompresses.
const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

/// One `modules.dep` entry.
#[derive(Debug, Clone)]
struct Entry {
    /// The module file, relative to the index root.
    path: PathBuf,
    /// Its dependencies' files, relative to the index root, as listed.
    deps: Vec<PathBuf>,
}

/// The parsed `modules.dep` of one kernel release.
#[derive(Debug, Clone)]
pub struct ModuleIndex {
    root: PathBuf,
    /// Normalised module name → entry.
    entries: BTreeMap<String, Entry>,
}

impl ModuleIndex {
    /// Reads `<root>/modules.dep`; `root` is `/lib/modules/<release>`.
    pub fn open(root: &Path) -> Result<Self, Error> {
        let dep = root.join("modules.dep");
        let text = std::fs::read_to_string(&dep).map_err(|source| Error::Read {
            path: dep.clone(),
            source,
        })?;
        Self::parse(root, &text).map_err(|line| Error::DepSyntax { path: dep, line })
    }

    /// Opens the index of the running kernel, `/lib/modules/$(uname -r)`.
    pub fn open_running() -> Result<Self, Error> {
        let root = Path::new("/lib/modules").join(kernel_release()?);
        Self::open(&root)
    }

    /// Parses `modules.dep` text; the error is the one-based number of a malformed line.
    fn parse(root: &Path, text: &str) -> Result<Self, usize> {
        let mut entries = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (path, deps) = line.split_once(':').ok_or(index + 1)?;
            let path = PathBuf::from(path.trim());
            let name = name_of_path(&path).ok_or(index + 1)?;
            let deps = deps.split_whitespace().map(PathBuf::from).collect();
            entries.insert(name, Entry { path, deps });
        }
        Ok(ModuleIndex {
            root: root.to_path_buf(),
            entries,
        })
    }

    /// The directory the index was read from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the index knows `name` (in any spelling).
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(&normalize(name))
    }

    /// The normalised names of every module in the index, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The files to load for `name`, dependencies first, `name`'s own file last;
    /// absolute paths under the index root.
    pub fn resolve(&self, name: &str) -> Result<Vec<PathBuf>, Error> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        self.visit(&normalize(name), &mut seen, &mut order)?;
        Ok(order.into_iter().map(|rel| self.root.join(rel)).collect())
    }

    fn visit(
        &self,
        name: &str,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<PathBuf>,
    ) -> Result<(), Error> {
        if !seen.insert(name.to_owned()) {
            return Ok(());
        }
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| Error::UnknownModule(name.to_owned()))?;
        // modules.dep lists the deepest dependencies last; walk each one's own entry so
        // the order is right whatever the listing order.
        for dep in entry.deps.iter().rev() {
            match name_of_path(dep) {
                Some(dep_name) => self.visit(&dep_name, seen, order)?,
                None => return Err(Error::UnknownModule(dep.display().to_string())),
            }
        }
        order.push(entry.path.clone());
        Ok(())
    }

    /// The names in `<root>/modules.load` (written by `images/mkinitramfs.sh`: the
    /// image's module list), in order; blank lines and `#` comments skipped.
    pub fn listed(&self) -> Result<Vec<String>, Error> {
        let path = self.root.join(LOAD_LIST);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Read { path, source })?;
        Ok(list_names(&text).map(str::to_owned).collect())
    }

    /// Loads every module named in `list` (a module list: one name a line, `#`
    /// comments, as `images/modules.list`), in order, without parameters; stops at the
    /// first failure.
    pub fn load_list(&self, list: &str) -> Result<(), Error> {
        list_names(list).try_for_each(|name| self.load(name, ""))
    }

    /// Loads every module of [`ModuleIndex::listed`] in order, going on past failures;
    /// returns the failures. Fails only when the list cannot be read.
    pub fn load_listed(&self) -> Result<Vec<(String, Error)>, Error> {
        let mut failures = Vec::new();
        for name in self.listed()? {
            if let Err(err) = self.load(&name, "") {
                failures.push((name, err));
            }
        }
        Ok(failures)
    }

    /// Loads `name` with module parameters `params` (`"key=value key2=value"`, or ""),
    /// after its dependencies. Modules already present (`/sys/module/<name>`, which also
    /// covers built-in ones) are skipped; `params` apply to `name` only.
    pub fn load(&self, name: &str, params: &str) -> Result<(), Error> {
        let wanted = normalize(name);
        if is_loaded(&wanted) {
            return Ok(());
        }
        let files = self.resolve(&wanted)?;
        let count = files.len();
        for (i, file) in files.iter().enumerate() {
            let last = i + 1 == count;
            let dep_loaded = name_of_path(file).is_some_and(|n| is_loaded(&n));
            if last {
                load_file(file, params)?;
            } else if !dep_loaded {
                load_file(file, "")?;
            }
        }
        Ok(())
    }
}

/// Loads one module file with `finit_module(2)`. A module that is already loaded
/// (`EEXIST`) counts as success. `.ko.xz`, `.ko.zst` and `.ko.gz` files are handed to the
/// kernel to decompress.
pub fn load_file(path: &Path, params: &str) -> Result<(), Error> {
    let file = File::open(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let params = CString::new(params).map_err(|_| Error::Params {
        path: path.to_path_buf(),
    })?;
    let flags = if is_compressed(path) {
        ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE)
    } else {
        ModuleInitFlags::empty()
    };
    match finit_module(&file, &params, flags) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(source) => Err(Error::Load {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Unloads an unused module (`rmmod`): fails with `EBUSY`/`EAGAIN` when it is in use
/// instead of waiting, and with `ENOENT` when it is not loaded.
pub fn unload(name: &str) -> Result<(), Error> {
    let normalized = normalize(name);
    let cname =
        CString::new(normalized.clone()).map_err(|_| Error::UnknownModule(normalized.clone()))?;
    delete_module(&cname, DeleteModuleFlags::O_NONBLOCK).map_err(|source| Error::Unload {
        name: normalized,
        source,
    })
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> Result<String, Error> {
    let uts = nix::sys::utsname::uname().map_err(Error::Uname)?;
    Ok(uts.release().to_string_lossy().into_owned())
}

/// Whether `/sys/module/<name>` exists (loaded, or built in with parameters).
pub fn is_loaded(name: &str) -> bool {
    Path::new("/sys/module").join(normalize(name)).exists()
}

/// The names of a module list, in order: blank lines and `#` comments skipped.
fn list_names(list: &str) -> impl Iterator<Item = &str> {
    list.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|name| !name.is_empty())
}

/// The kernel's spelling of a module name: dashes become underscores.
pub fn normalize(name: &str) -> String {
    name.trim().replace('-', "_")
}

/// The module name of a file such as `kernel/fs/nls/nls_iso8859-1.ko`.
pub fn name_of_path(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))?;
    if stem.is_empty() {
        return None;
    }
    Some(normalize(stem))
}

fn is_compressed(path: &Path) -> bool {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    !file.ends_with(".ko")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/fs/nls/nls_iso8859-1.ko:
kernel/drivers/md/dm-snapshot.ko.xz: kernel/drivers/md/dm-bufio.ko.xz kernel/drivers/md/dm-mod.ko.xz
kernel/drivers/md/dm-bufio.ko.xz:
kernel/drivers/md/dm-mod.ko.xz:
";

    /// A unique scratch directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!(
                "sysboot-test-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create scratch dir");
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn fixture(tag: &str, text: &str) -> (Scratch, ModuleIndex) {
        let scratch = Scratch::new(tag);
        std::fs::write(scratch.0.join("modules.dep"), text).expect("write modules.dep");
        let index = ModuleIndex::open(&scratch.0).expect("open index");
        (scratch, index)
    }

    fn relative(index: &ModuleIndex, files: Vec<PathBuf>) -> Vec<String> {
        files
            .into_iter()
            .map(|f| {
                f.strip_prefix(index.root())
                    .expect("under root")
                    .display()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn resolves_dependencies_first() {
        let (_dir, index) = fixture("deps", DEP);
        let order = relative(&index, index.resolve("ext4").expect("ext4"));
        assert_eq!(
            order.last().map(String::as_str),
            Some("kernel/fs/ext4/ext4.ko")
        );
        assert_eq!(order.len(), 4);
        let order = relative(&index, index.resolve("virtio-blk").expect("virtio_blk"));
        assert_eq!(
            order,
            [
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/block/virtio_blk.ko",
            ]
        );
    }

    #[test]
    fn names_are_normalised() {
        let (_dir, index) = fixture("names", DEP);
        assert!(index.contains("nls_iso8859_1"));
        assert!(index.contains("nls-iso8859-1"));
        assert!(index.contains("dm_snapshot"));
        assert!(index.contains("dm-mod"));
        assert!(!index.contains("xfs"));
        let order = relative(&index, index.resolve("dm-snapshot").expect("dm_snapshot"));
        assert_eq!(order.len(), 3);
        assert_eq!(order[2], "kernel/drivers/md/dm-snapshot.ko.xz");
    }

    #[test]
    fn unknown_module_and_bad_syntax_are_errors() {
        let (_dir, index) = fixture("unknown", DEP);
        assert!(matches!(index.resolve("xfs"), Err(Error::UnknownModule(n)) if n == "xfs"));
        let scratch = Scratch::new("syntax");
        std::fs::write(scratch.0.join("modules.dep"), "a.ko:\nno colon here\n").expect("write");
        match ModuleIndex::open(&scratch.0) {
            Err(Error::DepSyntax { line, .. }) => assert_eq!(line, 2),
            other => panic!("expected DepSyntax, got {other:?}"),
        }
    }

    #[test]
    fn missing_dependency_entry_is_reported() {
        let (_dir, index) = fixture("missing", "a.ko: b.ko\n");
        assert!(matches!(index.resolve("a"), Err(Error::UnknownModule(n)) if n == "b"));
    }

    #[test]
    fn listed_modules_keep_their_order() {
        let (dir, index) = fixture("listed", DEP);
        std::fs::write(
            dir.0.join(LOAD_LIST),
            "ext4\n# comment\n\n virtio-blk # disks\n",
        )
        .expect("write modules.load");
        assert_eq!(index.listed().expect("listed"), ["ext4", "virtio-blk"]);
        assert_eq!(
            list_names("# head\nvirtio_pci\n  dm_mod \n\n").collect::<Vec<_>>(),
            ["virtio_pci", "dm_mod"]
        );
    }

    #[test]
    fn missing_index_is_a_read_error() {
        let scratch = Scratch::new("missing-index");
        assert!(matches!(
            ModuleIndex::open(&scratch.0),
            Err(Error::Read { .. })
        ));
    }

    #[test]
    fn file_names_map_to_module_names() {
        let name = |p: &str| name_of_path(Path::new(p));
        assert_eq!(
            name("kernel/fs/nls/nls_iso8859-1.ko").as_deref(),
            Some("nls_iso8859_1")
        );
        assert_eq!(name("extra/blksnap.ko").as_deref(), Some("blksnap"));
        assert_eq!(name("x/dm-mod.ko.zst").as_deref(), Some("dm_mod"));
        assert_eq!(name("x/readme.txt"), None);
        assert_eq!(name(".ko"), None);
    }
}

//! A real NFS server for the tests: NFS-Ganesha (Debian's `nfs-ganesha` with the VFS
//! backend, installed by `scripts/install-deps.sh`), NFSv4 only, on 127.0.0.1 and a port of
//! its own, exporting one host directory as `/backups` with root access. It runs in user
//! space, so the host kernel needs no NFS server. Killed when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::qemu::free_port;

/// The path clients mount (NFSv4 pseudo-filesystem).
pub const EXPORT: &str = "/backups";

/// A running Ganesha.
pub struct Ganesha {
    child: Child,
    /// The NFS port on 127.0.0.1.
    pub port: u16,
    /// The exported host directory.
    pub exported: PathBuf,
}

impl Ganesha {
    /// Exports `dir/export` (emptied first); configuration and log in `dir`. Panics with
    /// what to do when Ganesha is not installed.
    pub fn start(dir: &Path) -> Ganesha {
        let bin = PathBuf::from("/usr/bin/ganesha.nfsd");
        assert!(
            bin.exists() && Path::new("/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so").exists(),
            "NFS-Ganesha (nfs-ganesha, nfs-ganesha-vfs) is not installed: run scripts/install-deps.sh"
        );
        let exported = dir.join("export");
        let _ = std::fs::remove_dir_all(&exported);
        std::fs::create_dir_all(&exported).expect("export directory");
        let port = free_port();
        let conf = format!(
            "NFS_CORE_PARAM {{ Protocols = 4; NFS_Port = {port}; Bind_addr = 127.0.0.1; \
             Enable_NLM = false; Enable_RQUOTA = false; }}\n\
             NFSV4 {{ Graceless = true; }}\n\
             NFS_KRB5 {{ Active_krb5 = false; }}\n\
             EXPORT {{ Export_Id = 1; Path = {}; Pseudo = {EXPORT}; Access_Type = RW; \
             Squash = No_Root_Squash; SecType = sys; Protocols = 4; Transports = TCP; \
             FSAL {{ Name = VFS; }} }}\n",
            exported.display()
        );
        let conf_path = dir.join("ganesha.conf");
        std::fs::write(&conf_path, conf).expect("ganesha.conf");
        let child = Command::new(&bin)
            .arg("-F")
            .arg("-f")
            .arg(&conf_path)
            .arg("-L")
            .arg(dir.join("ganesha.log"))
            .arg("-p")
            .arg(dir.join("ganesha.pid"))
            .args(["-N", "NIV_EVENT"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ganesha.nfsd");
        let ganesha = Ganesha {
            child,
            port,
            exported,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "ganesha did not listen on 127.0.0.1:{port}; see {}/ganesha.log",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        ganesha
    }
}

impl Drop for Ganesha {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

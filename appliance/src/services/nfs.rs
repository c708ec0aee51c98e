//! NFS backup targets: an export of an NFS server (version 4), mounted by the appliance
//! below the mount root and kept mounted, like a target disk. The repository and the
//! restored and exported files then live on the server.
//!
//! The kernel mounts it (`nfs4` with the server's address resolved here, since the image
//! has no name-resolution helper for the kernel). Before mounting, a TCP connection to the
//! server's port must succeed within [`PROBE_TIMEOUT`], so that a wrong address fails in
//! seconds instead of hanging in the mount.

use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The NFS port.
pub const NFS_PORT: u16 = 2049;
/// How long the reachability probe waits.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long name resolution may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the mount may take before the caller is told the server did not answer (the
/// mount itself may still finish later).
pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// An NFS export as a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NfsConfig {
    /// The server: an address or a host name.
    pub server: String,
    /// The exported path on the server (NFSv4: its pseudo-filesystem path), e.g. `/backups`.
    pub export: String,
    /// The server's port (default 2049).
    #[serde(default)]
    pub port: Option<u16>,
    /// The NFS minor version: `4.0`, `4.1` or `4.2` (default `4.1`).
    #[serde(default)]
    pub version: Option<String>,
}

/// Why an NFS export cannot be mounted.
#[derive(Debug, thiserror::Error)]
pub enum NfsError {
    #[error("the NFS export path {0:?} must be absolute")]
    RelativeExport(String),
    #[error("NFS version {0:?} is not one of 4.0, 4.1, 4.2")]
    Version(String),
    #[error("cannot resolve the NFS server {server}: {cause}")]
    Resolve { server: String, cause: String },
    #[error("cannot reach the NFS server {addr}: {cause}")]
    Unreachable { addr: SocketAddr, cause: String },
    #[error("the NFS server did not complete the mount of {source_name} within {} s", MOUNT_TIMEOUT.as_secs())]
    MountTimeout { source_name: String },
    #[error("cannot mount {source_name} on {}: {errno}", mount_point.display())]
    Mount {
        source_name: String,
        mount_point: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error("cannot create the mount point {}: {cause}", path.display())]
    MountPoint {
        path: PathBuf,
        cause: std::io::Error,
    },
}

impl NfsError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            NfsError::RelativeExport(_) | NfsError::Version(_) => "invalid_argument",
            NfsError::Resolve { .. }
            | NfsError::Unreachable { .. }
            | NfsError::MountTimeout { .. } => "target_unusable",
            NfsError::Mount { .. } | NfsError::MountPoint { .. } => "target_mount_failed",
        }
    }
}

impl NfsConfig {
    /// `server:/export`.
    pub fn source_name(&self) -> String {
        format!("{}:{}", self.server, self.export)
    }

    fn version(&self) -> Result<&str, NfsError> {
        match self.version.as_deref().unwrap_or("4.1") {
            v @ ("4.0" | "4.1" | "4.2") => Ok(v),
            other => Err(NfsError::Version(other.to_owned())),
        }
    }

    /// The server's address, and that something answers on its port.
    fn reachable(&self) -> Result<SocketAddr, NfsError> {
        let port = self.port.unwrap_or(NFS_PORT);
        let resolve = |cause: String| NfsError::Resolve {
            server: self.server.clone(),
            cause,
        };
        let addr = match self.server.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                let name = self.server.clone();
                std::thread::spawn(move || {
                    let _ = tx.send(
                        (name.as_str(), port)
                            .to_socket_addrs()
                            .map(|mut a| a.next()),
                    );
                });
                match rx.recv_timeout(RESOLVE_TIMEOUT) {
                    Ok(Ok(Some(addr))) => addr,
                    Ok(Ok(None)) => return Err(resolve("no address".to_owned())),
                    Ok(Err(e)) => return Err(resolve(e.to_string())),
                    Err(_) => {
                        return Err(resolve(format!(
                            "no answer within {} s",
                            RESOLVE_TIMEOUT.as_secs()
                        )))
                    }
                }
            }
        };
        TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).map_err(|e| NfsError::Unreachable {
            addr,
            cause: e.to_string(),
        })?;
        Ok(addr)
    }

    /// Where the appliance mounts it below `mount_root`.
    pub fn mount_point(&self, mount_root: &Path) -> PathBuf {
        let name: String = format!("nfs-{}-{}", self.server, self.export)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        mount_root.join(name)
    }

    /// Mounts the export (unless it is mounted there already); returns the mount point
    /// and whether it was mounted now.
    pub fn mount(&self, mount_root: &Path) -> Result<(PathBuf, bool), NfsError> {
        if !self.export.starts_with('/') {
            return Err(NfsError::RelativeExport(self.export.clone()));
        }
        let version = self.version()?;
        let mount_point = self.mount_point(mount_root);
        if is_mount_point(&mount_point) {
            return Ok((mount_point, false));
        }
        let addr = self.reachable()?;
        std::fs::create_dir_all(&mount_point).map_err(|cause| NfsError::MountPoint {
            path: mount_point.clone(),
            cause,
        })?;
        let ip = match addr.ip() {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        let source = format!("{ip}:{}", self.export);
        let data = format!(
            "vers={version},addr={},port={},proto=tcp,hard,timeo=600,retrans=2",
            addr.ip(),
            addr.port()
        );
        let flags = MsFlags::MS_NOATIME | MsFlags::MS_NODEV | MsFlags::MS_NOSUID;
        // A server that accepts connections but does not speak NFS can hold mount(2) for
        // minutes: wait for it on a thread of its own, and at most MOUNT_TIMEOUT.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let target = mount_point.clone();
        std::thread::spawn(move || {
            let done = nix::mount::mount(
                Some(source.as_str()),
                &target,
                Some("nfs4"),
                flags,
                Some(data.as_str()),
            );
            let _ = tx.send(done);
        });
        match rx.recv_timeout(MOUNT_TIMEOUT) {
            Ok(Ok(())) => Ok((mount_point, true)),
            Ok(Err(errno)) => Err(NfsError::Mount {
                source_name: self.source_name(),
                mount_point,
                errno,
            }),
            Err(_) => Err(NfsError::MountTimeout {
                source_name: self.source_name(),
            }),
        }
    }

    /// Unmounts the export if the appliance mounted it (lazily: a server that went away
    /// cannot make this hang); not mounted is not an error.
    pub fn unmount(&self, mount_root: &Path) {
        let mount_point = self.mount_point(mount_root);
        if is_mount_point(&mount_point) {
            let _ = nix::mount::umount2(&mount_point, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Whether something is mounted on `path` (per this system's mount table).
fn is_mount_point(path: &Path) -> bool {
    snapcore::Scanner::system().mount_at(path).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(server: &str, export: &str) -> NfsConfig {
        NfsConfig {
            server: server.to_owned(),
            export: export.to_owned(),
            port: None,
            version: None,
        }
    }

    #[test]
    fn bad_settings_fail_before_any_mount() {
        let root = Path::new("/nonexistent-mount-root");
        let e = cfg("10.0.2.2", "backups").mount(root).unwrap_err();
        assert_eq!(e.code(), "invalid_argument");
        assert!(e.to_string().contains("must be absolute"), "{e}");
        let mut c = cfg("10.0.2.2", "/backups");
        c.version = Some("3".into());
        assert!(c
            .mount(root)
            .unwrap_err()
            .to_string()
            .contains("not one of"));
        // Nothing listens on this port: refused at once, named with the address.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = cfg("127.0.0.1", "/backups");
        c.port = Some(port);
        let e = c.mount(root).unwrap_err();
        assert_eq!(e.code(), "target_unusable");
        assert!(
            e.to_string()
                .starts_with(&format!("cannot reach the NFS server 127.0.0.1:{port}: ")),
            "{e}"
        );
        assert_eq!(
            cfg("10.0.2.2", "/a b").mount_point(Path::new("/run/t")),
            PathBuf::from("/run/t/nfs_10.0.2.2__a_b")
        );
    }
}

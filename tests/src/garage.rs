//! A real S3 server for the tests: Garage 2.5.0 (installed by `scripts/install-deps.sh`),
//! single node, listening on 127.0.0.1, with one bucket and one key made at start.
//! Killed when dropped. Used by the s3target crate's tests and by the VM suites (the guest
//! reaches the host's 127.0.0.1 as 10.0.2.2).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::qemu::free_port;

/// The access key every server is started with.
pub const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
/// Its secret.
pub const SECRET_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000001";
/// The region Garage signs with.
pub const REGION: &str = "us-east-1";

/// A running Garage.
pub struct Garage {
    child: Child,
    /// The S3 API port on 127.0.0.1.
    pub port: u16,
    /// The bucket made at start.
    pub bucket: String,
    /// Its data and metadata directories, its configuration and `garage.log`.
    pub dir: PathBuf,
}

/// The garage binary: `$GARAGE`, `~/.cargo/bin/garage` or `garage` on PATH.
fn garage_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GARAGE") {
        return PathBuf::from(p);
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/bin/garage"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("garage"))
}

impl Garage {
    /// Starts a server keeping its files in `dir` (emptied first) with the bucket
    /// `bucket`; panics with what to do when Garage 2.5.0 is not installed.
    pub fn start(dir: &Path, bucket: &str) -> Garage {
        let bin = garage_bin();
        let version = Command::new(&bin).arg("--version").output();
        assert!(
            version.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("2.5.0")),
            "Garage 2.5.0 is not installed ({}): run scripts/install-deps.sh",
            bin.display()
        );
        let _ = std::fs::remove_dir_all(dir.join("meta"));
        let _ = std::fs::remove_dir_all(dir.join("data"));
        std::fs::create_dir_all(dir).expect("garage directory");
        let (port, rpc) = (free_port(), free_port());
        let d = dir.display();
        let conf = format!(
            "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
             replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_secret = \"{}\"\n[s3_api]\ns3_region = \"{REGION}\"\n\
             api_bind_addr = \"127.0.0.1:{port}\"\nroot_domain = \".s3.localhost\"\n",
            "ab".repeat(32)
        );
        let conf_path = dir.join("garage.toml");
        std::fs::write(&conf_path, conf).expect("garage.toml");
        let log = std::fs::File::create(dir.join("garage.log")).expect("garage.log");
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf_path)
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", ACCESS_KEY)
            .env("GARAGE_DEFAULT_SECRET_KEY", SECRET_KEY)
            .env("GARAGE_DEFAULT_BUCKET", bucket)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start garage");
        let garage = Garage {
            child,
            port,
            bucket: bucket.to_owned(),
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "garage did not listen on 127.0.0.1:{port}; see {}/garage.log",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        garage
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

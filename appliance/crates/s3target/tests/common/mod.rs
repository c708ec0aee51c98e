//! A real Garage 2.5.0 server on 127.0.0.1, started per test in a temporary directory.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use s3target::S3Config;

pub const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
pub const SECRET_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000001";
pub const BUCKET: &str = "testbkt";

pub struct Garage {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// The garage binary: `$GARAGE`, `~/.cargo/bin/garage` or `garage` on PATH.
fn garage_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GARAGE") {
        return PathBuf::from(p);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = PathBuf::from(home).join(".cargo/bin/garage");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("garage")
}

impl Garage {
    pub fn start() -> Garage {
        let bin = garage_bin();
        let version = Command::new(&bin).arg("--version").output();
        match version {
            Ok(o) if String::from_utf8_lossy(&o.stdout).contains("2.5.0") => {}
            _ => panic!(
                "Garage 2.5.0 is not installed ({}): run scripts/install-deps.sh",
                bin.display()
            ),
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let rpc = free_port();
        let d = dir.path().display();
        let conf = format!(
            "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
             replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_secret = \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\n\
             [s3_api]\ns3_region = \"us-east-1\"\napi_bind_addr = \"127.0.0.1:{port}\"\n\
             root_domain = \".s3.localhost\"\n"
        );
        let conf_path = dir.path().join("garage.toml");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("garage.log")).unwrap();
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf_path)
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", ACCESS_KEY)
            .env("GARAGE_DEFAULT_SECRET_KEY", SECRET_KEY)
            .env("GARAGE_DEFAULT_BUCKET", BUCKET)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start garage");
        let g = Garage { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "garage did not listen on 127.0.0.1:{port}; see its log"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        g
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn config(&self, prefix: &str) -> S3Config {
        S3Config {
            endpoint: self.endpoint(),
            region: "us-east-1".into(),
            bucket: BUCKET.into(),
            prefix: prefix.into(),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            path_style: true,
            verify_tls: true,
            ca_cert_pem: None,
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic incompressible bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

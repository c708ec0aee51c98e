//! A real Garage 2.5.0 server on 127.0.0.1 (the harness's launcher), started per test in a
//! temporary directory.
#![allow(dead_code)]

use s3target::S3Config;

/// A Garage of its own in a temporary directory, for one test.
pub struct Garage {
    server: appliance_tests::garage::Garage,
    _dir: tempfile::TempDir,
}

impl Garage {
    pub fn start() -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let server = appliance_tests::garage::Garage::start(dir.path(), "testbkt");
        Garage { server, _dir: dir }
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    pub fn config(&self, prefix: &str) -> S3Config {
        use appliance_tests::garage::{ACCESS_KEY, REGION, SECRET_KEY};
        S3Config {
            endpoint: self.endpoint(),
            region: REGION.into(),
            bucket: self.server.bucket.clone(),
            prefix: prefix.into(),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            path_style: true,
            verify_tls: true,
            ca_cert_pem: None,
        }
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

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

pub use appliance_tests::data::noise;

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

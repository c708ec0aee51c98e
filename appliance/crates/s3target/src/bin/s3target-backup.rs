//! Test and benchmark helper: a full backup of a file into an S3 repository.
//!
//! `s3target-backup <image file> <chunk size>`, configured by the environment:
//! `S3_ENDPOINT`, `S3_REGION`, `S3_BUCKET`, `S3_PREFIX`, `S3_ACCESS_KEY`, `S3_SECRET_KEY`;
//! `S3_READ_DELAY_MS` pauses after every chunk read (so a test can interrupt the upload).
//! Prints the backup id on success.

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use repo::{BackupRequest, ChunkSize, DiskIdentity, ImageSource, InitOptions, JobCtl, Repository};
use s3target::{S3Config, S3Target};

struct Slow {
    file: File,
    delay: Duration,
}

impl ImageSource for Slow {
    fn size(&self) -> io::Result<u64> {
        self.file.size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::thread::sleep(self.delay);
        self.file.read_exact_at(buf, offset)
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: s3target-backup IMAGE CHUNK_SIZE (S3_* variables configure the target)");
        std::process::exit(2);
    }
    let cfg = S3Config {
        endpoint: env("S3_ENDPOINT"),
        region: env("S3_REGION"),
        bucket: env("S3_BUCKET"),
        prefix: env("S3_PREFIX"),
        access_key: env("S3_ACCESS_KEY"),
        secret_key: env("S3_SECRET_KEY"),
        path_style: true,
        verify_tls: true,
        ca_cert_pem: None,
    };
    let run = || -> Result<String, Box<dyn std::error::Error>> {
        let chunk: u32 = args[2].parse()?;
        let target = Arc::new(S3Target::connect(&cfg)?);
        let opts = InitOptions {
            chunk_size: ChunkSize::new(chunk)?,
            ..InitOptions::default()
        };
        let repo = Repository::open_or_init(target, opts)?;
        let delay = Duration::from_millis(env("S3_READ_DELAY_MS").parse().unwrap_or(0));
        let src = Slow {
            file: File::open(&args[1])?,
            delay,
        };
        let req = BackupRequest::new(DiskIdentity::default());
        let res = repo.backup_full(&src, &req, &JobCtl::new())?;
        Ok(res.id().to_string())
    };
    match run() {
        Ok(id) => println!("{id}"),
        Err(e) => {
            eprintln!("s3target-backup: {e}");
            std::process::exit(1);
        }
    }
}

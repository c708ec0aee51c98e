//! The server against Debian's real NBD clients (libnbd-bin's nbdinfo and nbdcopy,
//! qemu-img), over TCP on 127.0.0.1, with and without TLS. Skipped when the clients are
//! not installed.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use nbd::{Backend, Catalog, Export, FileBackend, Refusal, ServerConfig, TlsAcceptor};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// `disk` read-write and `disk-ro` read-only, both over `file`; `secure` needs TLS;
/// `nobody` admits no one.
struct Files {
    file: PathBuf,
}

impl Catalog for Files {
    fn list(&self, _peer: IpAddr, tls: bool) -> Vec<(String, String)> {
        let mut names = vec!["disk", "disk-ro"];
        if tls {
            names.push("secure");
        }
        names
            .into_iter()
            .map(|n| (n.to_owned(), format!("test export {n}")))
            .collect()
    }

    fn open(&self, name: &str, peer: IpAddr, tls: bool) -> Result<Export, Refusal> {
        let read_only = match name {
            "disk" | "secure" => false,
            "disk-ro" => true,
            "nobody" => return Err(Refusal::NotAllowed(peer)),
            _ => return Err(Refusal::Unknown),
        };
        if name == "secure" && !tls {
            return Err(Refusal::TlsRequired);
        }
        let backend = FileBackend::open(&self.file, read_only)
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        Ok(Export {
            name: name.to_owned(),
            description: format!("test export {name}"),
            backend: Arc::new(backend) as Arc<dyn Backend>,
        })
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("starting a client");
    eprintln!(
        "{:?}: {}\n{}{}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A CA (written to `dir/ca-cert.pem`, the name qemu and libnbd look for) and a server
/// configuration with a certificate it signed for 127.0.0.1.
fn tls(dir: &Path) -> Arc<rustls::ServerConfig> {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test NBD CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca-cert.pem"), ca.pem()).unwrap();
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "test NBD server");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    Arc::new(config)
}

/// Starts the server on a free port of 127.0.0.1 in a thread of its own.
fn start(catalog: Files, tls: Arc<rustls::ServerConfig>) -> SocketAddr {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let (_stop, stop_rx) = tokio::sync::watch::channel(false);
            let cfg = ServerConfig {
                catalog: Arc::new(catalog),
                tls: Some(TlsAcceptor::from(tls)),
            };
            nbd::run(listener, cfg, stop_rx, Arc::new(|_, _| {})).await;
        });
    });
    addr
}

#[test]
fn libnbd_and_qemu_read_write_and_are_refused_where_they_should_be() {
    if !have("nbdcopy") || !have("nbdinfo") || !have("qemu-img") {
        eprintln!("skipping: libnbd-bin or qemu-utils is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    let size = 8 << 20;
    std::fs::write(&disk, vec![0u8; size]).unwrap();
    let data: Vec<u8> = (0..size as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let source = dir.path().join("source.img");
    std::fs::write(&source, &data).unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let addr = start(Files { file: disk.clone() }, tls(&certs));
    let port = addr.port();
    let plain = |name: &str| format!("nbd://127.0.0.1:{port}/{name}");
    let secure = |name: &str| {
        format!(
            "nbds://127.0.0.1:{port}/{name}?tls-certificates={}",
            certs.display()
        )
    };

    // The list shows every export a plain client may see.
    let out = run(Command::new("nbdinfo").arg("--list").arg(plain("")));
    assert!(out.status.success());
    assert!(text(&out).contains("export=\"disk-ro\""), "{}", text(&out));

    // nbdcopy writes the whole image over TLS; the file has it byte for byte.
    let out = run(Command::new("nbdcopy").arg(&source).arg(secure("secure")));
    assert!(out.status.success());
    assert!(
        std::fs::read(&disk).unwrap() == data,
        "the written file differs"
    );

    // qemu-img compares the read-only export with the source (plain) and reads it over
    // TLS with x509 credentials.
    let out = run(Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "raw"])
        .arg(plain("disk-ro"))
        .arg(&source));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Images are identical"));
    let out = run(Command::new("qemu-img")
        .arg("compare")
        .arg("--object")
        .arg(format!(
            "tls-creds-x509,id=tls0,endpoint=client,dir={}",
            certs.display()
        ))
        .arg("--image-opts")
        .arg(format!(
            "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={port},export=secure,tls-creds=tls0"
        ))
        .arg(format!("driver=raw,file.driver=file,file.filename={}", source.display())));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Images are identical"));

    // A read-only export refuses writes; a TLS export refuses a plain client; an export
    // the client is not allowed to use says so. libnbd reports a refusal as an errno and
    // shows the server's reason only in its debug output.
    let out = run(Command::new("nbdcopy").arg(&source).arg(plain("disk-ro")));
    assert!(!out.status.success());
    assert!(text(&out).contains("read-only"), "{}", text(&out));
    let out = run(Command::new("nbdinfo")
        .env("LIBNBD_DEBUG", "1")
        .arg(plain("secure")));
    assert!(!out.status.success());
    assert!(
        text(&out).contains("this export requires TLS"),
        "{}",
        text(&out)
    );
    let out = run(Command::new("nbdinfo")
        .env("LIBNBD_DEBUG", "1")
        .arg(plain("nobody")));
    assert!(!out.status.success());
    assert!(
        text(&out).contains("client 127.0.0.1 is not allowed to use this export"),
        "{}",
        text(&out)
    );
    let out = run(Command::new("nbdinfo").arg(plain("no-such-export")));
    assert!(!out.status.success());
    assert!(text(&out).contains("No such file"), "{}", text(&out));
}

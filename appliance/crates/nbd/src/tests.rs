//! The handshake and the commands over an in-memory pipe, with a minimal client written
//! from the protocol document.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

use crate::proto::*;
use crate::{Backend, Catalog, Export, Refusal, ServerConfig};

/// A RAM disk.
struct Mem {
    data: Mutex<Vec<u8>>,
    read_only: bool,
    flushes: Mutex<u32>,
}

impl Backend for Mem {
    fn size(&self) -> u64 {
        self.data.lock().unwrap().len() as u64
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let d = self.data.lock().unwrap();
        buf.copy_from_slice(&d[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut d = self.data.lock().unwrap();
        d[offset as usize..offset as usize + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        *self.flushes.lock().unwrap() += 1;
        Ok(())
    }
    fn trim(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        let mut d = self.data.lock().unwrap();
        d[offset as usize..(offset + len) as usize].fill(0);
        Ok(())
    }
}

const ALLOWED: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2));
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 9));

/// Exports `rw` (read-write, no TLS), `ro` (read-only, no TLS), `secure` (TLS), all
/// allowed for [`ALLOWED`] only.
struct TestCatalog {
    rw: Arc<Mem>,
    ro: Arc<Mem>,
}

impl Catalog for TestCatalog {
    fn list(&self, peer: IpAddr, _tls: bool) -> Vec<(String, String)> {
        if peer != ALLOWED {
            return Vec::new();
        }
        ["rw", "ro", "secure"]
            .iter()
            .map(|n| (n.to_string(), format!("test export {n}")))
            .collect()
    }
    fn open(&self, name: &str, peer: IpAddr, tls: bool) -> Result<Export, Refusal> {
        let (backend, needs_tls): (Arc<dyn Backend>, bool) = match name {
            "rw" => (self.rw.clone(), false),
            "ro" => (self.ro.clone(), false),
            "secure" => (self.rw.clone(), true),
            _ => return Err(Refusal::Unknown),
        };
        if peer != ALLOWED {
            return Err(Refusal::NotAllowed(peer));
        }
        if needs_tls && !tls {
            return Err(Refusal::TlsRequired);
        }
        Ok(Export {
            name: name.to_owned(),
            description: format!("test export {name}"),
            backend,
        })
    }
}

fn mem(size: usize, read_only: bool) -> Arc<Mem> {
    let data = (0..size).map(|i| (i % 251) as u8).collect();
    Arc::new(Mem {
        data: Mutex::new(data),
        read_only,
        flushes: Mutex::new(0),
    })
}

struct Setup {
    rw: Arc<Mem>,
    cfg: ServerConfig,
}

fn setup(tls: Option<tokio_rustls::TlsAcceptor>) -> Setup {
    let rw = mem(1 << 20, false);
    let ro = mem(1 << 16, true);
    let catalog = Arc::new(TestCatalog { rw: rw.clone(), ro });
    Setup {
        rw,
        cfg: ServerConfig { catalog, tls },
    }
}

/// Starts the server on one end of a pipe for `peer`; returns the client end.
fn connect(cfg: &ServerConfig, peer: IpAddr) -> (DuplexStream, tokio::task::JoinHandle<String>) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let cfg = cfg.clone();
    let task = tokio::spawn(async move {
        match crate::serve_connection(server, SocketAddr::new(peer, 40000), &cfg).await {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        }
    });
    (client, task)
}

/// Reads the greeting and sends the client flags.
async fn greet<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) {
    assert_eq!(s.read_u64().await.unwrap(), NBDMAGIC);
    assert_eq!(s.read_u64().await.unwrap(), IHAVEOPT);
    assert_eq!(
        s.read_u16().await.unwrap(),
        FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES
    );
    s.write_u32(CLIENT_FIXED_NEWSTYLE | CLIENT_NO_ZEROES)
        .await
        .unwrap();
}

async fn option<S: AsyncWrite + Unpin>(s: &mut S, opt: u32, data: &[u8]) {
    s.write_u64(IHAVEOPT).await.unwrap();
    s.write_u32(opt).await.unwrap();
    s.write_u32(data.len() as u32).await.unwrap();
    s.write_all(data).await.unwrap();
}

/// (reply type, data) of one option reply to `opt`.
async fn option_reply<S: AsyncRead + Unpin>(s: &mut S, opt: u32) -> (u32, Vec<u8>) {
    assert_eq!(s.read_u64().await.unwrap(), REPLY_MAGIC);
    assert_eq!(s.read_u32().await.unwrap(), opt);
    let kind = s.read_u32().await.unwrap();
    let len = s.read_u32().await.unwrap();
    let mut data = vec![0; len as usize];
    s.read_exact(&mut data).await.unwrap();
    (kind, data)
}

fn go_data(name: &str, infos: &[u16]) -> Vec<u8> {
    let mut d = (name.len() as u32).to_be_bytes().to_vec();
    d.extend_from_slice(name.as_bytes());
    d.extend_from_slice(&(infos.len() as u16).to_be_bytes());
    for i in infos {
        d.extend_from_slice(&i.to_be_bytes());
    }
    d
}

/// GO on `name`; returns (size, transmission flags) or the error reply.
async fn go<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    name: &str,
) -> Result<(u64, u16), (u32, String)> {
    option(
        s,
        OPT_GO,
        &go_data(name, &[INFO_BLOCK_SIZE, INFO_DESCRIPTION]),
    )
    .await;
    let mut export = None;
    loop {
        let (kind, data) = option_reply(s, OPT_GO).await;
        match kind {
            REP_INFO => {
                let t = u16::from_be_bytes([data[0], data[1]]);
                if t == INFO_EXPORT {
                    let size = u64::from_be_bytes(data[2..10].try_into().unwrap());
                    let flags = u16::from_be_bytes([data[10], data[11]]);
                    export = Some((size, flags));
                } else if t == INFO_BLOCK_SIZE {
                    assert_eq!(
                        u32::from_be_bytes(data[10..14].try_into().unwrap()),
                        MAX_PAYLOAD
                    );
                }
            }
            REP_ACK => return Ok(export.expect("NBD_INFO_EXPORT before the ACK")),
            err => return Err((err, String::from_utf8(data).unwrap())),
        }
    }
}

async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    cmd: u16,
    flags: u16,
    offset: u64,
    len: u32,
    payload: &[u8],
) -> (u32, Vec<u8>) {
    static COOKIE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let cookie = COOKIE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    s.write_u32(REQUEST_MAGIC).await.unwrap();
    s.write_u16(flags).await.unwrap();
    s.write_u16(cmd).await.unwrap();
    s.write_u64(cookie).await.unwrap();
    s.write_u64(offset).await.unwrap();
    s.write_u32(len).await.unwrap();
    s.write_all(payload).await.unwrap();
    assert_eq!(s.read_u32().await.unwrap(), SIMPLE_REPLY_MAGIC);
    let error = s.read_u32().await.unwrap();
    assert_eq!(s.read_u64().await.unwrap(), cookie);
    let mut data = Vec::new();
    if error == 0 && cmd == CMD_READ {
        data = vec![0; len as usize];
        s.read_exact(&mut data).await.unwrap();
    }
    (error, data)
}

#[tokio::test]
async fn go_read_write_flush_zeroes_disconnect() {
    let st = setup(None);
    let (mut c, task) = connect(&st.cfg, ALLOWED);
    greet(&mut c).await;
    let (size, flags) = go(&mut c, "rw").await.unwrap();
    assert_eq!(size, 1 << 20);
    assert_eq!(flags & TFLAG_READ_ONLY, 0);
    assert_ne!(flags & TFLAG_SEND_WRITE_ZEROES, 0);
    assert_ne!(flags & TFLAG_SEND_FUA, 0);

    let (e, data) = request(&mut c, CMD_READ, 0, 1000, 16, &[]).await;
    assert_eq!(e, 0);
    assert_eq!(
        data,
        (1000..1016).map(|i| (i % 251) as u8).collect::<Vec<_>>()
    );

    let pattern = vec![0xA5u8; 8192];
    let (e, _) = request(&mut c, CMD_WRITE, CMD_FLAG_FUA, 4096, 8192, &pattern).await;
    assert_eq!(e, 0);
    assert_eq!(*st.rw.flushes.lock().unwrap(), 1, "FUA flushes");
    let (e, data) = request(&mut c, CMD_READ, 0, 4096, 8192, &[]).await;
    assert_eq!((e, data), (0, pattern));

    let (e, _) = request(&mut c, CMD_WRITE_ZEROES, 0, 4096, 4096, &[]).await;
    assert_eq!(e, 0);
    let (e, data) = request(&mut c, CMD_READ, 0, 4096, 4096, &[]).await;
    assert_eq!((e, data), (0, vec![0u8; 4096]));
    let (e, _) = request(&mut c, CMD_TRIM, 0, 0, 4096, &[]).await;
    assert_eq!(e, 0);
    let (e, _) = request(&mut c, CMD_FLUSH, 0, 0, 0, &[]).await;
    assert_eq!(e, 0);
    assert_eq!(*st.rw.flushes.lock().unwrap(), 2);

    // Out of range: EINVAL for reads, ENOSPC for writes; the connection stays usable.
    let (e, _) = request(&mut c, CMD_READ, 0, (1 << 20) - 8, 16, &[]).await;
    assert_eq!(e, EINVAL);
    let (e, _) = request(&mut c, CMD_WRITE, 0, (1 << 20) - 8, 16, &[1; 16]).await;
    assert_eq!(e, ENOSPC);
    let (e, _) = request(&mut c, CMD_WRITE_ZEROES, 0, u64::MAX - 1, 16, &[]).await;
    assert_eq!(e, ENOSPC);
    let (e, _) = request(&mut c, 77, 0, 0, 0, &[]).await;
    assert_eq!(e, EINVAL, "unknown command");
    let (e, _) = request(&mut c, CMD_READ, 0, 0, 4, &[]).await;
    assert_eq!(e, 0);

    // DISC: the server closes without a reply.
    c.write_u32(REQUEST_MAGIC).await.unwrap();
    c.write_u16(0).await.unwrap();
    c.write_u16(CMD_DISC).await.unwrap();
    c.write_all(&[0u8; 20]).await.unwrap();
    assert_eq!(task.await.unwrap(), "ok");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn read_only_export_refuses_writes_with_eperm() {
    let st = setup(None);
    let (mut c, _task) = connect(&st.cfg, ALLOWED);
    greet(&mut c).await;
    let (size, flags) = go(&mut c, "ro").await.unwrap();
    assert_eq!(size, 1 << 16);
    assert_ne!(flags & TFLAG_READ_ONLY, 0);
    assert_eq!(flags & TFLAG_SEND_TRIM, 0);
    let (e, _) = request(&mut c, CMD_WRITE, 0, 0, 4, &[9; 4]).await;
    assert_eq!(e, EPERM);
    let (e, _) = request(&mut c, CMD_WRITE_ZEROES, 0, 0, 4, &[]).await;
    assert_eq!(e, EPERM);
    let (e, _) = request(&mut c, CMD_TRIM, 0, 0, 4, &[]).await;
    assert_eq!(e, EPERM);
    let (e, data) = request(&mut c, CMD_READ, 0, 0, 4, &[]).await;
    assert_eq!((e, data), (0, vec![0, 1, 2, 3]), "nothing was written");
}

#[tokio::test]
async fn list_info_and_refusals() {
    let st = setup(None);
    let (mut c, _task) = connect(&st.cfg, ALLOWED);
    greet(&mut c).await;
    option(&mut c, OPT_LIST, &[]).await;
    let mut names = Vec::new();
    loop {
        let (kind, data) = option_reply(&mut c, OPT_LIST).await;
        if kind == REP_ACK {
            break;
        }
        assert_eq!(kind, REP_SERVER);
        let n = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
        names.push(String::from_utf8(data[4..4 + n].to_vec()).unwrap());
    }
    assert_eq!(names, ["rw", "ro", "secure"]);

    option(&mut c, OPT_INFO, &go_data("ro", &[])).await;
    let (kind, data) = option_reply(&mut c, OPT_INFO).await;
    assert_eq!(
        (kind, u16::from_be_bytes([data[0], data[1]])),
        (REP_INFO, INFO_EXPORT)
    );
    assert_eq!(option_reply(&mut c, OPT_INFO).await.0, REP_ACK);

    assert_eq!(go(&mut c, "nope").await.unwrap_err().0, REP_ERR_UNKNOWN);
    let (kind, text) = go(&mut c, "secure").await.unwrap_err();
    assert_eq!(kind, REP_ERR_TLS_REQD);
    assert!(text.contains("requires TLS"), "{text}");
    // STRUCTURED_REPLY (8) is not offered; negotiation goes on.
    option(&mut c, 8, &[]).await;
    assert_eq!(option_reply(&mut c, 8).await.0, REP_ERR_UNSUP);
    // No TLS configured: STARTTLS is refused by policy.
    option(&mut c, OPT_STARTTLS, &[]).await;
    assert_eq!(option_reply(&mut c, OPT_STARTTLS).await.0, REP_ERR_POLICY);
    assert!(go(&mut c, "rw").await.is_ok());
}

#[tokio::test]
async fn client_not_on_the_allow_list_is_refused() {
    let st = setup(None);
    let (mut c, _task) = connect(&st.cfg, OTHER);
    greet(&mut c).await;
    option(&mut c, OPT_LIST, &[]).await;
    assert_eq!(
        option_reply(&mut c, OPT_LIST).await.0,
        REP_ACK,
        "lists nothing"
    );
    let (kind, text) = go(&mut c, "rw").await.unwrap_err();
    assert_eq!(kind, REP_ERR_POLICY);
    assert!(text.contains("10.0.2.9 is not allowed"), "{text}");

    // EXPORT_NAME has no error reply: the server closes the connection.
    let (mut c, task) = connect(&st.cfg, OTHER);
    greet(&mut c).await;
    option(&mut c, OPT_EXPORT_NAME, b"rw").await;
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert!(task.await.unwrap().contains("not allowed"));
}

#[tokio::test]
async fn export_name_without_no_zeroes_pads() {
    let st = setup(None);
    let (mut c, _task) = connect(&st.cfg, ALLOWED);
    c.read_exact(&mut [0u8; 18]).await.unwrap();
    c.write_u32(CLIENT_FIXED_NEWSTYLE).await.unwrap();
    option(&mut c, OPT_EXPORT_NAME, b"ro").await;
    assert_eq!(c.read_u64().await.unwrap(), 1 << 16);
    let flags = c.read_u16().await.unwrap();
    assert_ne!(flags & TFLAG_READ_ONLY, 0);
    let mut zeroes = [1u8; 124];
    c.read_exact(&mut zeroes).await.unwrap();
    assert_eq!(zeroes, [0u8; 124]);
    let (e, data) = request(&mut c, CMD_READ, 0, 250, 3, &[]).await;
    assert_eq!((e, data), (0, vec![250, 0, 1]));
}

#[tokio::test]
async fn old_style_client_is_refused() {
    let st = setup(None);
    let (mut c, task) = connect(&st.cfg, ALLOWED);
    c.read_exact(&mut [0u8; 18]).await.unwrap();
    c.write_u32(0).await.unwrap();
    assert!(task.await.unwrap().contains("fixed newstyle"));
}

/// A CA, a server certificate for `localhost` signed by it, and the acceptor.
fn tls_pair() -> (tokio_rustls::TlsAcceptor, rustls::RootCertStore) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone(), ca.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(server)), roots)
}

#[tokio::test]
async fn starttls_then_go_on_a_tls_export() {
    let (acceptor, roots) = tls_pair();
    let st = setup(Some(acceptor));
    let (mut c, _task) = connect(&st.cfg, ALLOWED);
    greet(&mut c).await;
    option(&mut c, OPT_STARTTLS, &[]).await;
    assert_eq!(option_reply(&mut c, OPT_STARTTLS).await.0, REP_ACK);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut t = connector.connect(name, c).await.expect("TLS handshake");
    option(&mut t, OPT_STARTTLS, &[]).await;
    assert_eq!(option_reply(&mut t, OPT_STARTTLS).await.0, REP_ERR_INVALID);
    let (size, _) = go(&mut t, "secure").await.unwrap();
    assert_eq!(size, 1 << 20);
    let (e, _) = request(&mut t, CMD_WRITE, 0, 0, 4, b"tls!").await;
    assert_eq!(e, 0);
    assert_eq!(&st.rw.data.lock().unwrap()[0..4], b"tls!");
}

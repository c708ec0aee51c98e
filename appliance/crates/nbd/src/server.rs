//! The server side of one connection: fixed newstyle negotiation (with STARTTLS), then
//! transmission with simple replies; and [`run`], the accept loop.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::backend::Backend;
use crate::proto::*;

/// A byte stream the server talks over (TCP, TLS over TCP, an in-memory pipe in tests).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

type BoxStream = Pin<Box<dyn Stream>>;

/// An export the catalog opened for a client.
#[derive(Clone)]
pub struct Export {
    /// Its name.
    pub name: String,
    /// A line for people (`NBD_INFO_DESCRIPTION`, `nbdinfo --list`).
    pub description: String,
    /// What it serves.
    pub backend: Arc<dyn Backend>,
}

/// Why the catalog does not give a client an export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No export has that name (or the client may not know it exists).
    #[error("no such export")]
    Unknown,
    /// The client's address is not on the export's allow-list.
    #[error("client {0} is not allowed to use this export")]
    NotAllowed(IpAddr),
    /// The export needs TLS and the client did not start it.
    #[error("this export requires TLS")]
    TlsRequired,
    /// The export exists but cannot be opened now.
    #[error("export unavailable: {0}")]
    Unavailable(String),
}

/// The exports a server offers and who may use them.
pub trait Catalog: Send + Sync {
    /// (name, description) of the exports `peer` may see, over TLS or not.
    fn list(&self, peer: IpAddr, tls: bool) -> Vec<(String, String)>;
    /// Opens export `name` for `peer`.
    fn open(&self, name: &str, peer: IpAddr, tls: bool) -> Result<Export, Refusal>;
}

/// A connection that ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum NbdError {
    /// The socket failed or the peer went away.
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    /// The client broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The client asked for an export by `NBD_OPT_EXPORT_NAME` and was refused (the
    /// protocol has no error reply there: the connection is closed).
    #[error("export {name:?} refused: {refusal}")]
    Refused {
        /// The export asked for.
        name: String,
        /// Why.
        refusal: Refusal,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake: {0}")]
    Tls(io::Error),
}

/// How the server treats connections.
#[derive(Clone)]
pub struct ServerConfig {
    /// The exports.
    pub catalog: Arc<dyn Catalog>,
    /// TLS for `NBD_OPT_STARTTLS`; `None`: STARTTLS is refused.
    pub tls: Option<TlsAcceptor>,
}

fn protocol(what: impl Into<String>) -> NbdError {
    NbdError::Protocol(what.into())
}

async fn send_reply(s: &mut BoxStream, opt: u32, kind: u32, data: &[u8]) -> io::Result<()> {
    let mut msg = Vec::with_capacity(20 + data.len());
    msg.extend_from_slice(&REPLY_MAGIC.to_be_bytes());
    msg.extend_from_slice(&opt.to_be_bytes());
    msg.extend_from_slice(&kind.to_be_bytes());
    msg.extend_from_slice(&(data.len() as u32).to_be_bytes());
    msg.extend_from_slice(data);
    s.write_all(&msg).await?;
    s.flush().await
}

/// An error reply with a message for people.
async fn send_error(s: &mut BoxStream, opt: u32, kind: u32, message: &str) -> io::Result<()> {
    send_reply(s, opt, kind, message.as_bytes()).await
}

fn refusal_reply(r: &Refusal) -> u32 {
    match r {
        Refusal::Unknown => REP_ERR_UNKNOWN,
        Refusal::NotAllowed(_) => REP_ERR_POLICY,
        Refusal::TlsRequired => REP_ERR_TLS_REQD,
        Refusal::Unavailable(_) => REP_ERR_PLATFORM,
    }
}

fn transmission_flags(b: &dyn Backend) -> u16 {
    let mut f = TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH | TFLAG_SEND_FUA;
    if b.read_only() {
        f |= TFLAG_READ_ONLY;
    } else {
        f |= TFLAG_SEND_TRIM | TFLAG_SEND_WRITE_ZEROES;
    }
    f
}

/// The result of negotiation.
enum Negotiated {
    /// Go to transmission.
    Go(Export, BoxStream),
    /// The client ended negotiation.
    Done,
}

/// Serves one connection from `peer` until the client disconnects.
pub async fn serve_connection<S: Stream + 'static>(
    stream: S,
    peer: SocketAddr,
    cfg: &ServerConfig,
) -> Result<(), NbdError> {
    match negotiate(Box::pin(stream), peer.ip(), cfg).await? {
        Negotiated::Done => Ok(()),
        Negotiated::Go(export, stream) => transmit(stream, export.backend).await,
    }
}

async fn negotiate(
    mut s: BoxStream,
    peer: IpAddr,
    cfg: &ServerConfig,
) -> Result<Negotiated, NbdError> {
    let mut hello = Vec::with_capacity(18);
    hello.extend_from_slice(&NBDMAGIC.to_be_bytes());
    hello.extend_from_slice(&IHAVEOPT.to_be_bytes());
    hello.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    s.write_all(&hello).await?;
    s.flush().await?;
    let client_flags = s.read_u32().await?;
    if client_flags & CLIENT_FIXED_NEWSTYLE == 0 {
        return Err(protocol("client does not speak fixed newstyle"));
    }
    if client_flags & !(CLIENT_FIXED_NEWSTYLE | CLIENT_NO_ZEROES) != 0 {
        return Err(protocol(format!("unknown client flags {client_flags:#x}")));
    }
    let no_zeroes = client_flags & CLIENT_NO_ZEROES != 0;
    let mut tls = false;
    loop {
        let magic = match s.read_u64().await {
            Ok(m) => m,
            // A client that hangs up between options (nbdinfo --list does) is done.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Negotiated::Done),
            Err(e) => return Err(e.into()),
        };
        if magic != IHAVEOPT {
            return Err(protocol(format!("bad option magic {magic:#x}")));
        }
        let opt = s.read_u32().await?;
        let len = s.read_u32().await?;
        if len > MAX_OPTION {
            if opt == OPT_EXPORT_NAME {
                return Err(protocol("export name too long"));
            }
            // Skip the payload, then refuse.
            let mut left = u64::from(len);
            let mut sink = vec![0u8; 65536];
            while left > 0 {
                let n = left.min(sink.len() as u64) as usize;
                s.read_exact(&mut sink[..n]).await?;
                left -= n as u64;
            }
            send_error(&mut s, opt, REP_ERR_TOO_BIG, "option too long").await?;
            continue;
        }
        let mut data = vec![0u8; len as usize];
        s.read_exact(&mut data).await?;
        match opt {
            OPT_EXPORT_NAME => {
                let name = String::from_utf8_lossy(&data).into_owned();
                let export = open_export(cfg, &name, peer, tls)
                    .await
                    .map_err(|refusal| NbdError::Refused {
                        name: name.clone(),
                        refusal,
                    })?;
                let b = &export.backend;
                let mut msg = Vec::with_capacity(134);
                msg.extend_from_slice(&b.size().to_be_bytes());
                msg.extend_from_slice(&transmission_flags(b.as_ref()).to_be_bytes());
                if !no_zeroes {
                    msg.extend_from_slice(&[0u8; 124]);
                }
                s.write_all(&msg).await?;
                s.flush().await?;
                return Ok(Negotiated::Go(export, s));
            }
            OPT_ABORT => {
                // The client may close at once; the acknowledgement is best effort.
                let _ = send_reply(&mut s, opt, REP_ACK, &[]).await;
                return Ok(Negotiated::Done);
            }
            OPT_LIST => {
                if !data.is_empty() {
                    send_error(&mut s, opt, REP_ERR_INVALID, "LIST takes no data").await?;
                    continue;
                }
                let catalog = cfg.catalog.clone();
                let listed = tokio::task::spawn_blocking(move || catalog.list(peer, tls))
                    .await
                    .unwrap_or_default();
                for (name, description) in listed {
                    let mut entry = Vec::new();
                    entry.extend_from_slice(&(name.len() as u32).to_be_bytes());
                    entry.extend_from_slice(name.as_bytes());
                    entry.extend_from_slice(description.as_bytes());
                    send_reply(&mut s, opt, REP_SERVER, &entry).await?;
                }
                send_reply(&mut s, opt, REP_ACK, &[]).await?;
            }
            OPT_STARTTLS => {
                if !data.is_empty() {
                    send_error(&mut s, opt, REP_ERR_INVALID, "STARTTLS takes no data").await?;
                    continue;
                }
                if tls {
                    send_error(&mut s, opt, REP_ERR_INVALID, "TLS is already on").await?;
                    continue;
                }
                let Some(acceptor) = cfg.tls.clone() else {
                    send_error(&mut s, opt, REP_ERR_POLICY, "this server offers no TLS").await?;
                    continue;
                };
                send_reply(&mut s, opt, REP_ACK, &[]).await?;
                let upgraded = acceptor.accept(s).await.map_err(NbdError::Tls)?;
                s = Box::pin(upgraded);
                tls = true;
            }
            OPT_INFO | OPT_GO => {
                let Some((name, requests)) = parse_info(&data) else {
                    send_error(&mut s, opt, REP_ERR_INVALID, "malformed INFO/GO request").await?;
                    continue;
                };
                let export = match open_export(cfg, &name, peer, tls).await {
                    Ok(e) => e,
                    Err(refusal) => {
                        let text = match &refusal {
                            Refusal::Unknown => format!("no export named {name:?}"),
                            other => format!("export {name:?}: {other}"),
                        };
                        send_error(&mut s, opt, refusal_reply(&refusal), &text).await?;
                        continue;
                    }
                };
                send_info(&mut s, opt, &export, &requests).await?;
                send_reply(&mut s, opt, REP_ACK, &[]).await?;
                if opt == OPT_GO {
                    return Ok(Negotiated::Go(export, s));
                }
            }
            other => {
                send_error(&mut s, other, REP_ERR_UNSUP, "option not supported").await?;
            }
        }
    }
}

/// The export name and the info types asked for in an INFO/GO payload.
fn parse_info(data: &[u8]) -> Option<(String, Vec<u16>)> {
    let name_len = u32::from_be_bytes(data.get(0..4)?.try_into().ok()?) as usize;
    let name = data.get(4..4 + name_len)?;
    let rest = &data[4 + name_len..];
    let count = u16::from_be_bytes(rest.get(0..2)?.try_into().ok()?) as usize;
    let list = rest.get(2..)?;
    if list.len() != count * 2 {
        return None;
    }
    let requests = list
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    Some((String::from_utf8_lossy(name).into_owned(), requests))
}

async fn send_info(s: &mut BoxStream, opt: u32, e: &Export, requests: &[u16]) -> io::Result<()> {
    let b = e.backend.as_ref();
    let mut info = Vec::with_capacity(12);
    info.extend_from_slice(&INFO_EXPORT.to_be_bytes());
    info.extend_from_slice(&b.size().to_be_bytes());
    info.extend_from_slice(&transmission_flags(b).to_be_bytes());
    send_reply(s, opt, REP_INFO, &info).await?;
    for &r in requests {
        let mut info = r.to_be_bytes().to_vec();
        match r {
            INFO_NAME => info.extend_from_slice(e.name.as_bytes()),
            INFO_DESCRIPTION => info.extend_from_slice(e.description.as_bytes()),
            INFO_BLOCK_SIZE => {
                info.extend_from_slice(&1u32.to_be_bytes());
                info.extend_from_slice(&PREFERRED_BLOCK.to_be_bytes());
                info.extend_from_slice(&MAX_PAYLOAD.to_be_bytes());
            }
            _ => continue,
        }
        send_reply(s, opt, REP_INFO, &info).await?;
    }
    Ok(())
}

/// The NBD error number of a failed backend call.
fn errno_of(e: &io::Error) -> u32 {
    match e.raw_os_error().and_then(|n| u32::try_from(n).ok()) {
        Some(n @ (EPERM | EIO | ENOMEM | EINVAL | ENOSPC | EOVERFLOW | ENOTSUP | ESHUTDOWN)) => n,
        _ => EIO,
    }
}

async fn reply<W: AsyncWrite + Unpin>(
    w: &mut W,
    error: u32,
    cookie: u64,
    data: &[u8],
) -> io::Result<()> {
    let mut head = [0u8; 16];
    head[0..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    head[4..8].copy_from_slice(&error.to_be_bytes());
    head[8..16].copy_from_slice(&cookie.to_be_bytes());
    w.write_all(&head).await?;
    if error == 0 {
        w.write_all(data).await?;
    }
    w.flush().await
}

/// Asks the catalog for an export off the async threads (opening one may read a device or
/// a repository).
async fn open_export(
    cfg: &ServerConfig,
    name: &str,
    peer: IpAddr,
    tls: bool,
) -> Result<Export, Refusal> {
    let catalog = cfg.catalog.clone();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || catalog.open(&name, peer, tls))
        .await
        .unwrap_or_else(|_| Err(Refusal::Unavailable("opening the export failed".to_owned())))
}

/// Runs a blocking backend call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(io::Error::other("backend call panicked")))
}

async fn transmit(stream: BoxStream, backend: Arc<dyn Backend>) -> Result<(), NbdError> {
    let (r, w) = tokio::io::split(stream);
    let mut r = BufReader::with_capacity(256 << 10, r);
    let mut w = BufWriter::with_capacity(256 << 10, w);
    let size = backend.size();
    loop {
        let mut head = [0u8; 28];
        match r.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let magic = u32::from_be_bytes(head[0..4].try_into().expect("4 bytes"));
        if magic != REQUEST_MAGIC {
            return Err(protocol(format!("bad request magic {magic:#x}")));
        }
        let flags = u16::from_be_bytes([head[4], head[5]]);
        let cmd = u16::from_be_bytes([head[6], head[7]]);
        let cookie = u64::from_be_bytes(head[8..16].try_into().expect("8 bytes"));
        let offset = u64::from_be_bytes(head[16..24].try_into().expect("8 bytes"));
        let len = u32::from_be_bytes(head[24..28].try_into().expect("4 bytes"));
        let in_range = offset
            .checked_add(u64::from(len))
            .is_some_and(|end| end <= size);
        let fua = flags & CMD_FLAG_FUA != 0;
        // What to answer: an errno (0: success) and, for a read, the data.
        let (error, data) = match cmd {
            CMD_DISC => {
                w.flush().await?;
                return Ok(());
            }
            CMD_READ if len > MAX_PAYLOAD => (EOVERFLOW, Vec::new()),
            CMD_READ if !in_range => (EINVAL, Vec::new()),
            CMD_READ => {
                let b = backend.clone();
                let got = blocking(move || {
                    let mut buf = vec![0u8; len as usize];
                    b.read_at(&mut buf, offset).map(|()| buf)
                })
                .await;
                match got {
                    Ok(buf) => (0, buf),
                    Err(e) => (errno_of(&e), Vec::new()),
                }
            }
            CMD_WRITE if len > MAX_PAYLOAD => {
                // The payload cannot be skipped safely: end the connection.
                return Err(protocol(format!("write of {len} bytes is too large")));
            }
            CMD_WRITE => {
                let mut buf = vec![0u8; len as usize];
                r.read_exact(&mut buf).await?;
                match changing(backend.as_ref(), in_range) {
                    Some(error) => (error, Vec::new()),
                    None => {
                        let b = backend.clone();
                        let work = move || b.write_at(&buf, offset);
                        (run_checked(work, &backend, fua).await, Vec::new())
                    }
                }
            }
            CMD_FLUSH => {
                let b = backend.clone();
                (
                    run_checked(move || b.flush(), &backend, false).await,
                    Vec::new(),
                )
            }
            CMD_TRIM | CMD_WRITE_ZEROES => match changing(backend.as_ref(), in_range) {
                Some(error) => (error, Vec::new()),
                None => {
                    let b = backend.clone();
                    let len = u64::from(len);
                    let work = move || {
                        if cmd == CMD_WRITE_ZEROES {
                            b.write_zeroes(offset, len)
                        } else {
                            b.trim(offset, len)
                        }
                    };
                    (run_checked(work, &backend, fua).await, Vec::new())
                }
            },
            _ => (EINVAL, Vec::new()),
        };
        reply(&mut w, error, cookie, &data).await?;
    }
}

/// Why a write, trim or write-zeroes cannot be done at all: `EPERM` on a read-only export,
/// `ENOSPC` past the end. `None`: go ahead.
fn changing(backend: &dyn Backend, in_range: bool) -> Option<u32> {
    if backend.read_only() {
        Some(EPERM)
    } else if !in_range {
        Some(ENOSPC)
    } else {
        None
    }
}

/// Runs `work` off the async threads, then a flush when `fua`; the errno (0: success).
async fn run_checked(
    work: impl FnOnce() -> io::Result<()> + Send + 'static,
    backend: &Arc<dyn Backend>,
    fua: bool,
) -> u32 {
    let b = backend.clone();
    let done = blocking(move || {
        work()?;
        if fua {
            b.flush()?;
        }
        Ok(())
    })
    .await;
    done.err().map_or(0, |e| errno_of(&e))
}

/// Accepts connections on `listener` until `stop` turns true, then closes every open
/// connection. `on_end` hears how each connection ended (for logs).
pub async fn run(
    listener: TcpListener,
    cfg: ServerConfig,
    mut stop: watch::Receiver<bool>,
    on_end: Arc<dyn Fn(SocketAddr, Result<(), NbdError>) + Send + Sync>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => {
                let Ok((socket, peer)) = accepted else { continue };
                let _ = socket.set_nodelay(true);
                let cfg = cfg.clone();
                let on_end = on_end.clone();
                connections.spawn(async move {
                    let result = serve_connection(socket, peer, &cfg).await;
                    on_end(peer, result);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

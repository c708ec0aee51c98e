//! A [`repo::Target`] over an S3-compatible object store (AWS S3, Ceph RGW, MinIO, Garage).
//!
//! | trait operation | S3 request(s)                                                      |
//! |-----------------|--------------------------------------------------------------------|
//! | `put`           | one PUT, or a multipart upload above [`MULTIPART_THRESHOLD`]       |
//! | `flush`         | nothing: a completed PUT is durable                                |
//! | `get`           | GET                                                                |
//! | `exists`        | HEAD                                                               |
//! | `list`          | ListObjectsV2, every page                                          |
//! | `delete`        | DELETE (a missing object is not an error)                          |
//! | `lock`          | a lease object `<prefix>/lock` (owner + expiry), re-read after write |
//!
//! Requests are retried with exponential backoff on transient errors (5xx, timeouts). The
//! repository's backup pipeline calls `exists` before `put` from several worker threads, so
//! uploads run in parallel and chunks already present are not uploaded again: re-running an
//! interrupted backup uploads only what is missing.
//!
//! The trait is synchronous; the crate runs its own small tokio runtime and waits for each
//! request on the calling thread (from any thread, inside or outside another runtime).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    BackoffConfig, Certificate, ClientOptions, ObjectStore, PutPayload, RetryConfig, WriteMultipart,
};
use repo::{ObjectInfo, ObjectKey, RepoError, Target, TargetLock};
use serde::{Deserialize, Serialize};

/// How long [`S3Target::check`] waits for the endpoint's name to resolve.
pub const CHECK_RESOLVE: Duration = Duration::from_secs(10);
/// How long it waits for a TCP connection to one address.
pub const CHECK_CONNECT: Duration = Duration::from_secs(5);
/// How long it waits for the bucket listing, retries included.
pub const CHECK_LIST: Duration = Duration::from_secs(20);
/// Objects larger than this are uploaded as multipart uploads.
pub const MULTIPART_THRESHOLD: usize = 16 << 20;
/// Part size of multipart uploads.
pub const PART_SIZE: usize = 8 << 20;
/// Name of the lease object below the prefix.
pub const LOCK_NAME: &str = "lock";
/// How long a lease lasts unless renewed (the holder renews it every third of this).
pub const LEASE_TTL: Duration = Duration::from_secs(120);

/// Where the repository lives in an object store.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct S3Config {
    /// `https://s3.example.com` or `http://10.0.2.2:3900`.
    pub endpoint: String,
    /// Region the server expects in signatures (`us-east-1` unless the server says otherwise).
    pub region: String,
    /// Bucket name; the bucket must exist.
    pub bucket: String,
    /// Key prefix of this repository (`appliance-1`); empty for the bucket's root.
    #[serde(default)]
    pub prefix: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted style.
    #[serde(default = "yes")]
    pub path_style: bool,
    /// Verify the server's TLS certificate.
    #[serde(default = "yes")]
    pub verify_tls: bool,
    /// Extra CA certificate(s), PEM, trusted for the endpoint.
    #[serde(default)]
    pub ca_cert_pem: Option<String>,
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key", &self.access_key)
            .field("secret_key", &"***")
            .field("path_style", &self.path_style)
            .field("verify_tls", &self.verify_tls)
            .finish()
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The endpoint is not an `http://` or `https://` URL with a host.
    #[error("invalid S3 endpoint {0:?}: expected http://HOST[:PORT] or https://HOST[:PORT]")]
    Endpoint(String),
    /// A required field is empty.
    #[error("the S3 {0} is empty")]
    Empty(&'static str),
    /// The prefix has characters outside `[A-Za-z0-9._-/]` or empty components.
    #[error("invalid S3 prefix {0:?}: use /-separated names of A-Z a-z 0-9 . _ -")]
    Prefix(String),
    /// The CA certificate is not PEM.
    #[error("the CA certificate is not valid PEM: {0}")]
    CaCert(String),
    /// The client could not be built.
    #[error("cannot set up the S3 client: {0}")]
    Client(String),
}

impl From<ConfigError> for RepoError {
    fn from(e: ConfigError) -> Self {
        RepoError::invalid("S3 target", e.to_string())
    }
}

impl S3Config {
    /// `host:port` of the endpoint (the default port of the scheme when none is given).
    pub fn host_port(&self) -> Result<String, ConfigError> {
        let bad = || ConfigError::Endpoint(self.endpoint.clone());
        let (rest, default_port) = if let Some(r) = self.endpoint.strip_prefix("https://") {
            (r, 443)
        } else if let Some(r) = self.endpoint.strip_prefix("http://") {
            (r, 80)
        } else {
            return Err(bad());
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        let has_port = match authority.rfind(':') {
            Some(i) => !authority[i..].contains(']'),
            None => false,
        };
        Ok(if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:{default_port}")
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.host_port()?;
        for (what, v) in [
            ("region", &self.region),
            ("bucket", &self.bucket),
            ("access key", &self.access_key),
            ("secret key", &self.secret_key),
        ] {
            if v.trim().is_empty() {
                return Err(ConfigError::Empty(what));
            }
        }
        let p = self.prefix.trim_matches('/');
        if !p.is_empty() && ObjectKey::new(p).is_err() {
            return Err(ConfigError::Prefix(self.prefix.clone()));
        }
        Ok(())
    }
}

struct Inner {
    store: Arc<AmazonS3>,
    rt: Option<tokio::runtime::Runtime>,
    /// `""` or `"a/b/"`.
    prefix: String,
    describe: String,
    host_port: String,
    bucket: String,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Safe to drop from inside another runtime, unlike a plain drop.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A repository target in an S3 bucket, below a prefix.
#[derive(Clone)]
pub struct S3Target {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.inner.describe)
    }
}

impl S3Target {
    /// Builds the client without contacting the server.
    pub fn new(cfg: &S3Config) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let host_port = cfg.host_port()?;
        let mut opts = ClientOptions::new()
            .with_allow_http(cfg.endpoint.starts_with("http://"))
            .with_allow_invalid_certificates(!cfg.verify_tls)
            .with_connect_timeout(Duration::from_secs(10))
            .with_timeout(Duration::from_secs(300));
        if let Some(pem) = cfg.ca_cert_pem.as_deref().filter(|p| !p.trim().is_empty()) {
            for cert in Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| ConfigError::CaCert(e.to_string()))?
            {
                opts = opts.with_root_certificate(cert);
            }
        }
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(8),
                base: 2.0,
            },
            max_retries: 6,
            retry_timeout: Duration::from_secs(120),
        };
        let store = AmazonS3Builder::new()
            .with_endpoint(cfg.endpoint.trim_end_matches('/'))
            .with_region(&cfg.region)
            .with_bucket_name(&cfg.bucket)
            .with_access_key_id(&cfg.access_key)
            .with_secret_access_key(&cfg.secret_key)
            .with_virtual_hosted_style_request(!cfg.path_style)
            .with_client_options(opts)
            .with_retry(retry)
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3target")
            .enable_all()
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        let p = cfg.prefix.trim_matches('/');
        let prefix = if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        };
        let describe = format!(
            "s3 {}/{}/{}",
            cfg.endpoint.trim_end_matches('/'),
            cfg.bucket,
            p
        );
        Ok(S3Target {
            inner: Arc::new(Inner {
                store: Arc::new(store),
                rt: Some(rt),
                prefix,
                describe: describe.trim_end_matches('/').to_owned(),
                host_port,
                bucket: cfg.bucket.clone(),
            }),
        })
    }

    /// Builds the client and checks that the endpoint answers, the credentials are accepted
    /// and the bucket exists.
    pub fn connect(cfg: &S3Config) -> Result<Self, RepoError> {
        let t = S3Target::new(cfg)?;
        t.check()?;
        Ok(t)
    }

    /// Checks reachability (TCP), credentials and the bucket (one list request). Bounded
    /// in time, since a person waits for it: name resolution gets [`CHECK_RESOLVE`], each of
    /// the first two addresses [`CHECK_CONNECT`], the list request (retries included)
    /// [`CHECK_LIST`].
    pub fn check(&self) -> Result<(), RepoError> {
        let hp = self.inner.host_port.clone();
        let unreachable = |cause: String| RepoError::Io {
            context: format!("cannot reach the S3 endpoint {hp}: {cause}"),
            source: std::io::Error::new(std::io::ErrorKind::NotConnected, cause.clone()),
        };
        let (tx, rx) = sync_channel(1);
        let name = hp.clone();
        std::thread::spawn(move || {
            let _ = tx.send(name.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
        });
        let addrs = match rx.recv_timeout(CHECK_RESOLVE) {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => {
                return Err(unreachable(format!(
                    "the name did not resolve within {} s",
                    CHECK_RESOLVE.as_secs()
                )))
            }
        };
        let mut last = String::from("no address");
        let mut ok = false;
        for a in addrs.into_iter().take(2) {
            match TcpStream::connect_timeout(&a, CHECK_CONNECT) {
                Ok(_) => {
                    ok = true;
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        if !ok {
            return Err(unreachable(last));
        }
        let store = self.inner.store.clone();
        let prefix = self.path("");
        let r = self.run(async move {
            tokio::time::timeout(CHECK_LIST, store.list_with_delimiter(Some(&prefix))).await
        })?;
        match r {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(object_store::Error::NotFound { .. })) => Err(RepoError::not_found(format!(
                "the bucket {} at {}",
                self.inner.bucket, self.inner.host_port
            ))),
            Ok(Err(e)) => Err(self.map_err("listing", "the bucket", e)),
            Err(_) => Err(unreachable(format!(
                "no S3 answer to a bucket listing within {} s",
                CHECK_LIST.as_secs()
            ))),
        }
    }

    fn path(&self, key: &str) -> Path {
        Path::from(format!("{}{}", self.inner.prefix, key))
    }

    /// Runs `fut` on the crate's runtime and waits for it on this thread.
    fn run<F, T>(&self, fut: F) -> Result<T, RepoError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = sync_channel(1);
        let rt = self.inner.rt.as_ref().ok_or_else(|| RepoError::Io {
            context: format!("{}: the S3 client is shut down", self.inner.describe),
            source: std::io::Error::other("shut down"),
        })?;
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| RepoError::Io {
            context: format!("{}: an S3 request task failed", self.inner.describe),
            source: std::io::Error::other("task failed"),
        })
    }

    /// Maps a client error to a [`RepoError`] with a message naming the cause.
    fn map_err(&self, op: &str, key: &str, e: object_store::Error) -> RepoError {
        let d = &self.inner.describe;
        match e {
            object_store::Error::NotFound { .. } => RepoError::not_found(format!("{key} in {d}")),
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => RepoError::Io {
                context: format!(
                    "{d}: access denied: check the access key and secret ({op} {key})"
                ),
                source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()),
            },
            other => {
                let cause = deepest_cause(&other);
                let msg = other.to_string();
                let denied = ["403 Forbidden", "401 Unauthorized", "AccessDenied"]
                    .iter()
                    .chain(["InvalidAccessKeyId", "SignatureDoesNotMatch"].iter())
                    .any(|m| msg.contains(m));
                let context = if denied {
                    format!("{d}: access denied: check the access key and secret ({op} {key})")
                } else if msg.contains("error sending request")
                    || cause.contains("onnect")
                    || cause.contains("dns error")
                {
                    format!(
                        "cannot reach the S3 endpoint {}: {cause} ({op} {key})",
                        self.inner.host_port
                    )
                } else if msg.contains("NoSuchBucket") {
                    format!("{d}: the bucket {} does not exist", self.inner.bucket)
                } else {
                    format!("{d}: {op} {key}: {msg}")
                };
                RepoError::Io {
                    context,
                    source: std::io::Error::other(msg),
                }
            }
        }
    }

    fn get_opt(&self, key: &str) -> Result<Option<Vec<u8>>, RepoError> {
        let store = self.inner.store.clone();
        let path = self.path(key);
        let r = self.run(async move {
            match store.get(&path).await {
                Ok(g) => g.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        r.map(|o| o.map(|b| b.to_vec()))
            .map_err(|e| self.map_err("reading", key, e))
    }

    fn put_raw(&self, key: &str, data: Bytes) -> Result<(), RepoError> {
        let store = self.inner.store.clone();
        let path = self.path(key);
        let r = self.run(async move {
            if data.len() > MULTIPART_THRESHOLD {
                let upload = store.put_multipart(&path).await?;
                let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                w.put(data);
                // On failure `finish` aborts the upload, so no parts are left behind.
                w.finish().await.map(|_| ())
            } else {
                store.put(&path, PutPayload::from(data)).await.map(|_| ())
            }
        })?;
        r.map_err(|e| self.map_err("writing", key, e))
    }
}

fn deepest_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}

impl Target for S3Target {
    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    fn put(&self, key: &ObjectKey, data: &[u8]) -> repo::Result<()> {
        self.put_raw(key.as_str(), Bytes::copy_from_slice(data))
    }

    fn flush(&self) -> repo::Result<()> {
        Ok(())
    }

    fn get(&self, key: &ObjectKey) -> repo::Result<Vec<u8>> {
        self.get_opt(key.as_str())?
            .ok_or_else(|| RepoError::not_found(format!("{key} in {}", self.inner.describe)))
    }

    fn exists(&self, key: &ObjectKey) -> repo::Result<bool> {
        let store = self.inner.store.clone();
        let path = self.path(key.as_str());
        match self.run(async move { store.head(&path).await })? {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.map_err("checking", key.as_str(), e)),
        }
    }

    fn list(&self, prefix: &str) -> repo::Result<Vec<ObjectInfo>> {
        let store = self.inner.store.clone();
        let p = prefix.trim_matches('/');
        let path = self.path(p);
        let listed = self
            .run(async move { store.list(Some(&path)).try_collect::<Vec<_>>().await })?
            .map_err(|e| self.map_err("listing", p, e))?;
        let mut out = Vec::with_capacity(listed.len());
        for meta in listed {
            let full = meta.location.as_ref();
            let Some(rel) = full.strip_prefix(self.inner.prefix.as_str()) else {
                continue;
            };
            // Temporary and foreign names (not valid keys) are not listed.
            let Ok(key) = ObjectKey::new(rel) else {
                continue;
            };
            let modified = UNIX_EPOCH
                + Duration::from_millis(meta.last_modified.timestamp_millis().max(0) as u64);
            out.push(ObjectInfo {
                key,
                size: meta.size as u64,
                modified,
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &ObjectKey) -> repo::Result<()> {
        let store = self.inner.store.clone();
        let path = self.path(key.as_str());
        match self.run(async move { store.delete(&path).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map_err("deleting", key.as_str(), e)),
        }
    }

    fn free_space(&self) -> repo::Result<Option<u64>> {
        Ok(None)
    }

    fn lock(&self) -> repo::Result<Box<dyn TargetLock>> {
        let me = Lease::mine();
        if let Some(bytes) = self.get_opt(LOCK_NAME)? {
            if let Ok(held) = serde_json::from_slice::<Lease>(&bytes) {
                if held.owner != me.owner && held.is_live() {
                    return Err(RepoError::Locked {
                        holder: held.describe(),
                    });
                }
            }
        }
        self.put_raw(LOCK_NAME, me.encode())?;
        // Another writer may have written its lease at the same moment: the last write wins,
        // and after a pause both re-read to see which one that was.
        std::thread::sleep(Duration::from_millis(300));
        let now = self
            .get_opt(LOCK_NAME)?
            .and_then(|b| serde_json::from_slice::<Lease>(&b).ok());
        match now {
            Some(l) if l.owner == me.owner => {}
            Some(l) => {
                return Err(RepoError::Locked {
                    holder: l.describe(),
                })
            }
            None => {
                return Err(RepoError::Locked {
                    holder: "a writer that removed the lease meanwhile".into(),
                })
            }
        }
        let (stop_tx, stop_rx) = sync_channel::<()>(1);
        let renewer = self.clone();
        let owner = me.owner.clone();
        let thread = std::thread::spawn(move || loop {
            match stop_rx.recv_timeout(LEASE_TTL / 3) {
                Err(RecvTimeoutError::Timeout) => {
                    let lease = Lease {
                        owner: owner.clone(),
                        ..Lease::mine()
                    };
                    let _ = renewer.put_raw(LOCK_NAME, lease.encode());
                }
                _ => {
                    let still_mine = renewer
                        .get_opt(LOCK_NAME)
                        .ok()
                        .flatten()
                        .and_then(|b| serde_json::from_slice::<Lease>(&b).ok())
                        .is_some_and(|l| l.owner == owner);
                    if still_mine {
                        if let Ok(k) = ObjectKey::new(LOCK_NAME) {
                            let _ = renewer.delete(&k);
                        }
                    }
                    return;
                }
            }
        });
        Ok(Box::new(LeaseGuard {
            stop: Some(stop_tx),
            thread: Some(thread),
        }))
    }

    fn remove_temp(&self) -> repo::Result<u64> {
        // PUTs are all-or-nothing and failed multipart uploads are aborted: there are no
        // temporary objects. Parts of uploads cut off by a crash are the bucket's lifecycle
        // rule's business (AbortIncompleteMultipartUpload).
        Ok(0)
    }
}

/// Contents of the lease object.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    owner: String,
    host: String,
    pid: u32,
    expires_unix: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

impl Lease {
    fn mine() -> Lease {
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Lease {
            owner: format!("{}-{}-{nonce:x}", hostname(), std::process::id()),
            host: hostname(),
            pid: std::process::id(),
            expires_unix: unix_now() + LEASE_TTL.as_secs(),
        }
    }

    /// Not expired, and (when held on this host) its process still runs.
    fn is_live(&self) -> bool {
        if self.expires_unix <= unix_now() {
            return false;
        }
        if self.host == hostname() {
            return std::path::Path::new(&format!("/proc/{}", self.pid)).exists();
        }
        true
    }

    fn describe(&self) -> String {
        format!(
            "host {} pid {}, lease expires in {} s",
            self.host,
            self.pid,
            self.expires_unix.saturating_sub(unix_now())
        )
    }

    fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// Releases the lease when dropped.
struct LeaseGuard {
    stop: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TargetLock for LeaseGuard {}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(endpoint: &str) -> S3Config {
        S3Config {
            endpoint: endpoint.into(),
            region: "us-east-1".into(),
            bucket: "b".into(),
            prefix: "x".into(),
            access_key: "k".into(),
            secret_key: "s".into(),
            path_style: true,
            verify_tls: true,
            ca_cert_pem: None,
        }
    }

    #[test]
    fn host_port_and_validation() {
        assert_eq!(
            cfg("http://10.0.2.2:3900").host_port().unwrap(),
            "10.0.2.2:3900"
        );
        assert_eq!(
            cfg("https://s3.example.com/").host_port().unwrap(),
            "s3.example.com:443"
        );
        assert!(S3Target::new(&cfg("ftp://x")).is_err());
        let mut c = cfg("http://h");
        c.prefix = "../x".into();
        assert!(matches!(S3Target::new(&c), Err(ConfigError::Prefix(_))));
        assert!(!format!("{c:?}").contains("\"s\""));
    }
}

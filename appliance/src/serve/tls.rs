//! The HTTPS certificate: loaded from the state directory, or made self-signed on first
//! start (and kept there). A stored pair that cannot be used (damaged, or a key that does
//! not match) is set aside as `*.rejected` and replaced by a new self-signed one, so a bad
//! file never locks the admin out of the web UI.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::auth::password::write_private;
use crate::serve::certificate::{self, CertificateError, CertificateInfo};

/// Certificate file in the state directory.
pub const CERT_FILE: &str = "tls-cert.pem";
/// Private key file in the state directory.
pub const KEY_FILE: &str = "tls-key.pem";

/// Certificate failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating the certificate failed.
    #[error("generating the self-signed certificate failed")]
    Generate(#[source] rcgen::Error),
    /// A file could not be read or parsed.
    #[error("cannot use {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Storing the new certificate failed.
    #[error("cannot store the certificate")]
    Store(#[source] crate::auth::PasswordError),
    /// rustls refused the certificate or key.
    #[error("TLS configuration")]
    Config(#[source] rustls::Error),
}

/// The certificate in use and where it came from.
pub struct Identity {
    /// The rustls server configuration.
    pub config: Arc<rustls::ServerConfig>,
    /// What the certificate says.
    pub info: CertificateInfo,
    /// Whether it was made just now.
    pub created: bool,
    /// Why the stored pair was set aside, when it was.
    pub rejected: Option<String>,
}

/// A certificate chain and key checked to belong together, with the rustls
/// configuration that serves them.
pub struct Usable {
    /// The rustls server configuration.
    pub config: Arc<rustls::ServerConfig>,
    /// What the leaf certificate says.
    pub info: CertificateInfo,
}

/// Parses a PEM chain (leaf first) and a PEM key, checks that they belong together and
/// builds the server configuration.
pub fn usable(cert_pem: &str, key_pem: &str) -> Result<Usable, CertificateError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertificateError::BadCertificate(e.to_string()))?;
    let leaf = chain.first().ok_or(CertificateError::NoCertificate)?;
    let info = certificate::describe(leaf)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| CertificateError::BadKey(e.to_string()))?;
    let mut config = server_config(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => CertificateError::KeyMismatch,
        other => CertificateError::Unusable(other.to_string()),
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Usable {
        config: Arc::new(config),
        info,
    })
}

/// A TLS server configuration (ring, safe default protocol versions, no client
/// certificates) serving `chain` (leaf first) with `key`; rustls checks that they match.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
}

/// Loads `tls-cert.pem` and `tls-key.pem` from `state_dir`, or makes and stores a
/// self-signed pair naming `names` (host names and addresses). A stored pair that is not
/// usable is renamed `*.rejected` and replaced.
pub fn load_or_create(state_dir: &Path, names: &[String]) -> Result<Identity, TlsError> {
    let cert_path = state_dir.join(CERT_FILE);
    let key_path = state_dir.join(KEY_FILE);
    let mut rejected = None;
    if cert_path.exists() || key_path.exists() {
        match load(&cert_path, &key_path) {
            Ok(u) => {
                return Ok(Identity {
                    config: u.config,
                    info: u.info,
                    created: false,
                    rejected: None,
                })
            }
            Err(reason) => {
                for path in [&cert_path, &key_path] {
                    let mut aside = path.clone().into_os_string();
                    aside.push(".rejected");
                    let _ = fs::rename(path, aside);
                }
                rejected = Some(reason);
            }
        }
    }
    let u = create(state_dir, names)?;
    Ok(Identity {
        config: u.config,
        info: u.info,
        created: true,
        rejected,
    })
}

/// Makes a new self-signed pair for `names`, stores it in `state_dir` and returns it.
pub fn create(state_dir: &Path, names: &[String]) -> Result<Usable, TlsError> {
    let (cert, key) = generate(names)?;
    let u = usable(&cert, &key).map_err(|e| TlsError::File {
        path: state_dir.join(CERT_FILE),
        reason: e.to_string(),
    })?;
    store(state_dir, &cert, &key)?;
    Ok(u)
}

/// Writes a pair: the key first, then the certificate, each replaced atomically. A crash
/// in between leaves a pair that does not match, which the next start sets aside.
pub fn store(state_dir: &Path, cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
    write_private(&state_dir.join(KEY_FILE), key_pem.trim_end()).map_err(TlsError::Store)?;
    write_private(&state_dir.join(CERT_FILE), cert_pem.trim_end()).map_err(TlsError::Store)
}

fn load(cert_path: &Path, key_path: &Path) -> Result<Usable, String> {
    let read = |path: &Path| {
        fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
    };
    let (cert, key) = (read(cert_path)?, read(key_path)?);
    usable(&cert, &key).map_err(|e| e.to_string())
}

/// A self-signed ECDSA P-256 certificate for `names`, as (certificate PEM, key PEM).
pub fn generate(names: &[String]) -> Result<(String, String), TlsError> {
    let mut sans = vec!["appliance".to_owned(), "localhost".to_owned()];
    sans.extend(names.iter().cloned());
    sans.dedup();
    let mut params = rcgen::CertificateParams::new(sans).map_err(TlsError::Generate)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "blksnap appliance");
    let key = rcgen::KeyPair::generate().map_err(TlsError::Generate)?;
    let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// SHA-256 of a DER certificate as `AB:CD:...`.
pub fn fingerprint(cert: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_reuses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_or_create(dir.path(), &["10.0.2.15".to_owned()]).expect("create");
        assert!(first.created);
        assert!(first.info.self_signed);
        assert_eq!(first.info.fingerprint_sha256.len(), 32 * 3 - 1);
        assert!(first.info.names.contains(&"10.0.2.15".to_owned()));
        let second = load_or_create(dir.path(), &[]).expect("reuse");
        assert!(!second.created);
        assert_eq!(
            first.info.fingerprint_sha256,
            second.info.fingerprint_sha256
        );
    }

    #[test]
    fn a_stored_pair_that_does_not_match_is_set_aside_and_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, _) = generate(&[]).expect("one");
        let (_, other_key) = generate(&[]).expect("two");
        store(dir.path(), &cert, &other_key).expect("store");
        let id = load_or_create(dir.path(), &[]).expect("replaced");
        assert!(id.created);
        let reason = id.rejected.expect("a reason");
        assert!(reason.contains("does not match"), "{reason}");
        assert!(dir.path().join("tls-cert.pem.rejected").is_file());
        assert!(dir.path().join("tls-key.pem.rejected").is_file());
        assert!(!load_or_create(dir.path(), &[]).expect("reuse").created);
    }

    #[test]
    fn a_stored_certificate_is_served_whatever_the_clock_says() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (chain, key, _) =
            crate::serve::certificate::testing::ca_and_leaf(&["a.test"], (-30, -1));
        store(dir.path(), &chain, &key).expect("store");
        let id = load_or_create(dir.path(), &[]).expect("load");
        assert!(!id.created && id.rejected.is_none());
        assert_eq!(id.info.subject, "CN=backup.example.test");
    }
}

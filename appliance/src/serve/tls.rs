//! The HTTPS certificate: loaded from the state directory, or made self-signed on first
//! start (and kept there).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::auth::password::write_private;

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
    /// SHA-256 of the certificate, as colon-separated hex.
    pub fingerprint: String,
    /// Whether it was made just now.
    pub created: bool,
}

/// Loads `tls-cert.pem` and `tls-key.pem` from `state_dir`, or makes and stores a
/// self-signed pair naming `names` (host names and addresses).
pub fn load_or_create(state_dir: &Path, names: &[String]) -> Result<Identity, TlsError> {
    let cert_path = state_dir.join(CERT_FILE);
    let key_path = state_dir.join(KEY_FILE);
    let (cert_pem, key_pem, created) = if cert_path.exists() && key_path.exists() {
        let read = |path: &Path| {
            fs::read_to_string(path).map_err(|err| TlsError::File {
                path: path.to_path_buf(),
                reason: err.to_string(),
            })
        };
        (read(&cert_path)?, read(&key_path)?, false)
    } else {
        let (cert, key) = generate(names)?;
        write_private(&key_path, &key).map_err(TlsError::Store)?;
        write_private(&cert_path, &cert).map_err(TlsError::Store)?;
        (cert, key, true)
    };
    let cert =
        CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|err| TlsError::File {
            path: cert_path.clone(),
            reason: err.to_string(),
        })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|err| TlsError::File {
        path: key_path.clone(),
        reason: err.to_string(),
    })?;
    let fingerprint = fingerprint(&cert);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        config: Arc::new(config),
        fingerprint,
        created,
    })
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
        let dir = std::env::temp_dir().join(format!(
            "appliance-tls-{}-{}",
            std::process::id(),
            crate::auth::password::generate()
        ));
        fs::create_dir_all(&dir).unwrap();
        let first = load_or_create(&dir, &["10.0.2.15".to_owned()]).expect("create");
        assert!(first.created);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let second = load_or_create(&dir, &[]).expect("reuse");
        assert!(!second.created);
        assert_eq!(first.fingerprint, second.fingerprint);
        fs::remove_dir_all(&dir).ok();
    }
}

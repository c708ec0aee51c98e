//! TLS for the NBD server: a certificate authority of the appliance's own, kept in the
//! state directory, and a server certificate it signs at every start for the addresses the
//! appliance has then (so a new DHCP lease does not break clients).
//!
//! NBD clients (qemu, libnbd, nbd-client) check the server against a CA file, not a
//! pinned fingerprint, so the HTTPS certificate (self-signed) does not suit them. Clients
//! fetch the CA once (`GET /api/v1/exports/ca-certificate`) and keep it as
//! `ca-cert.pem` in their certificate directory.
//!
//! | file in the state directory | what                               |
//! |-----------------------------|------------------------------------|
//! | `nbd-ca-key.pem`            | the CA's private key (mode 0600)   |
//! | `nbd-ca-cert.pem`           | the CA certificate clients trust   |
//!
//! The CA certificate is made from fixed parameters and the stored key, so the CA object
//! that signs is the same CA every start (same name and key identifier) without parsing
//! the stored certificate. rustls has no TLS-PSK: clients authenticate the server by
//! certificate, and the server admits clients by address (each export's allow-list).

use std::fs;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::auth::password::write_private;
use crate::serve::tls::{fingerprint, server_config, TlsError};

/// The CA's private key in the state directory.
pub const CA_KEY_FILE: &str = "nbd-ca-key.pem";
/// The CA certificate in the state directory.
pub const CA_CERT_FILE: &str = "nbd-ca-cert.pem";
/// The CA's common name.
const CA_NAME: &str = "blksnap appliance NBD CA";

/// The NBD server's TLS setup.
pub struct NbdIdentity {
    /// For the NBD server's STARTTLS.
    pub config: Arc<rustls::ServerConfig>,
    /// The CA certificate clients trust, PEM.
    pub ca_pem: String,
    /// SHA-256 of the CA certificate, colon-separated hex.
    pub ca_fingerprint: String,
    /// Whether the CA was made just now.
    pub created: bool,
}

fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(TlsError::Generate)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    Ok(params)
}

/// Loads the CA from `state_dir` (making and storing it the first time) and signs a
/// server certificate for `names` (host names and addresses; `localhost`, `127.0.0.1`
/// and `appliance` are always included).
pub fn load_or_create(state_dir: &Path, names: &[String]) -> Result<NbdIdentity, TlsError> {
    let key_path = state_dir.join(CA_KEY_FILE);
    let cert_path = state_dir.join(CA_CERT_FILE);
    let file_error = |path: &Path, reason: String| TlsError::File {
        path: path.to_path_buf(),
        reason,
    };
    let (ca_key, created) = if key_path.exists() {
        let pem =
            fs::read_to_string(&key_path).map_err(|e| file_error(&key_path, e.to_string()))?;
        let key = KeyPair::from_pem(&pem).map_err(|e| file_error(&key_path, e.to_string()))?;
        (key, false)
    } else {
        let key = KeyPair::generate().map_err(TlsError::Generate)?;
        write_private(&key_path, &key.serialize_pem()).map_err(TlsError::Store)?;
        (key, true)
    };
    let ca = ca_params()?
        .self_signed(&ca_key)
        .map_err(TlsError::Generate)?;
    if created || !cert_path.exists() {
        write_private(&cert_path, &ca.pem()).map_err(TlsError::Store)?;
    }
    let ca_pem =
        fs::read_to_string(&cert_path).map_err(|e| file_error(&cert_path, e.to_string()))?;
    let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .map_err(|e| file_error(&cert_path, e.to_string()))?;

    let mut sans = vec![
        "appliance".to_owned(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    sans.extend(names.iter().cloned());
    sans.sort();
    sans.dedup();
    let mut params = CertificateParams::new(sans).map_err(TlsError::Generate)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "blksnap appliance NBD server");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(397);
    let leaf_key = KeyPair::generate().map_err(TlsError::Generate)?;
    let leaf = params
        .signed_by(&leaf_key, &ca, &ca_key)
        .map_err(TlsError::Generate)?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let config = server_config(vec![CertificateDer::from(leaf.der().to_vec())], key)
        .map_err(TlsError::Config)?;
    Ok(NbdIdentity {
        config: Arc::new(config),
        ca_fingerprint: fingerprint(&ca_der),
        ca_pem,
        created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_kept_and_signs_a_new_server_certificate_each_start() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), &["10.0.2.15".to_owned()]).unwrap();
        assert!(first.created);
        assert!(first.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let second = load_or_create(dir.path(), &[]).unwrap();
        assert!(!second.created);
        assert_eq!(first.ca_pem, second.ca_pem);
        assert_eq!(first.ca_fingerprint, second.ca_fingerprint);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(dir.path().join(CA_KEY_FILE))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}

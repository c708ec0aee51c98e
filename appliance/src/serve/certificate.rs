//! The HTTPS certificate at run time: what it says (subject, issuer, names, validity,
//! fingerprint), and replacing it without a restart by a provided certificate and key or
//! by a new self-signed pair. New connections get the new certificate at once; the pair
//! stored in the state directory is what the next start loads.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use utoipa::ToSchema;
use x509_parser::extensions::GeneralName;

use crate::serve::tls::{self, TlsError};
use crate::services::unix_now;
use crate::web::views::time_signed;

/// The largest certificate chain or key accepted, in bytes of PEM.
pub const MAX_PEM_BYTES: usize = 64 << 10;

/// Why a certificate was not installed.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("no PEM certificate (-----BEGIN CERTIFICATE-----) was given")]
    NoCertificate,
    #[error("the certificate does not parse: {0}")]
    BadCertificate(String),
    #[error("no usable PEM private key was given: {0}")]
    BadKey(String),
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    #[error("the certificate and key cannot be used: {0}")]
    Unusable(String),
    #[error("the certificate expired on {0}")]
    Expired(String),
    #[error("the certificate is valid only from {0} on")]
    NotYetValid(String),
    #[error("the {0} is larger than {MAX_PEM_BYTES} bytes")]
    TooLarge(&'static str),
    #[error("the certificate could not be stored: {}", snapcore::chain(.0))]
    Store(#[source] TlsError),
}

impl CertificateError {
    /// The stable API code.
    pub fn code(&self) -> &'static str {
        match self {
            CertificateError::Store(_) => "settings_not_saved",
            _ => "invalid_certificate",
        }
    }
}

/// What a certificate says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CertificateInfo {
    /// SHA-256 of the DER certificate, `AB:CD:...` (what the console prints).
    pub fingerprint_sha256: String,
    pub subject: String,
    pub issuer: String,
    /// Issued by itself (the appliance's own, or a provided self-signed one).
    pub self_signed: bool,
    /// Host names and addresses it is valid for (subject alternative names).
    pub names: Vec<String>,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
}

/// Reads what a DER certificate says.
pub fn describe(der: &CertificateDer<'_>) -> Result<CertificateInfo, CertificateError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| CertificateError::BadCertificate(e.to_string()))?;
    let validity = cert.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    let mut names = Vec::new();
    if let Ok(Some(sans)) = cert.subject_alternative_name() {
        for name in &sans.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    names.extend(ip.map(|ip| ip.to_string()));
                }
                _ => {}
            }
        }
    }
    Ok(CertificateInfo {
        fingerprint_sha256: tls::fingerprint(der.as_ref()),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
        names,
        not_before_unix: not_before,
        not_after_unix: not_after,
    })
}

/// Refuses a certificate that is expired or not valid yet. Only a new certificate is
/// checked: a stored one is served whatever the clock says (a guest may boot with a wrong
/// clock, and setting the certificate aside would not help).
fn check_validity(info: &CertificateInfo) -> Result<(), CertificateError> {
    let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
    if info.not_after_unix < now {
        return Err(CertificateError::Expired(time_signed(info.not_after_unix)));
    }
    if info.not_before_unix > now {
        return Err(CertificateError::NotYetValid(time_signed(
            info.not_before_unix,
        )));
    }
    Ok(())
}

/// The certificate the HTTPS listeners serve, replaceable while they run.
pub struct HttpsCertificate {
    state_dir: PathBuf,
    /// The addresses a new self-signed certificate names.
    names: Vec<String>,
    rustls: RustlsConfig,
    current: Mutex<CertificateInfo>,
}

impl HttpsCertificate {
    /// The live certificate of `rustls`, described by `info`, stored in `state_dir`.
    pub fn new(
        state_dir: PathBuf,
        names: Vec<String>,
        rustls: RustlsConfig,
        info: CertificateInfo,
    ) -> Self {
        HttpsCertificate {
            state_dir,
            names,
            rustls,
            current: Mutex::new(info),
        }
    }

    /// What the served certificate says.
    pub fn info(&self) -> CertificateInfo {
        self.lock().clone()
    }

    /// Checks and installs a provided chain (leaf first) and key: stored, then served to
    /// every new connection. Nothing changes when they are refused.
    pub fn install(
        &self,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<CertificateInfo, CertificateError> {
        if cert_pem.len() > MAX_PEM_BYTES {
            return Err(CertificateError::TooLarge("certificate"));
        }
        if key_pem.len() > MAX_PEM_BYTES {
            return Err(CertificateError::TooLarge("key"));
        }
        let usable = tls::usable(cert_pem, key_pem)?;
        check_validity(&usable.info)?;
        let mut current = self.lock();
        tls::store(&self.state_dir, cert_pem, key_pem).map_err(CertificateError::Store)?;
        self.rustls.reload_from_config(usable.config);
        *current = usable.info.clone();
        Ok(usable.info)
    }

    /// Replaces the certificate by a new self-signed one.
    pub fn regenerate(&self) -> Result<CertificateInfo, CertificateError> {
        let mut current = self.lock();
        let usable = tls::create(&self.state_dir, &self.names).map_err(CertificateError::Store)?;
        self.rustls.reload_from_config(usable.config);
        *current = usable.info.clone();
        Ok(usable.info)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CertificateInfo> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Certificates for tests.
#[cfg(test)]
pub mod testing {
    /// A CA and a leaf it signed for `leaf_names` (CN `backup.example.test`), valid from
    /// `days.0` to `days.1` days from now: (leaf + CA chain PEM, leaf key PEM, CA PEM).
    pub fn ca_and_leaf(leaf_names: &[&str], days: (i64, i64)) -> (String, String, String) {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let names: Vec<String> = leaf_names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "backup.example.test");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(days.0);
        params.not_after = now + time::Duration::days(days.1);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = params.signed_by(&key, &ca, &ca_key).unwrap();
        (
            format!("{}{}", leaf.pem(), ca.pem()),
            key.serialize_pem(),
            ca.pem(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::testing::ca_and_leaf;
    use super::*;
    use std::sync::Arc;

    fn live(dir: &std::path::Path) -> (HttpsCertificate, RustlsConfig) {
        let id = tls::load_or_create(dir, &[]).unwrap();
        let rustls = RustlsConfig::from_config(id.config);
        let https = HttpsCertificate::new(dir.to_path_buf(), vec![], rustls.clone(), id.info);
        (https, rustls)
    }

    #[test]
    fn a_provided_certificate_is_described_stored_and_served() {
        let dir = tempfile::tempdir().unwrap();
        let (https, rustls) = live(dir.path());
        let before = rustls.get_inner();
        let (chain, key, _) = ca_and_leaf(&["backup.example.test", "127.0.0.1"], (-1, 30));
        let info = https.install(&chain, &key).expect("install");
        assert!(!info.self_signed);
        assert_eq!(info.subject, "CN=backup.example.test");
        assert_eq!(info.issuer, "CN=Test CA");
        assert_eq!(info.names, ["backup.example.test", "127.0.0.1"]);
        assert!(info.not_after_unix > info.not_before_unix);
        assert_eq!(https.info(), info);
        assert!(!Arc::ptr_eq(&before, &rustls.get_inner()));
        let stored = tls::load_or_create(dir.path(), &[]).expect("reload");
        assert!(!stored.created);
        assert_eq!(stored.info, info);

        let fresh = https.regenerate().expect("regenerate");
        assert!(fresh.self_signed);
        assert_eq!(fresh.subject, "CN=blksnap appliance");
        assert_ne!(fresh.fingerprint_sha256, info.fingerprint_sha256);
        assert_eq!(
            tls::load_or_create(dir.path(), &[]).unwrap().info,
            https.info()
        );
    }

    #[test]
    fn refused_certificates_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (https, rustls) = live(dir.path());
        let before = (https.info(), rustls.get_inner());
        let (chain, key, ca) = ca_and_leaf(&["a.test"], (-1, 30));
        let (_, other_key, _) = ca_and_leaf(&["a.test"], (-1, 30));
        let (old_chain, old_key, _) = ca_and_leaf(&["a.test"], (-30, -1));
        let (new_chain, new_key, _) = ca_and_leaf(&["a.test"], (2, 30));
        let cases: [(&str, &str, &str); 7] = [
            ("", &key, "no PEM certificate"),
            (
                "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
                &key,
                "does not parse",
            ),
            (&chain, "", "no usable PEM private key"),
            (
                &chain,
                &other_key,
                "the private key does not match the certificate",
            ),
            (&ca, &key, "the private key does not match the certificate"),
            (&old_chain, &old_key, "the certificate expired on "),
            (&new_chain, &new_key, "is valid only from "),
        ];
        for (cert, key, said) in cases {
            let err = https.install(cert, key).expect_err(said);
            assert!(err.to_string().contains(said), "{err} (wanted {said})");
            assert_eq!(err.code(), "invalid_certificate");
        }
        let huge = "x".repeat(MAX_PEM_BYTES + 1);
        let err = https.install(&huge, &key).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("the certificate is larger than {MAX_PEM_BYTES} bytes")
        );
        assert_eq!(https.info(), before.0);
        assert!(Arc::ptr_eq(&before.1, &rustls.get_inner()));
        assert_eq!(tls::load_or_create(dir.path(), &[]).unwrap().info, before.0);
    }
}

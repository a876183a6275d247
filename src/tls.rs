//! TLS: the listener's certificate (re-read when the files change), and the trust roots for
//! `https://` upstreams and IdPs (the system's, plus an optional CA file).
//!
//! Only the `ring` provider is compiled in. The listener offers ALPN `h2` and `http/1.1`.

use arc_swap::ArcSwap;
use rustls::pki_types::pem;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why TLS material could not be loaded. Messages name the file, never its contents (a key's
/// own parse error could quote key material).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificates from {}: {source}", path.display())]
    ReadCertificates { path: PathBuf, source: pem::Error },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: pem::Error },
    #[error("bad PEM in {}: {source}", path.display())]
    BadPem { path: PathBuf, source: pem::Error },
    #[error("no certificate in {}", path.display())]
    NoCertificate { path: PathBuf },
    #[error("no usable private key (PEM) in {}", path.display())]
    NoPrivateKey { path: PathBuf },
    #[error("unsupported private key type in {}", path.display())]
    UnsupportedKey { path: PathBuf },
    #[error("{}: {source}", path.display())]
    BadCa {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a certificate chain and its private key (PEM).
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = certificates(cert, |path, source| TlsError::ReadCertificates {
        path,
        source,
    })?;
    // The key's own error text could quote key material: report the path only.
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|_| TlsError::NoPrivateKey { path: key.into() })?;
    let signing = provider()
        .key_provider
        .load_private_key(private)
        .map_err(|_| TlsError::UnsupportedKey { path: key.into() })?;
    Ok(Arc::new(CertifiedKey::new(certs, signing)))
}

/// Reads CA certificates (PEM).
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certificates(path, |path, source| TlsError::Read { path, source })
}

/// Every certificate of a PEM file, at least one; `unreadable` words a file that cannot be read.
fn certificates(
    path: &Path,
    unreadable: fn(PathBuf, pem::Error) -> TlsError,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|source| unreadable(path.into(), source))?
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::BadPem {
            path: path.into(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    Ok(certs)
}

/// The listener's certificate, swappable while connections are being served.
pub struct ReloadingCert {
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReloadingCert")
    }
}

impl ReloadingCert {
    pub fn new(key: Arc<CertifiedKey>) -> ReloadingCert {
        ReloadingCert {
            current: ArcSwap::new(key),
        }
    }

    /// New handshakes use `key` from now on; open connections keep theirs.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The listener's TLS configuration: ALPN h2 + http/1.1, certificate from `cert`.
pub fn server_config(cert: Arc<ReloadingCert>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Client TLS for `https://` upstreams: the system's roots plus `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        for cert in load_ca_file(path)? {
            roots.add(cert).map_err(|source| TlsError::BadCa {
                path: path.into(),
                source,
            })?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

//! A rustls certificate resolver whose certificate can be replaced while the server runs:
//! handshakes after a swap present the new certificate; connections already established keep
//! theirs. This is how a rotated certificate takes effect without dropping connections.

use std::sync::{Arc, RwLock};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::CertError;

/// Holds the current serving certificate.
#[derive(Debug)]
pub struct HotSwapResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl HotSwapResolver {
    /// A resolver serving the given PEM certificate chain and key.
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<Arc<Self>, CertError> {
        Ok(Arc::new(HotSwapResolver {
            current: RwLock::new(Arc::new(certified_key(cert_pem, key_pem)?)),
        }))
    }

    /// Serve another certificate from the next handshake on. On error the current one stays.
    pub fn swap(&self, cert_pem: &str, key_pem: &str) -> Result<(), CertError> {
        let next = Arc::new(certified_key(cert_pem, key_pem)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// The leaf certificate currently served (DER).
    pub fn current_leaf(&self) -> CertificateDer<'static> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).cert[0].clone()
    }
}

impl ResolvesServerCert for HotSwapResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// Parse a PEM chain and key into a rustls `CertifiedKey` (ring provider).
pub fn certified_key(cert_pem: &str, key_pem: &str) -> Result<CertifiedKey, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::Parse {
            what: "certificate chain",
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(CertError::Parse {
            what: "certificate chain",
            reason: "no certificate in PEM".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| CertError::Parse {
        what: "private key",
        reason: e.to_string(),
    })?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| CertError::Parse {
            what: "private key",
            reason: e.to_string(),
        })?;
    Ok(CertifiedKey::new(chain, signer))
}

/// A TLS server configuration (TLS 1.2 and 1.3, ring, ALPN h2 and http/1.1) answering with the
/// resolver's current certificate.
pub fn server_config(resolver: Arc<HotSwapResolver>) -> Result<rustls::ServerConfig, CertError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| CertError::Parse {
            what: "TLS configuration",
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{Authority, CA_LIFETIME, SERVING_LIFETIME};
    use std::time::SystemTime;

    #[test]
    fn swap_changes_the_served_certificate_and_rejects_garbage() {
        let ca = Authority::generate("ca", SystemTime::now(), CA_LIFETIME).unwrap();
        let a = ca
            .issue_serving(&["a".into()], SystemTime::now(), SERVING_LIFETIME)
            .unwrap();
        let b = ca
            .issue_serving(&["b".into()], SystemTime::now(), SERVING_LIFETIME)
            .unwrap();
        let resolver = HotSwapResolver::new(&a.cert_pem, &a.key_pem).unwrap();
        let first = resolver.current_leaf();
        resolver.swap(&b.cert_pem, &b.key_pem).unwrap();
        let second = resolver.current_leaf();
        assert_ne!(first, second);
        assert!(resolver.swap("garbage", &b.key_pem).is_err());
        assert!(resolver.swap(&b.cert_pem, "garbage").is_err());
        assert_eq!(
            resolver.current_leaf(),
            second,
            "a failed swap keeps the current certificate"
        );
    }

    #[test]
    fn config_offers_h2_and_http1() {
        let ca = Authority::generate("ca", SystemTime::now(), CA_LIFETIME).unwrap();
        let a = ca
            .issue_serving(&["a".into()], SystemTime::now(), SERVING_LIFETIME)
            .unwrap();
        let config = server_config(HotSwapResolver::new(&a.cert_pem, &a.key_pem).unwrap()).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}

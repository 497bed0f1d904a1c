//! Whether stored certificates belong together: a CA certificate with its key, a serving
//! certificate issued by that CA with its own key. A Secret left by an earlier install, or edited
//! by hand, may hold parts that are each valid but do not match; served, such a mix makes the
//! apiserver refuse every call (and so every job pod), so the store replaces it instead.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};

use super::{Authority, ServingCert, certified_key};

/// The name a throwaway certificate is issued for, to test a CA key.
const PROBE_NAME: &str = "quarks-job-ca-check";

/// Whether `serving` verifies against the CA certificate `ca_cert_pem` alone, for `name`, at
/// `now`, and its key is the certificate's.
pub fn issued_by(ca_cert_pem: &str, serving: &ServingCert, name: &str, now: SystemTime) -> bool {
    let keys_match =
        certified_key(&serving.cert_pem, &serving.key_pem).is_ok_and(|k| k.keys_match().is_ok());
    keys_match && verifies(ca_cert_pem, &serving.cert_pem, name, now)
}

/// Whether the CA's key is its certificate's: a certificate it signs verifies against it.
pub fn key_matches(authority: &Authority, now: SystemTime) -> bool {
    authority
        .issue_serving(&[PROBE_NAME.into()], now, Duration::from_secs(3600))
        .is_ok_and(|probe| verifies(&authority.cert_pem, &probe.cert_pem, PROBE_NAME, now))
}

fn verifies(ca_cert_pem: &str, cert_pem: &str, name: &str, now: SystemTime) -> bool {
    let (Ok(root), Ok(leaf)) = (
        CertificateDer::from_pem_slice(ca_cert_pem.as_bytes()),
        CertificateDer::from_pem_slice(cert_pem.as_bytes()),
    ) else {
        return false;
    };
    let mut roots = rustls::RootCertStore::empty();
    if roots.add(root).is_err() {
        return false;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(verifier) = WebPkiServerVerifier::builder_with_provider(roots.into(), provider).build()
    else {
        return false;
    };
    let Ok(name) = ServerName::try_from(name.to_string()) else {
        return false;
    };
    let now = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default());
    verifier
        .verify_server_cert(&leaf, &[], &name, &[], now)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{CA_LIFETIME, SERVING_LIFETIME};

    #[test]
    fn a_serving_certificate_belongs_to_its_ca_and_key_only() {
        let now = SystemTime::now();
        let ca = Authority::generate("ca", now, CA_LIFETIME).unwrap();
        let other = Authority::generate("other", now, CA_LIFETIME).unwrap();
        let name = "svc.ns.svc".to_string();
        let serving = ca
            .issue_serving(std::slice::from_ref(&name), now, SERVING_LIFETIME)
            .unwrap();
        assert!(issued_by(&ca.cert_pem, &serving, &name, now));
        assert!(!issued_by(&other.cert_pem, &serving, &name, now));
        assert!(!issued_by(&ca.cert_pem, &serving, "elsewhere.example", now));
        // the certificate with another certificate's key
        let second = ca
            .issue_serving(std::slice::from_ref(&name), now, SERVING_LIFETIME)
            .unwrap();
        let mixed = ServingCert {
            cert_pem: serving.cert_pem.clone(),
            key_pem: second.key_pem,
        };
        assert!(!issued_by(&ca.cert_pem, &mixed, &name, now));
    }

    #[test]
    fn a_ca_certificate_with_another_cas_key_is_caught() {
        let now = SystemTime::now();
        let ca = Authority::generate("ca", now, CA_LIFETIME).unwrap();
        let other = Authority::generate("other", now, CA_LIFETIME).unwrap();
        assert!(key_matches(&ca, now));
        let mixed = Authority {
            cert_pem: ca.cert_pem.clone(),
            key_pem: other.key_pem,
        };
        assert!(!key_matches(&mixed, now));
    }
}

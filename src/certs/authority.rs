//! Pure certificate work: a self-signed CA, serving certificates for the webhook Service, their
//! validity, and when to rotate. No I/O; time is passed in.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Certificate errors.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen could not build or sign a certificate.
    #[error("cannot generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM certificate or key could not be read.
    #[error("cannot parse {what}: {reason}")]
    Parse {
        /// What was being parsed.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
}

/// How long a generated CA is valid.
pub const CA_LIFETIME: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
/// How long a generated serving certificate is valid.
pub const SERVING_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Certificates are backdated by this much, for clocks that lag a little.
const BACKDATE: Duration = Duration::from_secs(3600);

/// The Subject Alternative Names of the webhook's serving certificate: the Service's DNS names
/// (`<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc`, `<svc>.<ns>.svc.cluster.local`) plus any configured
/// host names or IP addresses (for running outside the cluster), without duplicates.
pub fn webhook_sans(service: &str, namespace: &str, extra_hosts: &[String]) -> Vec<String> {
    let mut sans = vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ];
    for host in extra_hosts {
        if !host.is_empty() && !sans.contains(host) {
            sans.push(host.clone());
        }
    }
    sans
}

/// A CA certificate and its key, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authority {
    /// CA certificate, PEM.
    pub cert_pem: String,
    /// CA private key, PEM (PKCS#8).
    pub key_pem: String,
}

/// A serving certificate and its key, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingCert {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PEM (PKCS#8).
    pub key_pem: String,
}

impl Authority {
    /// A new self-signed CA (ECDSA P-256) valid from `now` (backdated an hour) for `lifetime`.
    pub fn generate(
        common_name: &str,
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<Self, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, now, lifetime);
        let cert = params.self_signed(&key)?;
        Ok(Authority {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issue a serving certificate for `sans` (DNS names or IP addresses).
    pub fn issue_serving(
        &self,
        sans: &[String],
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<ServingCert, CertError> {
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(|e| CertError::Parse {
            what: "CA key",
            reason: e.to_string(),
        })?;
        let issuer =
            Issuer::from_ca_cert_pem(&self.cert_pem, ca_key).map_err(|e| CertError::Parse {
                what: "CA certificate",
                reason: e.to_string(),
            })?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans.to_vec())?;
        params.distinguished_name.push(
            DnType::CommonName,
            sans.first().map(String::as_str).unwrap_or("quarks-job"),
        );
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, now, lifetime);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(ServingCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn set_validity(params: &mut CertificateParams, now: SystemTime, lifetime: Duration) {
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + lifetime).into();
}

/// What a certificate says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// DNS names and IP addresses it is valid for.
    pub sans: Vec<String>,
    /// Whether it is a CA.
    pub is_ca: bool,
}

/// Read validity, SANs and CA flag of the first certificate of a PEM text.
pub fn inspect(cert_pem: &str) -> Result<CertInfo, CertError> {
    use x509_parser::extensions::GeneralName;
    let parse_err = |reason: String| CertError::Parse {
        what: "certificate",
        reason,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| parse_err(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| parse_err(e.to_string()))?;
    let to_system = |t: x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            SystemTime::UNIX_EPOCH
        }
    };
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.push(d.to_string()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => sans.push(std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string()),
                    16 => {
                        let octets: [u8; 16] = (*ip).try_into().expect("16 bytes");
                        sans.push(std::net::Ipv6Addr::from(octets).to_string())
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        not_before: to_system(cert.validity().not_before),
        not_after: to_system(cert.validity().not_after),
        sans,
        is_ca: cert.is_ca(),
    })
}

/// A certificate is due for rotation once two thirds of its validity have passed (or when it is
/// not valid yet or any more).
pub fn rotation_due(info: &CertInfo, now: SystemTime) -> bool {
    let Ok(total) = info.not_after.duration_since(info.not_before) else {
        return true;
    };
    if now < info.not_before || now >= info.not_after {
        return true;
    }
    now >= info.not_before + total * 2 / 3
}

/// When a certificate becomes due for rotation.
pub fn rotation_time(info: &CertInfo) -> SystemTime {
    let total = info
        .not_after
        .duration_since(info.not_before)
        .unwrap_or_default();
    info.not_before + total * 2 / 3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn sans_cover_the_service_names_and_extra_hosts_once() {
        let sans = webhook_sans(
            "qjob-webhook",
            "ops",
            &["127.0.0.1".into(), "qjob-webhook".into(), "".into()],
        );
        assert_eq!(
            sans,
            [
                "qjob-webhook",
                "qjob-webhook.ops",
                "qjob-webhook.ops.svc",
                "qjob-webhook.ops.svc.cluster.local",
                "127.0.0.1"
            ]
        );
    }

    #[test]
    fn ca_and_serving_certificate_carry_what_was_asked() {
        let ca = Authority::generate("quarks-job-ca", now(), CA_LIFETIME).unwrap();
        let ca_info = inspect(&ca.cert_pem).unwrap();
        assert!(ca_info.is_ca);
        assert_eq!(ca_info.not_after, now() + CA_LIFETIME);
        assert_eq!(ca_info.not_before, now() - BACKDATE);

        let sans = webhook_sans("svc", "ns", &["127.0.0.1".into(), "::1".into()]);
        let serving = ca.issue_serving(&sans, now(), SERVING_LIFETIME).unwrap();
        let info = inspect(&serving.cert_pem).unwrap();
        assert!(!info.is_ca);
        assert_eq!(info.sans, sans);
        assert_eq!(info.not_after, now() + SERVING_LIFETIME);
        assert!(serving.key_pem.contains("PRIVATE KEY"));
    }

    #[test]
    fn serving_certificate_verifies_against_the_ca_only() {
        use rustls::pki_types::{CertificateDer, UnixTime, pem::PemObject};
        crate::install_crypto_provider();
        let ca = Authority::generate("ca", SystemTime::now(), CA_LIFETIME).unwrap();
        let other = Authority::generate("other", SystemTime::now(), CA_LIFETIME).unwrap();
        let serving = ca
            .issue_serving(&["svc.ns.svc".into()], SystemTime::now(), SERVING_LIFETIME)
            .unwrap();
        let leaf = CertificateDer::from_pem_slice(serving.cert_pem.as_bytes()).unwrap();
        let verify = |root: &Authority, name: &str| {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(root.cert_pem.as_bytes()).unwrap())
                .unwrap();
            let verifier = rustls::client::WebPkiServerVerifier::builder(roots.into())
                .build()
                .unwrap();
            let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
            rustls::client::danger::ServerCertVerifier::verify_server_cert(
                verifier.as_ref(),
                &leaf,
                &[],
                &name,
                &[],
                UnixTime::now(),
            )
            .is_ok()
        };
        assert!(verify(&ca, "svc.ns.svc"));
        assert!(!verify(&ca, "elsewhere.example"));
        assert!(!verify(&other, "svc.ns.svc"));
    }

    #[test]
    fn rotation_is_due_after_two_thirds_of_the_validity() {
        let info = CertInfo {
            not_before: now(),
            not_after: now() + Duration::from_secs(300),
            sans: vec![],
            is_ca: false,
        };
        assert!(!rotation_due(&info, now() + Duration::from_secs(199)));
        assert!(rotation_due(&info, now() + Duration::from_secs(200)));
        assert!(
            rotation_due(&info, now() + Duration::from_secs(301)),
            "expired"
        );
        assert!(
            rotation_due(&info, now() - Duration::from_secs(1)),
            "not valid yet"
        );
        assert_eq!(rotation_time(&info), now() + Duration::from_secs(200));
    }

    #[test]
    fn garbage_is_a_parse_error() {
        assert!(matches!(
            inspect("not a certificate"),
            Err(CertError::Parse { .. })
        ));
        let bad = Authority {
            cert_pem: "x".into(),
            key_pem: "y".into(),
        };
        assert!(matches!(
            bad.issue_serving(&["a".into()], now(), SERVING_LIFETIME),
            Err(CertError::Parse { what: "CA key", .. })
        ));
    }
}

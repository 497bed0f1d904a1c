//! The webhook's certificates live in a `kubernetes.io/tls` Secret in the operator namespace
//! (`tls.crt`, `tls.key`, `ca.crt`, plus `ca.key` so any replica can issue the next serving
//! certificate), so restarts and replicas share one CA. `plan` decides, purely, what to do with
//! what is stored; `ensure` reads, writes and resolves races between replicas.

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tracing::info;

use super::{
    Authority, CA_LIFETIME, CertError, SERVING_LIFETIME, ServingCert, inspect, rotation_due,
};

/// Secret key of the serving certificate.
pub const TLS_CRT: &str = "tls.crt";
/// Secret key of the serving key.
pub const TLS_KEY: &str = "tls.key";
/// Secret key of the CA bundle (the current CA first; during a CA rotation also the previous).
pub const CA_CRT: &str = "ca.crt";
/// Secret key of the current CA's key.
pub const CA_KEY: &str = "ca.key";

/// What the webhook serves and what clients must trust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The serving certificate and key.
    pub serving: ServingCert,
    /// PEM of every CA clients should trust (the webhook configurations' `caBundle`).
    pub ca_bundle_pem: String,
    /// The CA that signs serving certificates, when it is ours (not with user certificates).
    pub authority: Option<Authority>,
}

/// What to do with the stored certificates.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// They are fine: serve them.
    Reuse(Bundle),
    /// The CA is fine, the serving certificate is missing, expiring or lacks a name.
    NewServing(Authority, String),
    /// No usable CA: make a new one (keeping a still valid previous CA in the bundle).
    NewAuthority(Option<String>),
}

fn text(data: &BTreeMap<String, ByteString>, key: &str) -> Option<String> {
    data.get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|s| !s.trim().is_empty())
}

/// Decide from the Secret's data (if any), the names the certificate must cover, and the time.
pub fn plan(data: Option<&BTreeMap<String, ByteString>>, sans: &[String], now: SystemTime) -> Plan {
    let Some(data) = data else {
        return Plan::NewAuthority(None);
    };
    let (Some(ca_bundle), Some(ca_key)) = (text(data, CA_CRT), text(data, CA_KEY)) else {
        return Plan::NewAuthority(None);
    };
    // the first certificate of the bundle is the current CA
    let Some(ca_cert) = first_pem_cert(&ca_bundle) else {
        return Plan::NewAuthority(None);
    };
    match inspect(&ca_cert) {
        Ok(info) if info.is_ca && !rotation_due(&info, now) => {}
        Ok(info) if info.is_ca && now < info.not_after => return Plan::NewAuthority(Some(ca_cert)),
        _ => return Plan::NewAuthority(None),
    }
    let authority = Authority {
        cert_pem: ca_cert,
        key_pem: ca_key,
    };
    // a CA certificate with a key that is not its own signs nothing the apiserver would trust
    if !super::check::key_matches(&authority, now) {
        return Plan::NewAuthority(None);
    }
    let serving = match (text(data, TLS_CRT), text(data, TLS_KEY)) {
        (Some(cert_pem), Some(key_pem)) => ServingCert { cert_pem, key_pem },
        _ => return Plan::NewServing(authority, ca_bundle),
    };
    // reused only if issued by this CA, with its own key (never a half-valid mix)
    let belongs = |name: Option<&String>| {
        name.is_none_or(|n| super::check::issued_by(&authority.cert_pem, &serving, n, now))
    };
    match inspect(&serving.cert_pem) {
        Ok(info)
            if !rotation_due(&info, now)
                && sans.iter().all(|s| info.sans.contains(s))
                && belongs(sans.first()) =>
        {
            Plan::Reuse(Bundle {
                serving,
                ca_bundle_pem: ca_bundle,
                authority: Some(authority),
            })
        }
        _ => Plan::NewServing(authority, ca_bundle),
    }
}

/// Carry out a plan that needs new certificates.
pub fn execute(plan: Plan, sans: &[String], now: SystemTime) -> Result<Bundle, CertError> {
    match plan {
        Plan::Reuse(bundle) => Ok(bundle),
        Plan::NewServing(authority, ca_bundle_pem) => {
            let serving = authority.issue_serving(sans, now, SERVING_LIFETIME)?;
            Ok(Bundle {
                serving,
                ca_bundle_pem,
                authority: Some(authority),
            })
        }
        Plan::NewAuthority(previous) => {
            let authority = Authority::generate("quarks-job-webhook-ca", now, CA_LIFETIME)?;
            let serving = authority.issue_serving(sans, now, SERVING_LIFETIME)?;
            let mut ca_bundle_pem = authority.cert_pem.clone();
            if let Some(prev) = previous {
                ca_bundle_pem.push_str(&prev);
            }
            Ok(Bundle {
                serving,
                ca_bundle_pem,
                authority: Some(authority),
            })
        }
    }
}

fn first_pem_cert(bundle: &str) -> Option<String> {
    let end = "-----END CERTIFICATE-----";
    let stop = bundle.find(end)? + end.len();
    let start = bundle[..stop].find("-----BEGIN CERTIFICATE-----")?;
    Some(format!("{}\n", &bundle[start..stop]))
}

/// The Secret's data for a bundle.
pub fn secret_data(bundle: &Bundle) -> BTreeMap<String, ByteString> {
    let mut data = BTreeMap::new();
    data.insert(
        TLS_CRT.into(),
        ByteString(bundle.serving.cert_pem.clone().into_bytes()),
    );
    data.insert(
        TLS_KEY.into(),
        ByteString(bundle.serving.key_pem.clone().into_bytes()),
    );
    data.insert(
        CA_CRT.into(),
        ByteString(bundle.ca_bundle_pem.clone().into_bytes()),
    );
    if let Some(a) = &bundle.authority {
        data.insert(CA_KEY.into(), ByteString(a.key_pem.clone().into_bytes()));
    }
    data
}

/// Errors of the certificate store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Generating or parsing certificates failed.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The Secret could not be read or written.
    #[error("certificate secret '{namespace}/{name}': {source}")]
    Kube {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// What the apiserver said.
        #[source]
        source: kube::Error,
    },
    /// The Secret does not exist and the operator may not create it (the shipped RBAC grants
    /// no Secret creation: the install creates the Secret empty).
    #[error(
        "certificate secret '{namespace}/{name}' does not exist and the operator may not create \
         Secrets: create it empty (manifests/webhook-cert-secret.yaml, or helm upgrade) and the \
         operator fills it"
    )]
    Missing {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
    },
}

/// Read the certificate Secret, create or renew what is missing or due, and return what to
/// serve. When replicas race, the first write wins and the others adopt what it wrote.
pub async fn ensure(
    client: Client,
    namespace: &str,
    name: &str,
    sans: &[String],
) -> Result<Bundle, StoreError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let kube_err = |source| StoreError::Kube {
        namespace: namespace.into(),
        name: name.into(),
        source,
    };
    for _ in 0..5 {
        let existing = api.get_opt(name).await.map_err(kube_err)?;
        let now = SystemTime::now();
        let plan = plan(existing.as_ref().and_then(|s| s.data.as_ref()), sans, now);
        if let Plan::Reuse(bundle) = plan {
            return Ok(bundle);
        }
        info!(
            "Generating webhook certificates in secret '{namespace}/{name}' ({})",
            describe(&plan)
        );
        let bundle = execute(plan, sans, now)?;
        let creating = existing.is_none();
        let result = match existing {
            None => {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.into()),
                        namespace: Some(namespace.into()),
                        ..Default::default()
                    },
                    type_: Some("kubernetes.io/tls".into()),
                    data: Some(secret_data(&bundle)),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &secret)
                    .await
                    .map(|_| ())
            }
            Some(mut secret) => {
                // replace with the resourceVersion we read: a concurrent writer makes this a conflict
                secret.data = Some(secret_data(&bundle));
                secret.string_data = None;
                api.replace(&secret.name_any(), &PostParams::default(), &secret)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => return Ok(bundle),
            Err(kube::Error::Api(e)) if e.code == 409 => continue, // another replica wrote first: adopt it
            Err(kube::Error::Api(e)) if e.code == 403 && creating => {
                return Err(StoreError::Missing {
                    namespace: namespace.into(),
                    name: name.into(),
                });
            }
            Err(e) => return Err(kube_err(e)),
        }
    }
    Err(kube_err(kube::Error::Service(
        "the certificate secret kept changing under us".into(),
    )))
}

fn describe(plan: &Plan) -> &'static str {
    match plan {
        Plan::Reuse(_) => "reuse",
        Plan::NewServing(..) => "new serving certificate",
        Plan::NewAuthority(Some(_)) => "CA rotation",
        Plan::NewAuthority(None) => "new CA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sans() -> Vec<String> {
        super::super::webhook_sans("svc", "ns", &["127.0.0.1".into()])
    }

    fn stored(now: SystemTime) -> BTreeMap<String, ByteString> {
        secret_data(&execute(Plan::NewAuthority(None), &sans(), now).unwrap())
    }

    #[test]
    fn nothing_stored_means_a_new_ca() {
        assert_eq!(
            plan(None, &sans(), SystemTime::now()),
            Plan::NewAuthority(None)
        );
        assert_eq!(
            plan(Some(&BTreeMap::new()), &sans(), SystemTime::now()),
            Plan::NewAuthority(None)
        );
        let mut garbage = BTreeMap::new();
        garbage.insert(CA_CRT.to_string(), ByteString(b"junk".to_vec()));
        garbage.insert(CA_KEY.to_string(), ByteString(b"junk".to_vec()));
        assert_eq!(
            plan(Some(&garbage), &sans(), SystemTime::now()),
            Plan::NewAuthority(None)
        );
    }

    #[test]
    fn a_left_over_mix_of_two_installs_is_never_reused() {
        let now = SystemTime::now();
        let first = stored(now);
        let second = stored(now);
        // the serving certificate (and key) of another CA: a new one from the stored CA
        let mut mixed = first.clone();
        for key in [TLS_CRT, TLS_KEY] {
            mixed.insert(key.into(), second[key].clone());
        }
        assert!(matches!(
            plan(Some(&mixed), &sans(), now),
            Plan::NewServing(..)
        ));
        // a serving certificate with another key
        let mut mixed = first.clone();
        mixed.insert(TLS_KEY.into(), second[TLS_KEY].clone());
        assert!(matches!(
            plan(Some(&mixed), &sans(), now),
            Plan::NewServing(..)
        ));
        // a CA certificate with another CA's key: a new CA
        let mut mixed = first;
        mixed.insert(CA_KEY.into(), second[CA_KEY].clone());
        assert_eq!(plan(Some(&mixed), &sans(), now), Plan::NewAuthority(None));
    }

    #[test]
    fn valid_certificates_are_reused() {
        let now = SystemTime::now();
        let data = stored(now);
        match plan(Some(&data), &sans(), now + Duration::from_secs(3600)) {
            Plan::Reuse(bundle) => assert_eq!(secret_data(&bundle), data),
            other => panic!("expected reuse, got {other:?}"),
        }
    }

    #[test]
    fn a_new_name_or_an_aging_serving_certificate_gets_a_new_one_from_the_same_ca() {
        let now = SystemTime::now();
        let data = stored(now);
        let mut more = sans();
        more.push("10.0.0.7".into());
        assert!(matches!(
            plan(Some(&data), &more, now),
            Plan::NewServing(..)
        ));
        let later = now + SERVING_LIFETIME * 3 / 4;
        match plan(Some(&data), &sans(), later) {
            Plan::NewServing(authority, bundle) => {
                assert_eq!(bundle, text(&data, CA_CRT).unwrap());
                let next = execute(Plan::NewServing(authority, bundle), &sans(), later).unwrap();
                assert_eq!(
                    next.ca_bundle_pem,
                    text(&data, CA_CRT).unwrap(),
                    "the caBundle does not change"
                );
                assert!(!rotation_due(
                    &inspect(&next.serving.cert_pem).unwrap(),
                    later
                ));
            }
            other => panic!("expected a new serving certificate, got {other:?}"),
        }
        let mut no_serving = data.clone();
        no_serving.remove(TLS_KEY);
        assert!(matches!(
            plan(Some(&no_serving), &sans(), now),
            Plan::NewServing(..)
        ));
    }

    #[test]
    fn an_aging_ca_is_replaced_and_the_old_one_stays_trusted_until_it_expires() {
        let now = SystemTime::now();
        let data = stored(now);
        let old_ca = text(&data, CA_CRT).unwrap();
        let later = now + CA_LIFETIME * 3 / 4;
        let p = plan(Some(&data), &sans(), later);
        assert_eq!(p, Plan::NewAuthority(Some(old_ca.clone())));
        let bundle = execute(p, &sans(), later).unwrap();
        assert!(
            bundle.ca_bundle_pem.ends_with(&old_ca),
            "old CA kept in the bundle"
        );
        assert!(
            bundle
                .ca_bundle_pem
                .starts_with(&bundle.authority.as_ref().unwrap().cert_pem)
        );
        // and the next plan reads the new CA first, so it is reused
        let data = secret_data(&bundle);
        assert!(matches!(plan(Some(&data), &sans(), later), Plan::Reuse(_)));
        // an expired CA is not kept
        let expired = now + CA_LIFETIME + Duration::from_secs(1);
        assert_eq!(
            plan(Some(&stored(now)), &sans(), expired),
            Plan::NewAuthority(None)
        );
    }
}

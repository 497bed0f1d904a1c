//! Keeping the webhook configurations registered while the operator runs. Without the
//! `MutatingWebhookConfiguration` the apiserver admits job pods unmutated, and their output is
//! lost without a word; with a `caBundle` that cannot verify the served certificate, job pods are
//! refused. Whoever damages a configuration (a hand edit, another tool), the operator patches it
//! again at once. A deleted one is created again only when the operator created it (by URL,
//! outside the cluster); through a Service the install owns it (`registration`), and a deletion
//! is an uninstall, which the operator must not undo.
//!
//! The check is deliberately lenient so that replicas never fight: a configuration is intact
//! when each of its webhooks is there and its `caBundle` shares a certificate with ours. After
//! another replica rotated the CA its bundle holds the new CA *and* the old one (which still
//! verifies our serving certificate), so nobody rewrites it; by URL (local runs, tests) replicas
//! may register different addresses without undoing each other.

use std::collections::BTreeSet;

use futures::{Stream, StreamExt};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, ValidatingWebhook,
    ValidatingWebhookConfiguration,
};
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

use super::registration::{MUTATE_PODS_WEBHOOK, VALIDATE_QUARKSJOBS_WEBHOOK};

/// What a watch saw of one configuration: its webhooks' names and `caBundle`s, or that it is
/// gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The configuration (kind, then each webhook's name and caBundle).
    Present(&'static str, Webhooks),
    /// It was deleted.
    Gone(&'static str),
}

impl Seen {
    /// The kind of configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            Seen::Present(kind, _) | Seen::Gone(kind) => kind,
        }
    }
}

const MUTATING: &str = "MutatingWebhookConfiguration";
const VALIDATING: &str = "ValidatingWebhookConfiguration";

/// The certificates of a PEM bundle, as their base64 bodies without white space.
pub fn pem_certificates(pem: &[u8]) -> BTreeSet<String> {
    let text = String::from_utf8_lossy(pem);
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .filter_map(|rest| rest.split("-----END CERTIFICATE-----").next())
        .map(|body| body.split_whitespace().collect::<String>())
        .filter(|body| !body.is_empty())
        .collect()
}

/// Whether `seen` still lets the apiserver call this replica: every webhook the operator
/// registers is there, each with a `caBundle` sharing a certificate with `ca_bundle_pem`.
pub fn intact(seen: &Seen, ca_bundle_pem: &[u8]) -> bool {
    let Seen::Present(kind, webhooks) = seen else {
        return false;
    };
    let expected = if *kind == MUTATING {
        MUTATE_PODS_WEBHOOK
    } else {
        VALIDATE_QUARKSJOBS_WEBHOOK
    };
    let ours = pem_certificates(ca_bundle_pem);
    webhooks.iter().any(|(name, bundle)| {
        name == expected
            && bundle
                .as_deref()
                .is_some_and(|b| !pem_certificates(b).is_disjoint(&ours))
    })
}

/// Changes of the two configurations named `name`, from one watch each (the watches retry
/// with back-off on errors).
pub fn changes(client: Client, name: &str) -> impl Stream<Item = Seen> + Send + 'static {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mutating = watch(
        Api::<MutatingWebhookConfiguration>::all(client.clone()),
        config.clone(),
        MUTATING,
        |c| summaries(c.webhooks),
    );
    let validating = watch(
        Api::<ValidatingWebhookConfiguration>::all(client),
        config,
        VALIDATING,
        |c| summaries(c.webhooks),
    );
    futures::stream::select(mutating, validating)
}

type Webhooks = Vec<(String, Option<Vec<u8>>)>;

/// A webhook of either configuration: its name and `caBundle`.
trait Webhook {
    fn summary(self) -> (String, Option<Vec<u8>>);
}

impl Webhook for MutatingWebhook {
    fn summary(self) -> (String, Option<Vec<u8>>) {
        (self.name, self.client_config.ca_bundle.map(|b| b.0))
    }
}

impl Webhook for ValidatingWebhook {
    fn summary(self) -> (String, Option<Vec<u8>>) {
        (self.name, self.client_config.ca_bundle.map(|b| b.0))
    }
}

fn summaries<W: Webhook>(webhooks: Option<Vec<W>>) -> Webhooks {
    webhooks
        .unwrap_or_default()
        .into_iter()
        .map(Webhook::summary)
        .collect()
}

fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    kind: &'static str,
    webhooks: fn(K) -> Webhooks,
) -> impl Stream<Item = Seen> + Send + 'static
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher(api, config)
        .default_backoff()
        .filter_map(move |event| {
            futures::future::ready(match event {
                Ok(watcher::Event::Apply(c) | watcher::Event::InitApply(c)) => {
                    Some(Seen::Present(kind, webhooks(c)))
                }
                Ok(watcher::Event::Delete(_)) => Some(Seen::Gone(kind)),
                _ => None,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(bodies: &[&str]) -> Vec<u8> {
        bodies
            .iter()
            .map(|b| format!("-----BEGIN CERTIFICATE-----\n{b}\n-----END CERTIFICATE-----\n"))
            .collect::<String>()
            .into_bytes()
    }

    fn mutating(bundle: Option<Vec<u8>>) -> Seen {
        Seen::Present(MUTATING, vec![(MUTATE_PODS_WEBHOOK.into(), bundle)])
    }

    #[test]
    fn certificates_are_compared_without_white_space() {
        let a = pem(&["AAAA\nBBBB"]);
        let b = b"-----BEGIN CERTIFICATE-----\r\nAAAABBBB\r\n-----END CERTIFICATE-----";
        assert_eq!(pem_certificates(&a), pem_certificates(b));
        assert!(pem_certificates(b"garbage").is_empty());
    }

    #[test]
    fn a_registration_verifying_our_certificate_is_intact() {
        let ours = pem(&["NEW", "OLD"]);
        assert!(intact(&mutating(Some(pem(&["NEW", "OLD"]))), &ours));
        // another replica rotated the CA: its bundle still holds the CA we serve from
        assert!(intact(
            &mutating(Some(pem(&["NEWER", "NEW"]))),
            &pem(&["NEW"])
        ));
    }

    #[test]
    fn deleted_emptied_or_foreign_registrations_are_not() {
        let ours = pem(&["CA"]);
        assert!(!intact(&Seen::Gone(MUTATING), &ours));
        assert!(!intact(&mutating(None), &ours));
        assert!(!intact(&mutating(Some(b"".to_vec())), &ours));
        assert!(!intact(&mutating(Some(pem(&["SOMEONE-ELSE"]))), &ours));
        // the webhook itself was removed from the configuration
        assert!(!intact(&Seen::Present(MUTATING, vec![]), &ours));
        let renamed = Seen::Present(
            MUTATING,
            vec![("other.example.com".into(), Some(ours.clone()))],
        );
        assert!(!intact(&renamed, &ours));
        let validating = Seen::Present(
            VALIDATING,
            vec![(VALIDATE_QUARKSJOBS_WEBHOOK.into(), Some(ours.clone()))],
        );
        assert!(intact(&validating, &ours));
    }
}

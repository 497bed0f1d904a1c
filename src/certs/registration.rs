//! Registering the webhooks with the apiserver: a `MutatingWebhookConfiguration` for job pods and
//! a `ValidatingWebhookConfiguration` for QuarksJobs, patched in place (never deleted and
//! re-created) with the current `caBundle`.
//!
//! Who creates them depends on how the apiserver reaches the webhook (docs/webhook.md,
//! "Who owns the webhook configurations"):
//! - through a Service (in the cluster): the install owns them — the Helm chart or
//!   `manifests/` create them and `helm uninstall` / `kubectl delete -k` remove them; the
//!   operator only patches their webhooks (the `caBundle` above all, as cert-manager's cainjector
//!   does) and never creates one, so nothing re-creates them during an uninstall;
//! - by URL (`--webhook-server-host`: a run outside the cluster, `make run`, the tests): no
//!   install exists, so the operator creates them when they are missing.
//!
//! The webhooks built here are the one source of their rules: the shipped YAML (chart and
//! `manifests/webhook-configurations.yaml`) is checked against them by tests/helm.rs and
//! tests/manifests.rs.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};

use crate::core::api::labels::{LABEL_MONITORED, LABEL_QJOB_NAME, LABEL_WEBHOOK_PROBE};
use crate::core::webhooks::Endpoint;

// (paths and names are those of the endpoints' one definition, `core::webhooks::Endpoint`)
/// Path of the pod mutation endpoint.
pub const MUTATE_PODS_PATH: &str = Endpoint::MUTATE_PODS.path;
/// Path of the probe endpoint (the operator's own dry-run pod, see `webhook::probe`).
pub const PROBE_PATH: &str = Endpoint::PROBE.path;
/// Path of the QuarksJob validation endpoint.
pub const VALIDATE_QUARKSJOBS_PATH: &str = Endpoint::VALIDATE_QUARKSJOBS.path;
/// Name of the pod webhook in the `MutatingWebhookConfiguration`.
pub const MUTATE_PODS_WEBHOOK: &str = Endpoint::MUTATE_PODS.webhook;
/// Name of the probe webhook in the `MutatingWebhookConfiguration`.
pub const PROBE_WEBHOOK: &str = Endpoint::PROBE.webhook;
/// Name of the QuarksJob webhook in the `ValidatingWebhookConfiguration`.
pub const VALIDATE_QUARKSJOBS_WEBHOOK: &str = Endpoint::VALIDATE_QUARKSJOBS.webhook;
/// Field manager of the registrations the operator creates (by URL only).
const FIELD_MANAGER: &str = "quarks-job-webhook";
/// The apiserver waits at most this long for an answer.
const TIMEOUT_SECONDS: i32 = 10;
/// ... and for an answer to the probe.
const PROBE_TIMEOUT_SECONDS: i32 = 5;

/// How the apiserver reaches the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookAddress {
    /// In the cluster: through a Service.
    Service {
        /// Namespace of the Service (the operator namespace).
        namespace: String,
        /// Name of the Service.
        name: String,
        /// Port of the Service.
        port: i32,
    },
    /// Outside the cluster (local runs, tests): `https://<host>:<port>`.
    Url {
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
    },
}

/// What the registrations depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// Name of both configurations.
    pub name: String,
    /// Only namespaces labelled `quarks.cloudfoundry.org/monitored=<id>` are sent.
    pub monitored_id: String,
    /// The operator's namespace, never sent to the pod webhook.
    pub operator_namespace: String,
    /// How to reach the webhook.
    pub address: WebhookAddress,
}

impl Registration {
    /// The name of both configurations for `monitored_id`: `quarks-job-<id>` as an object name
    /// (the RBAC of `manifests/` and the chart grants writes to this name only).
    pub fn name_for(monitored_id: &str) -> String {
        crate::core::names::sanitize_subdomain(&format!("quarks-job-{monitored_id}"))
    }

    fn client_config(&self, path: &str, ca_bundle: &[u8]) -> WebhookClientConfig {
        let ca_bundle = Some(ByteString(ca_bundle.to_vec()));
        match &self.address {
            WebhookAddress::Service {
                namespace,
                name,
                port,
            } => WebhookClientConfig {
                ca_bundle,
                service: Some(ServiceReference {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    path: Some(path.into()),
                    port: Some(*port),
                }),
                url: None,
            },
            WebhookAddress::Url { host, port } => {
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                WebhookClientConfig {
                    ca_bundle,
                    service: None,
                    url: Some(format!("https://{host}:{port}{path}")),
                }
            }
        }
    }

    fn namespace_selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: Some([(LABEL_MONITORED.to_string(), self.monitored_id.clone())].into()),
            // `kubernetes.io/metadata.name` is set on every namespace from Kubernetes 1.21; on
            // older servers the label is missing and `NotIn` matches, which is harmless.
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".into(),
                operator: "NotIn".into(),
                values: Some(vec![self.operator_namespace.clone()]),
            }]),
        }
    }

    fn metadata(&self) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.name.clone()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    "quarks-job".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        }
    }

    /// The pod webhook: job pods (label `quarks.cloudfoundry.org/qjob-name`) created in monitored
    /// namespaces. `failurePolicy: Fail`, because a job pod admitted unmutated would silently
    /// lose its output.
    pub fn mutating(&self, ca_bundle: &[u8]) -> MutatingWebhookConfiguration {
        MutatingWebhookConfiguration {
            metadata: self.metadata(),
            webhooks: Some(vec![
                MutatingWebhook {
                    name: MUTATE_PODS_WEBHOOK.into(),
                    admission_review_versions: vec!["v1".into()],
                    client_config: self.client_config(MUTATE_PODS_PATH, ca_bundle),
                    failure_policy: Some("Fail".into()),
                    match_policy: Some("Equivalent".into()),
                    namespace_selector: Some(self.namespace_selector()),
                    object_selector: Some(LabelSelector {
                        match_expressions: Some(vec![LabelSelectorRequirement {
                            key: LABEL_QJOB_NAME.into(),
                            operator: "Exists".into(),
                            values: None,
                        }]),
                        match_labels: None,
                    }),
                    reinvocation_policy: Some("IfNeeded".into()),
                    rules: Some(vec![pod_rule(&Endpoint::MUTATE_PODS)]),
                    side_effects: "None".into(),
                    timeout_seconds: Some(TIMEOUT_SECONDS),
                    ..Default::default()
                },
                self.probe(ca_bundle),
            ]),
        }
    }

    /// The probe: only the operator's own dry-run pod labelled
    /// `quarks.cloudfoundry.org/webhook-probe=<monitored-id>`, in any namespace; `Ignore`, so an
    /// unanswered probe just comes back unannotated. Being in the same configuration as the pod
    /// webhook, an answered probe shows the apiserver uses this configuration and reaches us.
    fn probe(&self, ca_bundle: &[u8]) -> MutatingWebhook {
        MutatingWebhook {
            name: PROBE_WEBHOOK.into(),
            admission_review_versions: vec!["v1".into()],
            client_config: self.client_config(PROBE_PATH, ca_bundle),
            failure_policy: Some("Ignore".into()),
            match_policy: Some("Equivalent".into()),
            object_selector: Some(LabelSelector {
                match_labels: Some(
                    [(LABEL_WEBHOOK_PROBE.to_string(), self.monitored_id.clone())].into(),
                ),
                match_expressions: None,
            }),
            rules: Some(vec![pod_rule(&Endpoint::PROBE)]),
            side_effects: "None".into(),
            timeout_seconds: Some(PROBE_TIMEOUT_SECONDS),
            ..Default::default()
        }
    }

    /// The QuarksJob webhook. `failurePolicy: Ignore`, so a stopped operator does not block
    /// `kubectl apply` of QuarksJobs (the schema still checks the basics; the reconciler reports
    /// what the webhook would have rejected).
    pub fn validating(&self, ca_bundle: &[u8]) -> ValidatingWebhookConfiguration {
        ValidatingWebhookConfiguration {
            metadata: self.metadata(),
            webhooks: Some(vec![ValidatingWebhook {
                name: VALIDATE_QUARKSJOBS_WEBHOOK.into(),
                admission_review_versions: vec!["v1".into()],
                client_config: self.client_config(VALIDATE_QUARKSJOBS_PATH, ca_bundle),
                failure_policy: Some("Ignore".into()),
                match_policy: Some("Equivalent".into()),
                namespace_selector: Some(self.namespace_selector()),
                rules: Some(vec![RuleWithOperations {
                    api_groups: Some(vec!["quarks.cloudfoundry.org".into()]),
                    api_versions: Some(vec!["v1alpha1".into()]),
                    operations: Some(operations(&Endpoint::VALIDATE_QUARKSJOBS)),
                    resources: Some(vec!["quarksjobs".into()]),
                    scope: Some("Namespaced".into()),
                }]),
                side_effects: "None".into(),
                timeout_seconds: Some(TIMEOUT_SECONDS),
                ..Default::default()
            }]),
        }
    }

    /// Whether the install (chart, `manifests/`) owns the configurations: the webhook is
    /// reached through a Service. The operator then never creates them.
    pub fn install_owned(&self) -> bool {
        matches!(self.address, WebhookAddress::Service { .. })
    }

    /// Patch both configurations so that their webhooks are this operator's, with this
    /// `caBundle`. A missing configuration is created only by URL ([`Self::install_owned`] is
    /// false); through a Service the patch fails with 404 (see [`is_missing`]) and nothing is
    /// created.
    pub async fn apply(&self, client: Client, ca_bundle: &[u8]) -> Result<(), kube::Error> {
        let mutating = self.mutating(ca_bundle);
        let validating = self.validating(ca_bundle);
        self.patch_or_create(
            Api::<MutatingWebhookConfiguration>::all(client.clone()),
            webhooks_patch(&mutating.webhooks),
            mutating,
        )
        .await?;
        self.patch_or_create(
            Api::<ValidatingWebhookConfiguration>::all(client),
            webhooks_patch(&validating.webhooks),
            validating,
        )
        .await
    }

    async fn patch_or_create<K>(
        &self,
        api: Api<K>,
        patch: serde_json::Value,
        whole: K,
    ) -> Result<(), kube::Error>
    where
        K: kube::Resource
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        // A JSON merge patch never creates: the configuration must exist.
        match api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Err(e) if is_missing(&e) && !self.install_owned() => {
                let params = PatchParams::apply(FIELD_MANAGER).force();
                api.patch(&self.name, &params, &Patch::Apply(whole))
                    .await
                    .map(drop)
            }
            other => other.map(drop),
        }
    }
}

/// The merge patch that makes a configuration's `webhooks` exactly `webhooks` (a JSON merge
/// patch replaces a list as a whole) and leaves its metadata — the install's labels and
/// annotations — alone.
pub fn webhooks_patch<W: serde::Serialize>(webhooks: &Option<Vec<W>>) -> serde_json::Value {
    serde_json::json!({ "webhooks": webhooks })
}

/// Whether the apiserver answered that the configuration does not exist.
pub fn is_missing(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// The operations of `endpoint`'s rule.
fn operations(endpoint: &Endpoint) -> Vec<String> {
    endpoint.operations.iter().map(|o| o.to_string()).collect()
}

/// The rule of a pod webhook (both admit pod creation).
fn pod_rule(endpoint: &Endpoint) -> RuleWithOperations {
    RuleWithOperations {
        api_groups: Some(vec!["".into()]),
        api_versions: Some(vec!["v1".into()]),
        operations: Some(operations(endpoint)),
        resources: Some(vec!["pods".into()]),
        scope: Some("Namespaced".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(address: WebhookAddress) -> Registration {
        Registration {
            name: "quarks-job-staging".into(),
            monitored_id: "staging".into(),
            operator_namespace: "quarks".into(),
            address,
        }
    }

    #[test]
    fn pod_webhook_matches_only_job_pods_of_monitored_namespaces() {
        let r = registration(WebhookAddress::Service {
            namespace: "quarks".into(),
            name: "qjob-webhook".into(),
            port: 443,
        });
        let config = r.mutating(b"CA");
        let hook = &config.webhooks.as_ref().unwrap()[0];
        assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
        assert_eq!(hook.side_effects, "None");
        assert_eq!(hook.reinvocation_policy.as_deref(), Some("IfNeeded"));
        assert!(hook.timeout_seconds.unwrap() <= 10);
        assert_eq!(hook.admission_review_versions, ["v1"]);
        let ns = hook.namespace_selector.as_ref().unwrap();
        assert_eq!(
            ns.match_labels.as_ref().unwrap()[LABEL_MONITORED],
            "staging"
        );
        let not_in = &ns.match_expressions.as_ref().unwrap()[0];
        assert_eq!(
            (
                not_in.operator.as_str(),
                not_in.values.as_ref().unwrap()[0].as_str()
            ),
            ("NotIn", "quarks")
        );
        let obj = &hook
            .object_selector
            .as_ref()
            .unwrap()
            .match_expressions
            .as_ref()
            .unwrap()[0];
        assert_eq!(
            (obj.key.as_str(), obj.operator.as_str()),
            (LABEL_QJOB_NAME, "Exists")
        );
        let rule = &hook.rules.as_ref().unwrap()[0];
        assert_eq!(rule.resources.as_ref().unwrap()[0], "pods");
        assert_eq!(rule.operations.as_ref().unwrap().as_slice(), ["CREATE"]);
        let svc = hook.client_config.service.as_ref().unwrap();
        assert_eq!(
            (svc.name.as_str(), svc.path.as_deref(), svc.port),
            ("qjob-webhook", Some(MUTATE_PODS_PATH), Some(443))
        );
        assert_eq!(hook.client_config.ca_bundle.as_ref().unwrap().0, b"CA");
    }

    #[test]
    fn the_probe_matches_only_the_operators_probe_pod_and_never_blocks() {
        let r = registration(WebhookAddress::Url {
            host: "127.0.0.1".into(),
            port: 2999,
        });
        let config = r.mutating(b"CA");
        let hooks = config.webhooks.as_ref().unwrap();
        assert_eq!(hooks.len(), 2);
        let probe = &hooks[1];
        assert_eq!(probe.name, PROBE_WEBHOOK);
        assert_eq!(probe.failure_policy.as_deref(), Some("Ignore"));
        assert_eq!(probe.side_effects, "None");
        assert!(probe.namespace_selector.is_none());
        let selector = probe.object_selector.as_ref().unwrap();
        assert_eq!(
            selector.match_labels.as_ref().unwrap()[LABEL_WEBHOOK_PROBE],
            "staging"
        );
        assert_eq!(
            probe.client_config.url.as_deref(),
            Some("https://127.0.0.1:2999/probe")
        );
    }

    #[test]
    fn quarksjob_webhook_does_not_block_when_the_operator_is_down() {
        let r = registration(WebhookAddress::Url {
            host: "127.0.0.1".into(),
            port: 9443,
        });
        let config = r.validating(b"CA");
        let hook = &config.webhooks.as_ref().unwrap()[0];
        assert_eq!(hook.failure_policy.as_deref(), Some("Ignore"));
        assert_eq!(
            hook.client_config.url.as_deref(),
            Some("https://127.0.0.1:9443/validate-quarksjobs")
        );
        assert!(hook.client_config.service.is_none());
        let rule = &hook.rules.as_ref().unwrap()[0];
        assert_eq!(rule.resources.as_ref().unwrap()[0], "quarksjobs");
        assert_eq!(
            rule.operations.as_ref().unwrap().as_slice(),
            ["CREATE", "UPDATE"]
        );
    }

    #[test]
    fn only_a_registration_by_service_is_owned_by_the_install() {
        let by_service = registration(WebhookAddress::Service {
            namespace: "quarks".into(),
            name: "qjob-webhook".into(),
            port: 443,
        });
        assert!(by_service.install_owned());
        let by_url = registration(WebhookAddress::Url {
            host: "127.0.0.1".into(),
            port: 9443,
        });
        assert!(!by_url.install_owned());
    }

    #[test]
    fn the_patch_replaces_the_webhooks_and_leaves_the_metadata_alone() {
        let r = registration(WebhookAddress::Url {
            host: "127.0.0.1".into(),
            port: 9443,
        });
        let config = r.mutating(b"CA");
        let patch = webhooks_patch(&config.webhooks);
        let keys: Vec<&String> = patch.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["webhooks"]);
        let hooks = patch["webhooks"].as_array().unwrap();
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0]["name"], MUTATE_PODS_WEBHOOK);
        // base64 of "CA", as the apiserver expects it
        assert_eq!(hooks[0]["clientConfig"]["caBundle"], "Q0E=");
        assert_eq!(hooks[1]["name"], PROBE_WEBHOOK);
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let r = registration(WebhookAddress::Url {
            host: "::1".into(),
            port: 9443,
        });
        let config = r.mutating(b"CA");
        assert_eq!(
            config.webhooks.unwrap()[0].client_config.url.as_deref(),
            Some("https://[::1]:9443/mutate-pods")
        );
    }
}

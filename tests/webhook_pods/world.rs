//! The world of the webhook tests: a monitored namespace with the output ServiceAccount, and
//! the webhook plus reconciler of the operator watching it, run in-process.

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use quarks_job::certs::{Registration, Source, WebhookAddress, webhook_sans};
use quarks_job::core::api::labels::LABEL_QJOB_NAME;
use quarks_job::health::Readiness;
use quarks_job::webhook::handler::PodSettings;
use quarks_job::webhook::resources::OutputResources;
use serde_json::json;
use tokio::sync::watch;

use crate::support::{
    self, WAIT, admin_client, ensure_crd, eventually, eventually_some, test_namespace, unique,
};

/// The output ServiceAccount of the onboarding manifest.
pub const OUTPUT_SA: &str = "qjob-persist-output";

/// A monitored namespace, and the webhook plus reconciler of the operator watching it.
pub struct World {
    pub client: Client,
    pub ns: String,
    pub stop_webhook: watch::Sender<bool>,
    stop_reconciler: watch::Sender<bool>,
    webhook: tokio::task::JoinHandle<()>,
}

pub async fn world(prefix: &str) -> World {
    let client = admin_client().await;
    ensure_crd(&client).await;
    let id = format!("{prefix}-{}", unique());
    let ops = test_namespace(&client, &format!("{prefix}-ops"), &[]).await;
    // onboarded as users do it: labels, the output account OUTPUT_SA with its token Secret
    let ns = support::monitored_namespace(&client, prefix, &id, &ops).await;

    let port: u16 = support::free_port().parse().unwrap();
    let settings = quarks_job::webhook::WebhookSettings {
        listen: format!("127.0.0.1:{port}"),
        certificates: Source::Managed {
            namespace: ops.clone(),
            secret: "quarks-job-webhook-cert".into(),
            sans: webhook_sans("quarks-job-webhook", &ops, &["127.0.0.1".into()]),
        },
        registration: Registration {
            name: format!("quarks-job-{id}"),
            monitored_id: id.clone(),
            operator_namespace: ops.clone(),
            address: WebhookAddress::Url {
                host: "127.0.0.1".into(),
                port,
            },
        },
        pod: PodSettings {
            image: "cfcontainerization/quarks-job:test".into(),
            pull_policy: "IfNotPresent".into(),
            versioned_secret_history: 0,
            pull_secrets: vec!["registry-creds".into()],
            resources: OutputResources::DEFAULTS.requirements().unwrap(),
        },
        metrics: Default::default(),
    };
    let readiness = Readiness::default();
    let (stop_webhook, webhook_stopping) = watch::channel(false);
    let running = quarks_job::webhook::start(
        client.clone(),
        settings,
        id.clone(),
        readiness.clone(),
        webhook_stopping,
    );
    let webhook = tokio::spawn(async move { running.await.expect("webhook runs") });
    let (stop_reconciler, reconciler_stopping) = watch::channel(false);
    tokio::spawn(quarks_job::reconcile::run_controller(
        client.clone(),
        quarks_job::reconcile::Config::new(id.clone()),
        quarks_job::runtime::stopped(reconciler_stopping),
    ));
    eventually(WAIT, "the webhook to be ready", || {
        let r = readiness.clone();
        async move { r.is_ready() }
    })
    .await;
    World {
        client,
        ns,
        stop_webhook,
        stop_reconciler,
        webhook,
    }
}

impl World {
    pub fn api<K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>>(&self) -> Api<K>
    where
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub async fn versioned_secret(&self, name: &str, version: u32) {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-v{version}"), "labels": {
                "quarks.cloudfoundry.org/secret-kind": "versionedSecret",
                "quarks.cloudfoundry.org/secret-version": version.to_string()}},
            "stringData": {"password": format!("pw{version}")}
        }))
        .unwrap();
        self.api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }

    /// The `n` pods of the QuarksJob `qjob`.
    pub async fn pods(&self, qjob: &str, n: usize) -> Vec<Pod> {
        let pods = self.api::<Pod>();
        eventually_some(WAIT, &format!("{n} pod(s) of QuarksJob {qjob}"), || async {
            let list = pods
                .list(&ListParams::default().labels(&format!("{LABEL_QJOB_NAME}={qjob}")))
                .await
                .ok()?
                .items;
            (list.len() == n).then_some(list)
        })
        .await
    }

    pub async fn stop(self) {
        let _ = self.stop_webhook.send(true);
        let _ = self.stop_reconciler.send(true);
        let _ = self.webhook.await;
        support::delete_namespace(&self.client, &self.ns).await;
    }
}

pub fn errand(name: &str, strategy: &str) -> serde_json::Value {
    json!({
        "apiVersion": "quarks.cloudfoundry.org/v1alpha1",
        "kind": "QuarksJob",
        "metadata": {"name": name},
        "spec": {
            "trigger": {"strategy": strategy},
            "output": {"outputMap": {"jsonout": {"output.json": {"name": "foo-json"}}}},
            "template": {"spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "initContainers": [{"name": "init", "image": "busybox",
                    "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds-v1", "key": "password"}}}]}],
                "containers": [{"name": "jsonout", "image": "busybox",
                    "envFrom": [{"secretRef": {"name": "creds-v1"}}]}]
            }}}}
        }
    })
}

pub async fn trigger(w: &World, name: &str) {
    w.api::<quarks_job::core::api::QuarksJob>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"trigger": {"strategy": "now"}}})),
        )
        .await
        .unwrap();
}

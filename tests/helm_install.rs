//! A real `helm install` of the chart into the local control plane: the operator binary, run
//! with the settings of the installed Deployment and the token of the chart's ServiceAccount,
//! reconciles a QuarksJob in the chart's monitored namespace, with the caBundle it injected into
//! the release's webhook configurations; `helm uninstall` cleans up, those included.
//!
//! No kubelet runs here, so the Deployment's pod never starts: the test runs the binary the way
//! that pod would (same env), except that the webhook is called at 127.0.0.1.

mod reconcile_helpers;
mod support;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use reconcile_helpers::World;
use support::WAIT;
use support::helm::{chart_dir, helm};
use support::{eventually, kubectl};

/// Whether `name` exists in `api`.
async fn exists<K>(api: Api<K>, name: &str) -> bool
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.unwrap().is_some()
}

/// Whether every webhook of the configurations `name` has a PEM `caBundle`.
async fn ca_injected(admin: &kube::Client, name: &str) -> bool {
    let pem = |b: &Option<k8s_openapi::ByteString>| {
        b.as_ref()
            .is_some_and(|b| b.0.starts_with(b"-----BEGIN CERTIFICATE-----"))
    };
    let mutating = Api::<MutatingWebhookConfiguration>::all(admin.clone())
        .get(name)
        .await
        .unwrap();
    let validating = Api::<ValidatingWebhookConfiguration>::all(admin.clone())
        .get(name)
        .await
        .unwrap();
    let m = mutating.webhooks.unwrap_or_default();
    let v = validating.webhooks.unwrap_or_default();
    !m.is_empty()
        && !v.is_empty()
        && m.iter().all(|w| pem(&w.client_config.ca_bundle))
        && v.iter().all(|w| pem(&w.client_config.ca_bundle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_runs_an_operator_that_reconciles_a_quarks_job() {
    reconcile_helpers::init_logging();
    let admin = support::admin_client().await;
    let admin_kc = support::shared().kubeconfig.clone();
    let release = "quarks-job";
    let op_ns = format!("qjob-helm-op-{}", support::unique());
    let ns = format!("qjob-helm-staging-{}", support::unique());
    let id = format!("helm-{}", support::unique());

    let chart = chart_dir();
    let set = format!("global.singleNamespace.name={ns},global.monitoredID={id}");
    let out = helm(
        Some(&admin_kc),
        &[
            "install",
            release,
            chart.to_str().unwrap(),
            "--namespace",
            &op_ns,
            "--create-namespace",
            "--set",
            &set,
        ],
    )
    .unwrap_or_else(|e| panic!("helm install: {e}"));
    assert!(out.contains("STATUS: deployed"), "{out}");

    // the chart's monitored namespace, labelled for this operator, with its output account
    let namespace = Api::<Namespace>::all(admin.clone()).get(&ns).await.unwrap();
    let labels = namespace.metadata.labels.unwrap_or_default();
    assert_eq!(labels["quarks.cloudfoundry.org/monitored"], id);
    assert_eq!(
        labels["quarks.cloudfoundry.org/qjob-service-account"],
        "qjob-persist-output"
    );
    assert!(
        exists(
            Api::<ServiceAccount>::namespaced(admin.clone(), &ns),
            "qjob-persist-output"
        )
        .await
    );
    support::service_account_token(&admin, &ns, "default").await;

    // the installed Deployment's settings, as the binary's environment
    let deployment = Api::<Deployment>::namespaced(admin.clone(), &op_ns)
        .get(release)
        .await
        .unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let container = pod.containers[0].clone();
    let account = pod.service_account_name.expect("serviceAccountName");
    let mut cmd = support::process::quarks_job();
    for var in container.env.unwrap_or_default() {
        assert!(
            quarks_job::cli::ENV_VARS.contains(&var.name.as_str()),
            "{} is not a setting of the binary",
            var.name
        );
        let value = match (var.value, var.value_from) {
            (Some(v), _) => v,
            (None, Some(from)) => {
                let field = from.field_ref.expect("only downward API refs").field_path;
                match field.as_str() {
                    "metadata.namespace" => op_ns.clone(),
                    "metadata.name" => format!("{release}-pod"),
                    other => panic!("unexpected downward API field {other}"),
                }
            }
            (None, None) => String::new(),
        };
        cmd.env(&var.name, value);
    }
    assert_eq!(
        container.image.as_deref(),
        Some(format!("cfcontainerization/quarks-job:{}", quarks_job::VERSION).as_str())
    );

    // the token of the chart's ServiceAccount (Kubernetes 1.20 creates token Secrets)
    let token = support::service_account_token(&admin, &op_ns, &account).await;
    let op_kc = support::shared().kubeconfig_for_token(&format!("helm-{op_ns}"), &token);
    let denied = kubectl(&op_kc, &["get", "nodes"]).unwrap_err();
    assert!(denied.contains("forbidden"), "{denied}");

    // outside the cluster: the apiserver calls the webhook at 127.0.0.1, on free ports
    let health_port = support::free_port();
    cmd.env("KUBECONFIG", &op_kc)
        .env("WEBHOOK_SERVER_HOST", "127.0.0.1")
        .env("WEBHOOK_SERVER_PORT", support::free_port())
        .env("HEALTH_PORT", &health_port);
    let mut operator = support::process::Running::start(cmd);
    operator.wait_for_http_ok(&format!("127.0.0.1:{health_port}"), "/readyz", WAIT);
    // it keeps its certificate in the Secret the chart's Role lets it renew
    assert!(
        exists(
            Api::<Secret>::namespaced(admin.clone(), &op_ns),
            "quarks-job-webhook-cert"
        )
        .await
    );

    let w = World {
        client: admin.clone(),
        ns: ns.clone(),
        id: id.clone(),
    };
    let pod = reconcile_helpers::end_to_end::errand_with_output(&w, || operator.stderr()).await;
    // the injected output container runs the installed operator image
    let persist = pod.spec.unwrap().containers;
    let persist = persist.iter().find(|c| c.name == "output-persist").unwrap();
    assert_eq!(persist.image, container.image);

    // the chart created the webhook configurations; the operator injected its caBundle
    let hooks = quarks_job::certs::Registration::name_for(&id);
    assert!(ca_injected(&admin, &hooks).await);
    operator.stop_never_denied();
    // (by URL the operator pointed them at 127.0.0.1; write what a replica in the pod writes:
    // the release's Service, with the CA it keeps, so the upgrade below meets the real state)
    let ca = Api::<Secret>::namespaced(admin.clone(), &op_ns)
        .get("quarks-job-webhook-cert")
        .await
        .unwrap()
        .data
        .unwrap_or_default()["ca.crt"]
        .0
        .clone();
    let in_pod = quarks_job::certs::Registration {
        name: hooks.clone(),
        monitored_id: id.clone(),
        operator_namespace: op_ns.clone(),
        address: quarks_job::certs::WebhookAddress::Service {
            namespace: op_ns.clone(),
            name: "quarks-job-webhook".into(),
            port: 443,
        },
    };
    in_pod.apply(admin.clone(), &ca).await.unwrap();

    // an upgrade with a changed value reaches the Deployment; the operator's certificate Secret
    // (not part of the release) survives it
    helm(
        Some(&admin_kc),
        &[
            "upgrade",
            release,
            chart.to_str().unwrap(),
            "--namespace",
            &op_ns,
            "--reuse-values",
            "--set",
            "maxWorkers=3",
        ],
    )
    .unwrap_or_else(|e| panic!("helm upgrade: {e}"));
    let upgraded = Api::<Deployment>::namespaced(admin.clone(), &op_ns)
        .get(release)
        .await
        .unwrap();
    let env = upgraded.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap_or_default();
    // the caBundle the operator injected survives the upgrade (the chart has none)
    assert!(ca_injected(&admin, &hooks).await);
    let max_workers = env.iter().find(|e| e.name == "MAX_WORKERS").unwrap();
    assert_eq!(max_workers.value.as_deref(), Some("3"));
    let monitored = env.iter().find(|e| e.name == "MONITORED_ID").unwrap();
    assert_eq!(monitored.value.as_deref(), Some(id.as_str()));
    assert!(
        exists(
            Api::<Secret>::namespaced(admin.clone(), &op_ns),
            "quarks-job-webhook-cert"
        )
        .await
    );

    // uninstall removes the release's objects, the monitored namespace and the webhook
    // configurations included; the CRD stays (Helm never deletes CRDs)
    helm(
        Some(&admin_kc),
        &["uninstall", release, "--namespace", &op_ns],
    )
    .unwrap_or_else(|e| panic!("helm uninstall: {e}"));
    assert!(
        !exists(
            Api::<Deployment>::namespaced(admin.clone(), &op_ns),
            release
        )
        .await
    );
    assert!(!exists(Api::<ClusterRole>::all(admin.clone()), release).await);
    assert!(
        !exists(
            Api::<ClusterRole>::all(admin.clone()),
            "qjob-persist-output"
        )
        .await
    );
    eventually(WAIT, "the monitored namespace deleted", || async {
        Api::<Namespace>::all(admin.clone())
            .get_opt(&ns)
            .await
            .unwrap()
            .is_none_or(|n| n.metadata.deletion_timestamp.is_some())
    })
    .await;
    assert!(
        exists(
            Api::<CustomResourceDefinition>::all(admin.clone()),
            "quarksjobs.quarks.cloudfoundry.org"
        )
        .await
    );
    // the release owned the webhook configurations: none is left to send pods to a webhook
    // that is gone
    assert!(
        !exists(
            Api::<MutatingWebhookConfiguration>::all(admin.clone()),
            &hooks
        )
        .await
    );
    assert!(
        !exists(
            Api::<ValidatingWebhookConfiguration>::all(admin.clone()),
            &hooks
        )
        .await
    );
    support::delete_namespace(&admin, &op_ns).await;
}

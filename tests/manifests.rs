//! The shipped manifests (`manifests/`, `kubectl apply -k manifests/`): accepted by the real
//! apiserver, consistent with the image, and the operator's RBAC is enough to run the real
//! binary end to end with its own ServiceAccount token.

mod reconcile_helpers;
mod support;

use std::collections::BTreeSet;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::Api;
use quarks_job::core::api::labels::{LABEL_MONITORED, LABEL_QJOB_SERVICE_ACCOUNT};
use reconcile_helpers::World;
use serde_json::{Value, json};
use support::WAIT;
use support::manifests::{
    apply, assert_same_configurations, find, manifests_dir, operator_rbac, read_manifest,
    registered_configurations, rendered, webhook_configurations,
};
use support::{eventually, kubectl, yaml};

#[test]
fn kustomization_lists_every_manifest() {
    let kustomization: Value =
        serde_yaml::from_str(&read_manifest("kustomization.yaml")).expect("kustomization.yaml");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(manifests_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present);
}

#[test]
fn deployment_runs_the_image_it_injects_as_non_root() {
    let objects = rendered();
    let c = support::deployment::assert_operator_deployment(&objects, "quarks-job");
    assert_eq!(
        support::deployment::env_value(c, "DOCKER_IMAGE_TAG").as_deref(),
        Some(quarks_job::VERSION)
    );
    let deployment = find(&objects, "Deployment", "quarks-job");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "quarks-job"
    );
    assert_eq!(deployment["spec"]["replicas"], 2);
    let service = find(&objects, "Service", "quarks-job-webhook");
    assert_eq!(service["metadata"]["namespace"], "quarks-job");
}

#[tokio::test]
async fn every_manifest_passes_a_server_side_dry_run() {
    let objects = rendered();
    let namespaces = objects.iter().filter(|o| o["kind"] == "Namespace").count();
    assert_eq!(namespaces, 2, "quarks-job and staging");
    yaml::server_dry_run(&support::shared().kubeconfig, &objects);
}

/// The webhook configurations of the install are exactly those the operator's code builds
/// (src/certs/registration.rs is the one source of their rules), without a `caBundle`, which
/// the operator injects.
#[test]
fn webhook_configurations_are_the_operators() {
    let objects = rendered();
    let shipped = [
        find(
            &objects,
            "MutatingWebhookConfiguration",
            "quarks-job-default",
        ),
        find(
            &objects,
            "ValidatingWebhookConfiguration",
            "quarks-job-default",
        ),
    ];
    assert_same_configurations(
        &shipped,
        &registered_configurations("quarks-job", "quarks-job-webhook", 443, "default"),
    );
}

/// The operator binary, run with the token of its ServiceAccount bound to the shipped RBAC (not
/// an admin token), reconciles a QuarksJob with output end to end without a single `forbidden`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_rbac_is_enough_to_run_a_quarks_job_end_to_end() {
    reconcile_helpers::init_logging();
    let admin = support::admin_client().await;
    let admin_kc = support::shared().kubeconfig.clone();

    // operator namespace: a unique one, the manifests' `quarks-job` rewritten
    // (and a unique monitored id: the webhook configurations it may write are named after it)
    let op_ns = support::test_namespace(&admin, "qjob-op", &[]).await;
    let id = format!("ship-{}", support::unique());
    apply(&admin_kc, &operator_rbac(&op_ns, &id));
    apply(&admin_kc, &read_manifest("persist-output-clusterrole.yaml"));

    // the monitored namespace: the `staging` example with a unique name and monitored id
    let staging = read_manifest("staging-namespace.yaml");
    assert!(staging.contains(&format!("{LABEL_MONITORED}: default")));
    assert!(staging.contains(&format!(
        "{LABEL_QJOB_SERVICE_ACCOUNT}: qjob-persist-output"
    )));
    let ns = support::monitored_namespace(&admin, "qjob-staging", &id, &op_ns).await;

    // the operator's token (Kubernetes 1.20 creates token Secrets)
    let token = support::service_account_token(&admin, &op_ns, "quarks-job").await;
    let op_kc = support::shared().kubeconfig_for_token(&format!("operator-{op_ns}"), &token);
    // the token really is the restricted account, not an admin
    let denied = kubectl(&op_kc, &["get", "nodes"]).unwrap_err();
    assert!(denied.contains("forbidden"), "{denied}");

    // the empty certificate Secret of the install: the operator fills it in place (secrets
    // get and update of that one name, granted only by the Role in the operator namespace)
    apply(
        &admin_kc,
        &read_manifest("webhook-cert-secret.yaml")
            .replace("namespace: quarks-job", &format!("namespace: {op_ns}")),
    );
    let op_secrets: Api<Secret> = Api::namespaced(admin.clone(), &op_ns);
    // the install's webhook configurations, which the operator may patch but not create
    let configurations = webhook_configurations(&op_ns, &id);
    apply(&admin_kc, &configurations);

    // ready: CRD applied, certificates stored, webhooks registered, caches synced
    let mut launch = support::process::Operator::out_of_cluster(&op_kc, &op_ns, &id);
    launch.cmd.args(["--log-level", "debug"]);
    let operator = launch.start();

    let cert = op_secrets.get("quarks-job-webhook-cert").await.unwrap();
    assert!(
        cert.data.unwrap_or_default().contains_key("ca.crt"),
        "certificate Secret not renewed"
    );

    let w = World {
        client: admin.clone(),
        ns: ns.clone(),
        id: id.clone(),
    };
    reconcile_helpers::end_to_end::errand_with_output(&w, || operator.stderr()).await;
    // the output account's token Secret the pod mounts came with the onboarding, and
    // Kubernetes filled it
    let token_name = quarks_job::webhook::mutate::token_secret_name("qjob-persist-output");
    eventually(WAIT, "the output account's token", || async {
        Api::<Secret>::namespaced(admin.clone(), &ns)
            .get_opt(&token_name)
            .await
            .unwrap()
            .and_then(|s| s.data)
            .is_some_and(|d| d.contains_key("token"))
    })
    .await;

    // a second run reads a referenced ConfigMap (configmaps get) and, with `delete: pod`,
    // deletes its pod after success (pods delete)
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    cms.create(
        &Default::default(),
        &serde_json::from_value(json!({"metadata": {"name": "config"}, "data": {"A": "1"}}))
            .unwrap(),
    )
    .await
    .unwrap();
    w.create(json!({
        "metadata": {"name": "cleaner"},
        "spec": {
            "trigger": {"strategy": "now"},
            "template": {"spec": {"backoffLimit": 0, "template": {
                "metadata": {"labels": {"delete": "pod"}},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "busybox", "image": "busybox", "command": ["true"],
                        "envFrom": [{"configMapRef": {"name": "config"}}]}]
                }
            }}}
        }
    }))
    .await;
    let job = w.wait_jobs("cleaner", 1).await.remove(0).name_any();
    let pod = w.finish_job(&job, 0).await.name_any();
    w.wait_job_gone(&job).await;
    eventually(WAIT, "pod of cleaner deleted", || async {
        w.pods().get_opt(&pod).await.unwrap().is_none()
    })
    .await;
    w.wait_qjob("cleaner", "completed", |q| {
        q.status.as_ref().is_some_and(|s| s.completed)
    })
    .await;

    // its RBAC was enough for all of that
    let so_far = operator.stderr();
    assert!(
        !so_far.to_lowercase().contains("forbidden"),
        "the operator was denied something:\n{so_far}"
    );

    // the webhook configurations belong to the install: deleted, the operator cannot create
    // them again (no `create`); re-installed, it injects its caBundle; damaged, it repairs it
    // (list, watch, patch)
    let registration = format!("quarks-job-{id}");
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
    let registered = || async {
        mutating
            .get_opt(&registration)
            .await
            .unwrap()
            .is_some_and(|c| {
                c.webhooks.unwrap_or_default().iter().any(|w| {
                    w.client_config
                        .ca_bundle
                        .as_ref()
                        .is_some_and(|b| b.0.starts_with(b"-----BEGIN CERTIFICATE-----"))
                })
            })
    };
    assert!(registered().await);
    kubectl(
        &admin_kc,
        &[
            "delete",
            "mutatingwebhookconfiguration,validatingwebhookconfiguration",
            &registration,
        ],
    )
    .unwrap();
    eventually(WAIT, "the operator trying to register it again", || async {
        operator.stderr().contains("registering it again")
    })
    .await;
    let can_create = kubectl(
        &op_kc,
        &["auth", "can-i", "create", "mutatingwebhookconfigurations"],
    );
    assert!(can_create.is_err(), "{can_create:?}");
    assert!(mutating.get_opt(&registration).await.unwrap().is_none());
    apply(&admin_kc, &configurations);
    eventually(WAIT, "the re-installed registration's caBundle", registered).await;
    kubectl(
        &admin_kc,
        &[
            "patch",
            "mutatingwebhookconfiguration",
            &registration,
            "--type=json",
            "-p",
            r#"[{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": "Zm9v"}]"#,
        ],
    )
    .unwrap();
    eventually(WAIT, "the damaged caBundle repaired", registered).await;

    // denied only what the test provoked: creating the deleted configuration
    operator.stop_denied_only("Cannot register webhook configurations");
    w.cleanup().await;
    support::delete_namespace(&admin, &op_ns).await;
}

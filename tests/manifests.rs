//! The shipped manifests (`manifests/`, `kubectl apply -k manifests/`): accepted by the real
//! apiserver, consistent with the image, and the operator's RBAC is enough to run the real
//! binary end to end with its own ServiceAccount token.

mod reconcile_helpers;
mod support;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::Api;
use quarks_job::api::Strategy;
use quarks_job::api::labels::{LABEL_MONITORED, LABEL_QJOB_SERVICE_ACCOUNT};
use reconcile_helpers::{WAIT, World, created_run};
use serde_json::{Value, json};
use support::manifests::{apply, find, manifests_dir, read_manifest, rendered};
use support::{eventually, kubectl};

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
    let deployment = find(&objects, "Deployment", "quarks-job");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "quarks-job");
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let env: Vec<(String, Value)> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect();
    let value = |name: &str| -> String {
        env.iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no env {name}"))
            .1["value"]
            .as_str()
            .unwrap_or_else(|| panic!("env {name} has no value"))
            .to_string()
    };
    // the operator injects org/repository:tag into job pods: it must be this very image
    assert_eq!(
        c["image"].as_str().unwrap(),
        format!(
            "{}/{}:{}",
            value("DOCKER_IMAGE_ORG"),
            value("DOCKER_IMAGE_REPOSITORY"),
            value("DOCKER_IMAGE_TAG")
        )
    );
    assert_eq!(value("DOCKER_IMAGE_TAG"), quarks_job::VERSION);
    assert_eq!(
        value("DOCKER_IMAGE_PULL_POLICY"),
        c["imagePullPolicy"].as_str().unwrap()
    );
    let ns_env = &env
        .iter()
        .find(|(n, _)| n == "OPERATOR_NAMESPACE")
        .expect("OPERATOR_NAMESPACE")
        .1;
    assert_eq!(
        ns_env["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    // the binary is the entrypoint: no command/args override (the output container passes
    // `persist-output` as args to the same entrypoint)
    assert!(c.get("command").is_none() && c.get("args").is_none(), "{c}");
    let dockerfile = std::fs::read_to_string(support::repo_root().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/quarks-job"]"#),
        "{dockerfile}"
    );
    // non-root, read-only root filesystem, probes on the health port, resources
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let health_port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "health")
        .expect("health port");
    assert_eq!(health_port["containerPort"], 8081);
    // metrics are scraped from the health port
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(annotations["prometheus.io/port"], "8081");
    assert!(c["resources"]["requests"].is_object() && c["resources"]["limits"].is_object());
    // the webhook Service reaches the webhook port
    let webhook_port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "webhook")
        .expect("webhook port");
    assert_eq!(webhook_port["containerPort"], 2999);
    let service = find(&objects, "Service", "quarks-job-webhook");
    assert_eq!(service["metadata"]["namespace"], "quarks-job");
    assert_eq!(service["spec"]["ports"][0]["port"], 443);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "webhook");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
}

#[tokio::test]
async fn every_manifest_passes_a_server_side_dry_run() {
    let kubeconfig = support::shared().kubeconfig.clone();
    let objects = rendered();
    // namespaced objects can only be dry-run into namespaces that exist
    let namespaces: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "Namespace")
        .collect();
    assert_eq!(namespaces.len(), 2, "quarks-job and staging");
    for ns in &namespaces {
        apply(&kubeconfig, &serde_json::to_string(ns).unwrap());
    }
    let out = kubectl(
        &kubeconfig,
        &[
            "apply",
            "--dry-run=server",
            "-k",
            manifests_dir().to_str().unwrap(),
        ],
    )
    .unwrap_or_else(|e| panic!("server-side dry run rejected: {e}"));
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("(server dry run)"))
        .collect();
    assert_eq!(lines.len(), objects.len(), "{out}");
}

/// The operator binary, run with the token of its ServiceAccount bound to the shipped RBAC (not
/// an admin token), reconciles a QuarksJob with output end to end without a single `forbidden`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_rbac_is_enough_to_run_a_quarks_job_end_to_end() {
    reconcile_helpers::init_logging();
    let admin = support::admin_client().await;
    let admin_kc = support::shared().kubeconfig.clone();

    // operator namespace: a unique one, the manifests' `quarks-job` rewritten
    let op_ns = support::test_namespace(&admin, "qjob-op", &[]).await;
    let rbac = read_manifest("operator-rbac.yaml")
        .replace("namespace: quarks-job", &format!("namespace: {op_ns}"));
    assert!(rbac.contains(&format!("namespace: {op_ns}")));
    apply(&admin_kc, &rbac);
    apply(&admin_kc, &read_manifest("persist-output-clusterrole.yaml"));

    // the monitored namespace: the `staging` example with a unique name and monitored id
    let id = format!("ship-{}", support::unique());
    let ns = format!("qjob-staging-{}", support::unique());
    let staging = read_manifest("staging-namespace.yaml");
    assert!(staging.contains(&format!("{LABEL_MONITORED}: default")));
    assert!(staging.contains(&format!(
        "{LABEL_QJOB_SERVICE_ACCOUNT}: qjob-persist-output"
    )));
    let staging = staging
        .replace("name: staging", &format!("name: {ns}"))
        .replace("namespace: staging", &format!("namespace: {ns}"))
        .replace(
            &format!("{LABEL_MONITORED}: default"),
            &format!("{LABEL_MONITORED}: {id}"),
        );
    apply(&admin_kc, &staging);
    support::service_account_token(&admin, &ns, "default").await;

    // the operator's token (Kubernetes 1.20 creates token Secrets)
    let token = support::service_account_token(&admin, &op_ns, "quarks-job").await;
    let op_kc = support::shared().kubeconfig_for_token(&format!("operator-{op_ns}"), &token);
    // the token really is the restricted account, not an admin
    let denied = kubectl(&op_kc, &["get", "nodes"]).unwrap_err();
    assert!(denied.contains("forbidden"), "{denied}");

    // an empty certificate Secret, as if left over: the operator must renew it in place
    // (secrets update, granted only by the Role in the operator namespace)
    let op_secrets: Api<Secret> = Api::namespaced(admin.clone(), &op_ns);
    op_secrets
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "quarks-job-webhook-cert"}}))
                .unwrap(),
        )
        .await
        .unwrap();

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
    w.create(json!({
        "metadata": {"name": "errand"},
        "spec": {
            "trigger": {"strategy": "now"},
            "output": {"outputMap": {"jsonout": {"output.json": {"name": "foo-json"}}}},
            "template": {"spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "jsonout", "image": "busybox",
                    "command": ["/bin/sh", "-c", "echo '{\"foo\": \"1\"}' > /mnt/quarks/output.json"]}]
            }}}}
        }
    }))
    .await;
    let q = w
        .wait_qjob("errand", "Job created", |q| created_run(q) == 1)
        .await;
    assert_eq!(
        q.strategy(),
        Some(Strategy::Manual),
        "{}",
        operator.stderr()
    );
    let job = w.wait_jobs("errand", 1).await.remove(0).name_any();

    // the pod the job controller created was mutated by the operator's webhook
    let pod = w.pod_of(&job).await;
    let spec = pod.spec.clone().unwrap();
    let persist = spec
        .containers
        .iter()
        .find(|c| c.name == "output-persist")
        .unwrap_or_else(|| panic!("pod not mutated: {spec:?}\n{}", operator.stderr()));
    assert_eq!(
        persist.args.as_deref(),
        Some(&["persist-output".to_string()][..])
    );

    // the kubelet stand-in finishes the pod: the Job succeeds and is cleaned up
    support::kubelet::finish_pod(&w.pods(), &pod.name_any(), 0).await;
    w.wait_job_gone(&job).await;
    let q = w
        .wait_qjob("errand", "completed", |q| {
            q.status.as_ref().is_some_and(|s| s.completed)
        })
        .await;
    assert_eq!(q.strategy(), Some(Strategy::Manual));
    // the kept pod is re-owned to the QuarksJob (a patch the RBAC must allow)
    eventually(WAIT, "pod re-owned to the QuarksJob", || async {
        w.pods()
            .get(&pod.name_any())
            .await
            .unwrap()
            .owner_references()
            .iter()
            .any(|o| o.kind == "QuarksJob" && o.name == "errand")
    })
    .await;
    // and the operator keeps its own token Secret for the output account (secrets create)
    let token_name = quarks_job::webhook::mutate::token_secret_name("qjob-persist-output");
    eventually(WAIT, "the operator's output token Secret", || async {
        Api::<Secret>::namespaced(admin.clone(), &ns)
            .get_opt(&token_name)
            .await
            .unwrap()
            .is_some()
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

    let log = operator.stderr();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator was denied something:\n{log}"
    );
    let status = operator.terminate();
    assert!(status.success(), "exit {status:?}\n{log}");
    w.cleanup().await;
    support::delete_namespace(&admin, &op_ns).await;
}

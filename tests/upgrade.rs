//! Upgrading from upstream Quarks Job in place: upstream's `apiextensions.k8s.io/v1beta1` CRD
//! and objects written by upstream stay; the operator replaces the CRD with its `v1` one, keeps
//! every QuarksJob, does not re-run `done` ones, and runs errands as before.

mod support;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use quarks_job::core::api::labels::{LABEL_MONITORED, LABEL_QJOB_NAME, LABEL_QJOB_SERVICE_ACCOUNT};
use quarks_job::core::api::{CRD_NAME, QuarksJob};
use serde_json::json;
use support::WAIT;
use support::process::{Operator, Running};
use support::yaml::apply;
use support::{eventually, eventually_some, kubectl};

/// Upstream's CRD, as its operator registered it (reference §1.1–§1.3).
const UPSTREAM_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1beta1
kind: CustomResourceDefinition
metadata:
  name: quarksjobs.quarks.cloudfoundry.org
spec:
  group: quarks.cloudfoundry.org
  names: {kind: QuarksJob, plural: quarksjobs, shortNames: [qjob, qjobs]}
  scope: Namespaced
  preserveUnknownFields: false
  version: v1alpha1
  versions: [{name: v1alpha1, served: true, storage: true}]
  subresources: {status: {}}
  additionalPrinterColumns:
    - {name: completed, type: boolean, JSONPath: .status.completed}
    - {name: strategy, type: string, priority: 10, JSONPath: .spec.trigger.strategy}
    - {name: updateOnConfigChange, type: boolean, priority: 20, JSONPath: .spec.updateOnConfigChange}
  validation:
    openAPIV3Schema:
      type: object
      properties:
        spec:
          type: object
          properties:
            output:
              type: object
              required: [outputMap]
              properties:
                outputMap: {type: object, x-kubernetes-preserve-unknown-fields: true}
                outputType: {type: string}
                secretLabels: {type: object, x-kubernetes-preserve-unknown-fields: true}
                writeOnFailure: {type: boolean}
            trigger:
              type: object
              required: [strategy]
              properties:
                strategy: {type: string, enum: [manual, once, now, done]}
            template: {type: object, x-kubernetes-preserve-unknown-fields: true}
            updateOnConfigChange: {type: boolean}
        status:
          type: object
          properties:
            lastReconcile: {type: string, nullable: true}
            completed: {type: boolean}
"#;

fn qjob(ns: &str, name: &str, strategy: &str) -> serde_json::Value {
    json!({
        "apiVersion": "quarks.cloudfoundry.org/v1alpha1",
        "kind": "QuarksJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "trigger": {"strategy": strategy},
            "updateOnConfigChange": true,
            "output": {"outputMap": {"work": {"out.json": {"name": "out", "versioned": true}}}},
            "template": {"spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "work", "image": "busybox",
                    "envFrom": [{"configMapRef": {"name": "settings"}},
                                {"secretRef": {"name": "out-v1"}}]}]
            }}}}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_takes_over_an_upstream_installation_in_place() {
    quarks_job::install_crypto_provider();
    let kubeconfig = support::shared().kubeconfig.clone();
    let client = support::admin_client().await;

    // what upstream left behind: its v1beta1 CRD ...
    apply(&kubeconfig, UPSTREAM_CRD);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    eventually(WAIT, "the upstream CRD established", || async {
        crds.get(CRD_NAME).await.ok().is_some_and(|c| {
            c.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
    })
    .await;
    let id = format!("upgrade-{}", support::unique());
    let ns = support::test_namespace(
        &client,
        "upgrade",
        &[
            (LABEL_MONITORED, &id),
            (LABEL_QJOB_SERVICE_ACCOUNT, "default"),
        ],
    )
    .await;
    let op_ns = support::test_namespace(&client, "upgrade-op", &[]).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let settings: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"a": "1"}}))
            .unwrap();
    config_maps
        .create(&PostParams::default(), &settings)
        .await
        .unwrap();
    // ... a QuarksJob that ran once under upstream (status as upstream wrote it), an errand ...
    apply(
        &kubeconfig,
        &serde_json::to_string(&qjob(&ns, "ran-before", "done")).unwrap(),
    );
    apply(
        &kubeconfig,
        &serde_json::to_string(&qjob(&ns, "errand", "manual")).unwrap(),
    );
    let qjobs: Api<QuarksJob> = Api::namespaced(client.clone(), &ns);
    qjobs
        .patch_status(
            "ran-before",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"completed": true, "lastReconcile": "2021-04-01T10:00:00Z"}}),
            ),
        )
        .await
        .expect("upstream status");
    // ... and two versions of its output
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for v in 1..=2 {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("out-v{v}"), "labels": {
                "quarks.cloudfoundry.org/secret-kind": "versionedSecret",
                "quarks.cloudfoundry.org/secret-version": v.to_string(),
            }},
            "stringData": {"k": format!("v{v}")}
        }))
        .unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }

    // the new operator starts with --apply-crd (the default)
    let mut cmd = Operator::out_of_cluster(&kubeconfig, &op_ns, &id).cmd;
    cmd.args(["--log-level", "info"]);
    let mut operator = Running::start(cmd);
    operator.wait_for_log("starting the reconciler", WAIT);

    // the CRD is the operator's v1 one now, and every object is still there
    let crd = crds.get(CRD_NAME).await.unwrap();
    let version = &crd.spec.versions[0];
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert!(columns.contains(&"Age"), "{columns:?}");
    let schema = serde_json::to_value(&version.schema).unwrap();
    assert!(
        !schema["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"].is_null(),
        "the status schema is still upstream's: {schema}"
    );
    let listed = kubectl(
        &kubeconfig,
        &[
            "get",
            "qjobs",
            "-n",
            &ns,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    )
    .unwrap();
    assert_eq!(listed, "errand ran-before");

    // the QuarksJob that ran under upstream adopts the config digest without running again
    let adopted = eventually_some(WAIT, "ran-before adopts its config digest", || async {
        let q = qjobs.get("ran-before").await.ok()?;
        q.status.as_ref()?.config_digest.as_ref()?;
        Some(q)
    })
    .await;
    assert!(adopted.status.as_ref().unwrap().completed);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let of = |name: &str| ListParams::default().labels(&format!("{LABEL_QJOB_NAME}={name}"));
    assert!(jobs.list(&of("ran-before")).await.unwrap().items.is_empty());
    assert!(jobs.list(&of("errand")).await.unwrap().items.is_empty());

    // an errand runs as before; its pod gets the newest version upstream wrote
    apply(
        &kubeconfig,
        &serde_json::to_string(&qjob(&ns, "errand", "now")).unwrap(),
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod = eventually_some(WAIT, "the errand's pod", || async {
        pods.list(&of("errand"))
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    let env_from = serde_json::to_value(&pod.spec.unwrap().containers[0].env_from).unwrap();
    assert_eq!(env_from[1]["secretRef"]["name"], "out-v2", "{env_from}");
    // changing the config re-runs the QuarksJob that ran under upstream, once
    config_maps
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "2"}})),
        )
        .await
        .unwrap();
    eventually(WAIT, "ran-before re-runs on the config change", || async {
        jobs.list(&of("ran-before")).await.unwrap().items.len() == 1
    })
    .await;
    let status = operator.terminate();
    assert!(status.success(), "{status:?}");
}

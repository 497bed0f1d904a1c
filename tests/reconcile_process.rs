//! The operator binary runs the reconciler and shuts down gracefully on SIGTERM.

mod reconcile_helpers;
mod support;

use quarks_job::api::Strategy;
use reconcile_helpers::{World, created_run, qjob};
use serde_json::json;
use support::process::{Operator, Running, http_get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reconciles_until_sigterm() {
    let w = World::new("binary").await;
    let kubeconfig = support::shared().kubeconfig.clone();
    let mut operator = Operator::out_of_cluster(&kubeconfig, &w.ns, &w.id);
    let health = operator.health().to_string();
    operator
        .cmd
        .args(["--log-level", "info", "--max-workers", "2"]);
    // no wait for readiness: the QuarksJob may come before the webhook is registered
    let child = Running::start(operator.cmd);
    w.create(qjob("via-binary", "now", json!({}))).await;
    let q = w
        .wait_qjob("via-binary", "ran", |q| created_run(q) == 1)
        .await;
    assert_eq!(q.strategy(), Some(Strategy::Manual));
    let job = w.wait_jobs("via-binary", 1).await.remove(0);
    let shown = support::kubectl(
        &kubeconfig,
        &[
            "get",
            "qjob",
            "-n",
            &w.ns,
            "via-binary",
            "-o",
            "jsonpath={.status.lastJobName}",
        ],
    )
    .unwrap();
    assert_eq!(shown, kube::ResourceExt::name_any(&job));

    // the binary's webhook mutated the pod the job controller created
    let pod = w.pod_of(&kube::ResourceExt::name_any(&job)).await;
    let spec = pod.spec.unwrap();
    assert!(
        spec.volumes
            .iter()
            .flatten()
            .any(|v| v.name.starts_with("output-") && v.empty_dir.is_some()),
        "pod not mutated: {:?}",
        spec.volumes
    );
    // and the health port says ready
    let ready = http_get(&health, "/readyz").unwrap_or_default();
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");

    // SIGTERM: graceful shutdown, exit code 0
    let (status, stderr) = child.terminate_with_log();
    assert!(status.success(), "exit {status:?}\n{stderr}");
    assert!(
        stderr.contains(&format!("monitoring namespaces labeled with '{}'", w.id)),
        "{stderr}"
    );
    assert!(
        stderr.contains("Received SIGTERM") && stderr.contains("reconciler stopped"),
        "{stderr}"
    );
    // Jobs are only created once the webhook serves, so their pods are always mutated
    let registered = stderr
        .find("Registered webhook configurations")
        .expect("registered");
    let started = stderr
        .find("Webhook is serving; starting the reconciler")
        .expect("reconciler started");
    assert!(registered < started, "{stderr}");
    w.cleanup().await;
}

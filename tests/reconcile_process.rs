//! The operator binary runs the reconciler and the webhook, serves its metrics and JSON logs,
//! and shuts down gracefully on SIGTERM.

mod reconcile_helpers;
mod support;

use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use quarks_job::core::api::Strategy;
use quarks_job::reconcile::status;
use reconcile_helpers::{World, created_run, is_true, qjob};
use serde_json::{Value, json};
use support::WAIT;
use support::process::{Operator, Running, http_get};
use support::{eventually, metric};

/// The metrics the binary serves on its health port.
async fn scrape(health: &str) -> String {
    let response = http_get(health, "/metrics").expect("the health port answers");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// Wait until the sample `series` has the value `want`.
async fn wait_metric(health: &str, series: &str, want: f64) {
    eventually(WAIT, &format!("{series} == {want}"), || async {
        metric(&scrape(health).await, series) == Some(want)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reconciles_until_sigterm() {
    let w = World::new("binary").await;
    let kubeconfig = support::shared().kubeconfig.clone();
    let mut launch = Operator::out_of_cluster(&kubeconfig, &w.ns, &w.id);
    let health = launch.health().to_string();
    launch.cmd.args([
        "--log-level",
        "debug",
        "--log-format",
        "json",
        "--max-workers",
        "2",
    ]);
    // no wait for readiness: the QuarksJob may come before the webhook is registered
    let operator = Running::start(launch.cmd);
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
    assert_eq!(shown, job.name_any());

    // the binary's webhook mutated the pod the job controller created
    let pod = w.pod_of(&job.name_any()).await;
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

    // metrics: the Job's creation, the pod's admission, the served certificate
    wait_metric(&health, "quarks_job_jobs_created_total", 1.0).await;
    let text = scrape(&health).await;
    assert!(metric(&text, "quarks_job_reconcile_total").unwrap() > 0.0);
    assert!(metric(&text, "quarks_job_reconcile_duration_seconds_count").unwrap() > 0.0);
    for kind in quarks_job::reconcile::Error::KINDS {
        let errors = format!("quarks_job_reconcile_errors_total{{error=\"{kind}\"}}");
        assert!(metric(&text, &errors).is_some(), "{errors}:\n{text}");
    }
    let mutate = r#"{webhook="mutate-pods",operation="CREATE"}"#;
    let admitted = format!("quarks_job_admission_requests_total{mutate}");
    assert!(metric(&text, &admitted).unwrap() >= 1.0, "{text}");
    let denied = format!("quarks_job_admission_denials_total{mutate}");
    assert_eq!(metric(&text, &denied), Some(0.0), "{text}");
    let latency = r#"quarks_job_admission_duration_seconds_count{webhook="mutate-pods"}"#;
    assert!(metric(&text, latency).unwrap() >= 1.0, "{text}");
    let cert = Api::<Secret>::namespaced(w.client.clone(), &w.ns)
        .get("quarks-job-webhook-cert")
        .await
        .unwrap();
    let tls_crt = String::from_utf8(cert.data.unwrap()["tls.crt"].0.clone()).unwrap();
    let not_after = quarks_job::certs::inspect(&tls_crt).unwrap().not_after;
    let not_after = not_after.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(
        metric(&text, "quarks_job_certificate_expiry_timestamp_seconds"),
        Some(not_after.as_secs_f64())
    );

    // the Job succeeds and is cleaned up: counted once, however often it is reconciled
    w.finish_job(&job.name_any(), 0).await;
    w.wait_job_gone(&job.name_any()).await;
    wait_metric(&health, "quarks_job_jobs_succeeded_total", 1.0).await;
    // another QuarksJob's Job fails: counted once when its Failed condition is written
    w.create(qjob("failing", "now", json!({}))).await;
    let failing = w.wait_jobs("failing", 1).await.remove(0).name_any();
    w.finish_job(&failing, 1).await;
    w.wait_qjob("failing", "Failed", |q| is_true(q, status::FAILED))
        .await;
    wait_metric(&health, "quarks_job_jobs_failed_total", 1.0).await;
    // reconciled again after their transitions, without counting them again
    w.barrier("via-binary").await;
    w.barrier("failing").await;
    let text = scrape(&health).await;
    assert_eq!(metric(&text, "quarks_job_jobs_created_total"), Some(2.0));
    assert_eq!(metric(&text, "quarks_job_jobs_succeeded_total"), Some(1.0));
    assert_eq!(metric(&text, "quarks_job_jobs_failed_total"), Some(1.0));

    // SIGTERM: graceful shutdown, exit code 0
    let (status, log) = operator.stop();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert_json_log(&w, &log);
    w.cleanup().await;
}

/// Every line is JSON; every line about one of the test's QuarksJobs names it as
/// `namespace/name` in its `object` field; the start-up order holds.
fn assert_json_log(w: &World, log: &str) {
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let message = |l: &Value| l["message"].as_str().unwrap_or_default().to_string();
    for name in ["via-binary", "failing"] {
        let about: Vec<&Value> = lines
            .iter()
            .filter(|l| message(l).contains(&format!("'{}/{name}'", w.ns)))
            .collect();
        assert!(!about.is_empty(), "no line about {name}:\n{log}");
        for l in about {
            assert_eq!(l["object"], format!("{}/{name}", w.ns), "{l}");
        }
    }
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| message(l).contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{log}"))
    };
    position(&format!("monitoring namespaces labeled with '{}'", w.id));
    assert!(position("Received SIGTERM") < position("reconciler stopped"));
    // a kept failed Job is announced once, though its QuarksJob is reconciled again after
    // (the barrier changes its generation)
    let failed = lines
        .iter()
        .filter(|l| l["reason"] == "JobFailed" && l["object"] == format!("{}/failing", w.ns))
        .count();
    assert_eq!(failed, 1, "{log}");
    // Jobs are only created once the apiserver calls the webhook, so their pods are mutated
    assert!(
        position("Registered webhook configurations") < position("The apiserver calls the webhook")
            && position("The apiserver calls the webhook")
                < position("Webhook is serving; starting the reconciler"),
        "{log}"
    );
}

//! One bad object never stops the operator (issue 11, item 1): QuarksJobs whose template does
//! not decode (a container env `value: <integer>`, created raw as `kubectl create --raw` would),
//! in an unlabelled namespace and in a monitored one, are present when the real operator
//! process starts, and again when it restarts. It must become ready, mutate job pods, run the
//! other QuarksJobs' triggers, report the monitored bad one once (event and condition), leave the
//! unmonitored one alone, and never write the objects' contents into its log.

mod reconcile_helpers;
mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use reconcile_helpers::{World, create_raw, qjob, raw_qjobs};
use serde_json::{Value, json};
use support::WAIT;
use support::process::{Operator, Running, http_get};

/// Planted into the bad objects: neither may ever appear in the operator's log.
const PLANTED_PORT: i64 = 8_080_737_373;

/// A QuarksJob whose first env entry has an integer value (the apiserver accepts it: the template
/// is schemaless) and whose second carries `secret`.
fn undecodable(name: &str, secret: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {"trigger": {"strategy": "now"}, "template": {"spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "env": [
                {"name": "PORT", "value": PLANTED_PORT},
                {"name": "TOKEN", "value": secret}
            ]}]
        }}}}}
    })
}

/// Events about `name` in `ns` with `reason`.
async fn events(client: &kube::Client, ns: &str, name: &str, reason: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

/// How often an event with `reason` was recorded about `name` (an event repeated is one object
/// with a series count).
async fn times(client: &kube::Client, ns: &str, name: &str, reason: &str) -> i32 {
    events(client, ns, name, reason)
        .await
        .iter()
        .map(|e| e.series.as_ref().map_or(1, |s| s.count))
        .sum()
}

/// The JSON log lines of `log` with `message` about `object`.
fn lines_about(log: &str, message: &str, object: &str) -> usize {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == message && l["object"] == object)
        .count()
}

/// Touch the namespace (its QuarksJobs are reconciled again; the bad one itself cannot be
/// changed but to fix it: the validating webhook checks updates too) and wait until the operator
/// has reconciled `name` again.
async fn touch_and_wait(op: &mut Running, client: &kube::Client, ns: &str, name: &str) {
    let object = format!("{ns}/{name}");
    let before = lines_about(&op.stderr(), "reconciling", &object);
    let patch = json!({"metadata": {"annotations": {"touched": support::unique()}}});
    Api::<Namespace>::all(client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while lines_about(&op.stderr(), "reconciling", &object) <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "{object} not reconciled again:\n{}",
            op.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until the job pod of QuarksJob `name` exists, and check that the webhook mutated it.
async fn assert_job_pod_mutated(w: &World, name: &str) {
    let job = w.wait_jobs(name, 1).await.remove(0).name_any();
    let pod = w.pod_of(&job).await;
    let spec = pod.spec.unwrap();
    // (no `spec.output`: the output volume, but no output-persist container)
    assert!(
        spec.volumes
            .iter()
            .flatten()
            .any(|v| v.name == "output-busybox" && v.empty_dir.is_some()),
        "pod of {name} not mutated: {spec:?}"
    );
}

fn assert_ready(health: &str) {
    let ready = http_get(health, "/readyz").unwrap_or_default();
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_quarksjob_never_stops_the_operator() {
    let w = World::new("iso").await;
    let client = w.client.clone();
    let stray = support::test_namespace(&client, "stray", &[]).await;
    let secret = format!("planted-{}", support::unique());
    create_raw(&client, &stray, undecodable("bad-stray", &secret))
        .await
        .expect("the apiserver accepts the wrong type: the template is schemaless");
    // no operator runs yet, so the validating webhook does not stop this one either
    create_raw(&client, &w.ns, undecodable("bad-here", &secret))
        .await
        .unwrap();

    let kubeconfig = support::shared().kubeconfig.clone();
    let launch = |w: &World| {
        let mut op = Operator::out_of_cluster(&kubeconfig, &w.ns, &w.id);
        op.cmd
            .args(["--log-format", "json", "--log-level", "debug"]);
        op
    };
    let first = launch(&w);
    let health = first.health().to_string();
    let mut op = first.start(); // waits for /readyz
    assert_ready(&health);

    // the others are served: a trigger runs, and its pod is mutated
    w.create(qjob("good", "now", json!({}))).await;
    assert_job_pod_mutated(&w, "good").await;

    // the bad one in the monitored namespace is reported on the object, with the place and the
    // kind of the mistake but not the value
    let c = w.wait_reconciled(&op, "bad-here", "False").await;
    assert_eq!(c.reason, "InvalidSpec", "{c:?}");
    assert!(
        c.message
            .contains("spec.template.spec.template.spec.containers[0].env[0].value")
            && c.message
                .contains("invalid type: integer, expected a string"),
        "{c:?}"
    );
    assert!(!c.message.contains(&PLANTED_PORT.to_string()), "{c:?}");
    w.wait_event("bad-here", "InvalidSpec").await;
    assert!(w.jobs_of("bad-here").await.is_empty());
    let metrics = http_get(&health, "/metrics").unwrap_or_default();
    let decode_errors = "quarks_job_reconcile_errors_total{error=\"decode\"}";
    assert!(
        support::metric(&metrics, decode_errors).is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    // once: reconciled again without a change of the spec, it is not reported again
    touch_and_wait(&mut op, &client, &w.ns, "bad-here").await;
    assert_eq!(times(&client, &w.ns, "bad-here", "InvalidSpec").await, 1);

    // restarted with the bad objects still there
    let (status, log1) = op.stop();
    assert!(status.success(), "exit {status:?}\n{log1}");
    let second = launch(&w);
    let health = second.health().to_string();
    let mut op = second.start();
    assert_ready(&health);
    w.create(qjob("good-again", "now", json!({}))).await;
    assert_job_pod_mutated(&w, "good-again").await;
    touch_and_wait(&mut op, &client, &w.ns, "bad-here").await;
    assert_eq!(
        times(&client, &w.ns, "bad-here", "InvalidSpec").await,
        1,
        "reported once, also across restarts"
    );

    // the bad one in the unlabelled namespace is not the operator's business
    let stray_q = raw_qjobs(&client, &stray).get("bad-stray").await.unwrap();
    assert!(stray_q.data.get("status").is_none(), "{stray_q:?}");
    let events = Api::<Event>::namespaced(client.clone(), &stray)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(events.is_empty(), "{events:?}");

    let (status, log2) = op.stop();
    assert!(status.success(), "exit {status:?}\n{log2}");
    for log in [&log1, &log2] {
        for planted in [PLANTED_PORT.to_string(), secret.clone()] {
            assert!(
                !log.contains(&planted),
                "the log carries object contents ({planted}):\n{log}"
            );
        }
    }
    // one log line names it, in the first run only
    let warned = |log: &str| {
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["reason"] == "InvalidSpec" && l["object"] == format!("{}/bad-here", w.ns))
            .count()
    };
    assert_eq!((warned(&log1), warned(&log2)), (1, 0), "{log1}\n{log2}");
    // the unlabelled one: one debug line per run, from the webhook's cache, naming it
    let named = |log: &str| {
        let about = format!("QuarksJob '{stray}/bad-stray' cannot be read (spec.template.");
        log.lines().filter(|l| l.contains(&about)).count()
    };
    assert_eq!((named(&log1), named(&log2)), (1, 1), "{log1}\n{log2}");
    support::delete_namespace(&client, &stray).await;
    w.cleanup().await;
}

//! Bad input gets a clear answer (issue 11, item 7), from the real operator process: at the door,
//! the validating webhook refuses a QuarksJob whose name cannot work or whose template cannot be
//! read, naming the limit or the place; one that got in before the webhook was there shows why it
//! fails in its status condition and a Warning event, not only in the log, and recovers once
//! fixed.

mod reconcile_helpers;
mod support;

use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use quarks_job::core::api::Strategy;
use reconcile_helpers::{World, qjob};
use serde_json::{Value, json};
use support::process::Operator;

/// Create `object` unchecked by the Rust types; the apiserver's (or webhook's) refusal as text.
async fn create_raw(w: &World, object: Value) -> Result<(), String> {
    reconcile_helpers::create_raw(&w.client, &w.ns, object)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_quarksjobs_are_refused_at_the_door_and_shown_if_they_got_in() {
    let w = World::new("badin").await;
    // before the operator (and its validating webhook) runs: a name the Job lookup cannot
    // select by (a label value has at most 63 characters), and a template no Job can have
    let long = format!("l{}", "o".repeat(62) + "ng");
    assert_eq!(long.len(), 65);
    w.create(qjob(&long, "now", json!({}))).await;
    w.create(qjob("always", "now", json!({"restartPolicy": "Always"})))
        .await;

    let kubeconfig = support::shared().kubeconfig.clone();
    let mut launch = Operator::out_of_cluster(&kubeconfig, &w.ns, &w.id);
    launch.cmd.args(["--log-format", "json"]);
    let op = launch.start();

    // shown on the objects, naming the limit / the apiserver's answer
    let c = w.wait_reconciled(&op, &long, "False").await;
    assert_eq!(c.reason, "InvalidName", "{c:?}");
    assert!(
        c.message.contains("(65 characters)")
            && c.message.contains("quarks.cloudfoundry.org/qjob-name")
            && c.message.contains("at most 63 characters"),
        "{c:?}"
    );
    w.wait_event(&long, "InvalidName").await;
    // (the Job is the first write of a run: the apiserver refuses it, and that is shown)
    let c = w.wait_reconciled(&op, "always", "False").await;
    assert_eq!(c.reason, "ApiError", "{c:?}");
    assert!(
        c.message.contains("create Job") && c.message.contains("spec.template.spec.restartPolicy"),
        "{c:?}"
    );
    w.wait_event("always", "CreateJobError").await;
    w.wait_event("always", "ReconcileError").await;
    assert_eq!(
        w.get("always").await.strategy(),
        Some(Strategy::Now),
        "the trigger is kept (no Job, nothing consumed): it runs once the template is fixed"
    );

    // fixed, it runs, and the condition says so
    let fix =
        json!({"spec": {"template": {"spec": {"template": {"spec": {"restartPolicy": "Never"}}}}}});
    w.qjobs()
        .patch("always", &PatchParams::default(), &Patch::Merge(&fix))
        .await
        .expect("the fix passes the webhook");
    w.wait_jobs("always", 1).await;
    let c = w.wait_reconciled(&op, "always", "True").await;
    assert_eq!(c.reason, "Reconciled");

    // at the door: refused, naming the limit
    let mut too_long = qjob(&format!("{long}-2"), "now", json!({}));
    let refused = create_raw(&w, too_long.clone()).await.unwrap_err();
    assert!(
        refused.contains("denied the request: metadata.name: the name")
            && refused.contains("at most 63 characters"),
        "{refused}"
    );
    too_long["metadata"]["name"] = json!(&long[..63]);
    create_raw(&w, too_long).await.expect("63 characters work");
    w.wait_jobs(&long[..63], 1).await;
    // and a template that cannot be read: the place and the kind of mistake, not the value
    let mut bad = qjob("bad-env", "now", json!({}));
    bad["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "PORT", "value": 8_080_737_373_i64}]);
    let refused = create_raw(&w, bad).await.unwrap_err();
    assert!(
        refused.contains(
            "spec.template.spec.template.spec.containers[0].env[0].value: \
             invalid type: integer, expected a string"
        ) && !refused.contains("8080737373"),
        "{refused}"
    );

    let (status, log) = op.stop();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(!log.contains("8080737373"), "{log}");
    // the bad name was reported once, not retried: one Warning line
    let lines = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["reason"] == "InvalidName" && l["object"] == format!("{}/{long}", w.ns))
        .count();
    assert_eq!(lines, 1, "{log}");
    // and nothing ran for it (its Jobs could not even be listed by their label)
    assert_eq!(w.get(&long).await.status.unwrap().created_run, 0);
    let jobs = w.jobs().list(&Default::default()).await.unwrap().items;
    assert!(
        jobs.iter()
            .all(|j| j.owner_references().iter().all(|o| o.name != long)),
        "{:?}",
        support::names(&jobs)
    );
    w.cleanup().await;
}

//! Leader election between operator processes: of two replicas only the Lease holder
//! reconciles, both serve the webhook; killing the leader hands over to the other once the
//! Lease expires, and a graceful shutdown releases the Lease at once.

mod reconcile_helpers;
mod support;

use std::time::Instant;

use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::Api;
use reconcile_helpers::{World, created_run, qjob};
use serde_json::json;
use support::WAIT;
use support::process::{Operator, Running, http_get};

/// Short timings so the handover after a crash takes seconds (lease 4 s).
const LEASE_SECONDS: u64 = 4;

/// A replica and its health address (`/metrics`).
fn replica(w: &World) -> (Running, String) {
    let kubeconfig = support::shared().kubeconfig.clone();
    let mut operator = Operator::out_of_cluster(&kubeconfig, &w.ns, &w.id);
    let health = operator.health().to_string();
    operator.cmd.args([
        "--log-level",
        "info",
        "--apply-crd=false",
        "--leader-election-lease-duration",
        &LEASE_SECONDS.to_string(),
        "--leader-election-renew-deadline",
        "3",
        "--leader-election-retry-period",
        "1",
    ]);
    (Running::start(operator.cmd), health)
}

/// `quarks_job_leader` of a replica: 1 while it reconciles.
fn leading(health: &str) -> Option<f64> {
    support::metric(&http_get(health, "/metrics")?, "quarks_job_leader")
}

/// The identity a replica logged when it became the leader.
fn identity(log: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains("Leading: this replica"))
        .expect("a leading line");
    let start = line.find("('").unwrap() + 2;
    let end = start + line[start..].find("')").unwrap();
    line[start..end].to_string()
}

async fn lease(w: &World) -> Lease {
    let api: Api<Lease> = Api::namespaced(w.client.clone(), &w.ns);
    api.get(&quarks_job::leader::lease_name(&w.id))
        .await
        .expect("the Lease")
}

fn holder(lease: &Lease) -> Option<String> {
    lease.spec.as_ref().and_then(|s| s.holder_identity.clone())
}

fn transitions(lease: &Lease) -> i32 {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0)
}

/// A `now` QuarksJob runs once; its pod was mutated by whichever replica's webhook answered.
async fn runs_a_job(w: &World, name: &str) {
    w.create(qjob(name, "now", json!({}))).await;
    w.wait_qjob(name, "ran", |q| created_run(q) == 1).await;
    let job = w.wait_jobs(name, 1).await.remove(0);
    let pod = w.pod_of(&job.name_any()).await;
    assert!(
        pod.spec
            .unwrap()
            .volumes
            .iter()
            .flatten()
            .any(|v| v.name.starts_with("output-")),
        "the pod of {name} was not mutated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_reconciles_and_the_other_takes_over() {
    let w = World::new("leader").await;

    let (mut a, a_health) = replica(&w);
    a.wait_for_log("Leading: this replica", WAIT);
    a.wait_for_log("starting the reconciler", WAIT);
    let a_id = identity(&a.stderr());
    assert_eq!(holder(&lease(&w).await).as_deref(), Some(a_id.as_str()));

    // the second replica follows: it serves the webhook (registered last, so the apiserver
    // calls it) but does not reconcile
    let (mut b, b_health) = replica(&w);
    b.wait_for_log("is held by", WAIT);
    b.wait_for_log("Webhook caches are filled", WAIT);
    runs_a_job(&w, "while-a-leads").await;
    assert!(
        !b.stderr().contains("starting the reconciler"),
        "the follower reconciles too:\n{}",
        b.stderr()
    );
    assert!(b.stderr().contains(&format!("is held by '{a_id}'")));
    assert_eq!(leading(&a_health), Some(1.0));
    assert_eq!(leading(&b_health), Some(0.0));

    // the leader crashes (SIGKILL: no release): the follower takes over once the Lease expired
    let before = transitions(&lease(&w).await);
    let killed = Instant::now();
    drop(a);
    b.wait_for_log("Leading: this replica", WAIT);
    eprintln!(
        "handover after SIGKILL: {:?} (lease duration {LEASE_SECONDS}s)",
        killed.elapsed()
    );
    b.wait_for_log("starting the reconciler", WAIT);
    let b_id = identity(&b.stderr());
    let taken = lease(&w).await;
    assert_eq!(holder(&taken).as_deref(), Some(b_id.as_str()));
    assert_eq!(transitions(&taken), before + 1);
    runs_a_job(&w, "after-the-crash").await;
    assert_eq!(leading(&b_health), Some(1.0));

    // a graceful shutdown releases the Lease; a waiting replica leads without waiting for
    // the lease to expire
    let (mut c, _) = replica(&w);
    c.wait_for_log(&format!("is held by '{b_id}'"), WAIT);
    c.wait_for_log("Webhook caches are filled", WAIT);
    let log_of_b = {
        let status = b.stop();
        assert!(status.0.success(), "exit {:?}\n{}", status.0, status.1);
        status.1
    };
    assert!(log_of_b.contains("Released Lease"), "{log_of_b}");
    let stopped = log_of_b
        .find("reconciler stopped")
        .expect("reconciler stopped");
    let released = log_of_b.find("Released Lease").unwrap();
    assert!(
        stopped < released,
        "released before the reconciler stopped:\n{log_of_b}"
    );
    c.wait_for_log("Leading: this replica", WAIT);
    c.wait_for_log("starting the reconciler", WAIT);
    runs_a_job(&w, "after-the-release").await;
    drop(c);
    w.cleanup().await;
}

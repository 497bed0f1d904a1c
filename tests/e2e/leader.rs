//! Leader election in pods: the deployed operator's two replicas, the Lease holder's pod
//! deleted (as `kubectl delete pod` or a node drain does), another replica takes over, and a
//! QuarksJob applied right after still runs. The hand-over time is printed, not asserted.
//!
//! The deleted leader releases the Lease as it stops, and the next replica to try takes it: the
//! other replica (it tries every retry period), or the Deployment's replacement pod if that one
//! starts first (it tries at once). Both are a hand-over; the test says which it was.
//!
//! It deletes an operator pod, so `make e2e-cluster`/`make e2e-kind` run it after the other
//! cases, on its own.

use std::time::{Duration, Instant};

use quarks_job::leader::lease_name;

use crate::target::{OPERATOR_NS, OPERATOR_SELECTOR, Target};

/// The names of the operator's pods (not being deleted) and the Lease holder, once both
/// replicas are ready and one holds the Lease.
async fn ready_pair(t: &Target, lease: &str) -> (Vec<String>, String) {
    let deadline = Instant::now() + t.wait;
    loop {
        let pods = t
            .json(&["pods", "-n", OPERATOR_NS, "-l", OPERATOR_SELECTOR])
            .unwrap_or_default();
        let ready: Vec<String> = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| {
                p["status"]["containerStatuses"]
                    .as_array()
                    .is_some_and(|s| s.iter().all(|c| c["ready"] == true))
            })
            .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
            .collect();
        let holder = holder(t, lease);
        if ready.len() == 2 && ready.contains(&holder) {
            return (ready, holder);
        }
        assert!(
            Instant::now() < deadline,
            "no two ready operator replicas with a leader: ready {ready:?}, Lease {lease} held by {holder:?}\n{}",
            t.operator_log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The pod of the Lease's holder (its identity is `<pod>_<random suffix>`); empty while none.
fn holder(t: &Target, lease: &str) -> String {
    let identity = t
        .kubectl(&[
            "get",
            "lease",
            "-n",
            OPERATOR_NS,
            lease,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .unwrap_or_default();
    match identity.rsplit_once('_') {
        Some((pod, _)) => pod.to_string(),
        None => identity,
    }
}

#[tokio::test]
#[ignore = "real pods: make e2e-cluster (or make e2e-kind)"]
async fn another_replica_takes_over_when_the_leaders_pod_is_deleted() {
    let t = Target::get();
    let lease = lease_name(&t.monitored_id);
    let (pods, leader) = ready_pair(t, &lease).await;
    for pod in &pods {
        let json = t.json(&["pod", "-n", OPERATOR_NS, pod]).unwrap();
        let ids = json["status"]["containerStatuses"][0]["containerID"].clone();
        assert!(
            ids.as_str()
                .is_some_and(|id| id.starts_with("containerd://")),
            "operator pod {pod}: containerID {ids}"
        );
    }
    eprintln!("operator replicas {pods:?}, Lease {lease} held by {leader}");

    let deleted = Instant::now();
    t.kubectl(&["delete", "pod", "-n", OPERATOR_NS, &leader, "--wait=false"])
        .unwrap();
    let mut now_held_by = String::new();
    while Instant::now() < deleted + t.wait {
        now_held_by = holder(t, &lease);
        if !now_held_by.is_empty() && now_held_by != leader {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hand_over = deleted.elapsed();
    let operator_pods = t
        .kubectl(&[
            "get",
            "pods",
            "-n",
            OPERATOR_NS,
            "-l",
            OPERATOR_SELECTOR,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .unwrap();
    assert!(
        !now_held_by.is_empty()
            && now_held_by != leader
            && operator_pods.split_whitespace().any(|p| p == now_held_by),
        "after deleting the leader's pod {leader}, the Lease is held by {now_held_by:?} (operator pods: {operator_pods})\n{}",
        t.operator_log()
    );
    let which = if pods.contains(&now_held_by) {
        "the other replica"
    } else {
        "the Deployment's replacement pod"
    };
    eprintln!(
        "leader hand-over: pod {leader} deleted, {now_held_by} ({which}) holds the Lease {:.1} s later",
        hand_over.as_secs_f64()
    );

    // a QuarksJob right after the hand-over runs and writes its Secret
    let ns = crate::output_example("e2e-failover").await;
    eprintln!(
        "QuarksJob applied right after the hand-over: Secret foo-json {:.1} s after the delete",
        deleted.elapsed().as_secs_f64()
    );
    ns.delete();
    // the Deployment replaces the deleted pod: leave two ready replicas behind
    ready_pair(t, &lease).await;
}

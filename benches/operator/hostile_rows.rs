//! Hostile clients against the running operator: pod admission through the apiserver while
//! 1,000 stalled connections are held on the webhook port, and peak memory with the largest
//! adversarial bodies.

use std::time::Instant;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::hostile::{self, adversarial_bodies, hold_slow_connections, peak_memory};
use crate::{Row, Stats};

/// Rows for an operator serving its webhook on 127.0.0.1:`webhook` (process `pid`, certificate
/// Secret in `operator_ns`), monitoring `ns`; each admission is interleaved with one of a pod
/// the webhook is not called for (the bare figure: the apiserver alone).
pub async fn rows(
    client: &Client,
    operator_ns: &str,
    ns: &str,
    webhook: u16,
    pid: u32,
    runs: usize,
) -> Vec<Row> {
    crate::trigger::ensure_qjob(client, "h0").await;
    let mut rows = Vec::new();
    let secret = Api::<Secret>::namespaced(client.clone(), operator_ns)
        .get("quarks-job-webhook-cert")
        .await
        .expect("the certificate Secret");
    let ca = String::from_utf8(secret.data.expect("data")["ca.crt"].0.clone()).expect("PEM");
    let tls = hostile::connector(&ca);
    let addr = format!("127.0.0.1:{webhook}").parse().unwrap();

    let held = hold_slow_connections(addr, 1000, &tls).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"generateName": "slow-", "labels": {"quarks.cloudfoundry.org/qjob-name": "h0"}},
        "spec": {"containers": [{"name": "work", "image": "busybox"}]}
    }))
    .unwrap();
    let plain: Pod = serde_json::from_value(json!({
        "metadata": {"generateName": "plain-"},
        "spec": {"containers": [{"name": "work", "image": "busybox"}]}
    }))
    .unwrap();
    let (mut samples, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(20) {
        let start = Instant::now();
        pods.create(&dry, &plain)
            .await
            .expect("pod admission without the webhook");
        bare.push(start.elapsed());
        let start = Instant::now();
        let created = pods
            .create(&dry, &pod)
            .await
            .expect("pod admission with 1,000 connections held");
        samples.push(start.elapsed());
        let mutated = created
            .spec
            .and_then(|s| s.volumes)
            .is_some_and(|v| v.iter().any(|v| v.name == "output-work"));
        assert!(mutated, "the webhook did not add the output volume");
    }
    drop(held);
    let (slow, bare) = (Stats::of(samples), Stats::of(bare));
    rows.push(Row::slower(
        "pod admission through the apiserver while 1,000 stalled connections are held, p50 (bare: a pod without the webhook)",
        bare.p50,
        slow.p50,
        3.0,
    ));
    rows.push(Row::slower("same, max", bare.max, slow.max, 5.0));

    for (name, body) in adversarial_bodies(ns) {
        let sends: Vec<_> = (0..4)
            .map(|_| {
                let (tls, body) = (tls.clone(), body.clone());
                tokio::spawn(async move { hostile::post(addr, &tls, "/mutate-pods", body).await })
            })
            .collect();
        for send in sends {
            let status = send
                .await
                .expect("task")
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!([200, 400, 413].contains(&status), "{name}: {status}");
        }
    }
    rows.push(Row::bytes(
        "operator peak memory after the largest adversarial bodies, 4 at a time (VmHWM)",
        peak_memory(pid),
        256 << 20,
    ));
    rows
}

//! Trigger → Job: a `strategy: now` QuarksJob until its Job is seen, against a ConfigMap that
//! the bare controller turns into a Job; one at a time (latency) and 500 at once (burst).

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, PostParams};
use quarks_job::core::api::QuarksJob;
use serde_json::json;

use crate::cluster::{BARE_LABEL, NS, Seen, until};
use crate::{Row, Stats};

/// Triggers in the burst, and how many are created at a time.
const BURST: usize = 500;
const BURST_CONCURRENCY: usize = 16;

/// A QuarksJob of one busybox container.
pub fn qjob(name: &str, strategy: &str) -> QuarksJob {
    serde_json::from_value(json!({
        "apiVersion": "quarks.cloudfoundry.org/v1alpha1",
        "kind": "QuarksJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "trigger": {"strategy": strategy},
            "template": {"spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "work", "image": "busybox", "command": ["true"]}]
            }}}}
        }
    }))
    .unwrap()
}

/// A `manual` QuarksJob `name` exists (for the webhook's pods).
pub async fn ensure_qjob(client: &Client, name: &str) {
    let api: Api<QuarksJob> = Api::namespaced(client.clone(), NS);
    if api.get_opt(name).await.expect("get QuarksJob").is_none() {
        api.create(&PostParams::default(), &qjob(name, "manual"))
            .await
            .expect("create QuarksJob");
    }
}

fn bare_trigger(name: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {BARE_LABEL: "trigger"}},
        "data": {"run": "now"}
    }))
    .unwrap()
}

/// Create the trigger `name` (`q/…`: a QuarksJob, `b/…`: a ConfigMap for the bare controller).
async fn trigger(client: &Client, key: &str) {
    let pp = PostParams::default();
    match key.split_once('/') {
        Some(("q", name)) => {
            Api::<QuarksJob>::namespaced(client.clone(), NS)
                .create(&pp, &qjob(name, "now"))
                .await
                .expect("create QuarksJob");
        }
        Some(("b", name)) => {
            Api::<ConfigMap>::namespaced(client.clone(), NS)
                .create(&pp, &bare_trigger(name))
                .await
                .expect("create ConfigMap");
        }
        _ => unreachable!("{key}"),
    }
}

/// Trigger → Job for `key`.
async fn one(client: &Client, seen: &Seen, key: &str) -> Duration {
    let start = Instant::now();
    trigger(client, key).await;
    let at = until(
        &format!("the Job of {key}"),
        Duration::from_secs(60),
        || seen.at(key).is_some(),
    )
    .await;
    at - start
}

/// Trigger → Job latencies of `prefix`, interleaved with the bare controller's.
pub async fn samples(client: &Client, seen: &Seen, prefix: &str, runs: usize) -> (Stats, Stats) {
    let (mut bare, mut operator) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let (b, q) = (format!("b/{prefix}{i}"), format!("q/{prefix}{i}"));
        if i % 2 == 0 {
            bare.push(one(client, seen, &b).await);
            operator.push(one(client, seen, &q).await);
        } else {
            operator.push(one(client, seen, &q).await);
            bare.push(one(client, seen, &b).await);
        }
    }
    (Stats::of(bare), Stats::of(operator))
}

/// Trigger → Job, one at a time.
pub async fn latency(client: &Client, seen: &Seen, runs: usize) -> Vec<Row> {
    let (bare, operator) = samples(client, seen, "t", runs).await;
    vec![
        Row::slower(
            format!("trigger → Job, p50 (n={runs})"),
            bare.p50,
            operator.p50,
            2.0,
        ),
        Row::slower(
            format!("trigger → Job, p99 (n={runs})"),
            bare.p99,
            operator.p99,
            3.0,
        ),
    ]
}

/// `BURST` triggers of `prefix`, `BURST_CONCURRENCY` at a time: (Jobs per second from the first
/// create to the last Job seen, how long the creates alone took).
async fn burst_of(client: &Client, seen: &Seen, prefix: &str) -> (f64, Duration) {
    let keys: Vec<String> = (0..BURST).map(|i| format!("{prefix}{i}")).collect();
    let start = Instant::now();
    futures::stream::iter(keys.iter())
        .for_each_concurrent(BURST_CONCURRENCY, |key| trigger(client, key))
        .await;
    let created = start.elapsed();
    let end = until(
        &format!("the Jobs of the burst {prefix}"),
        Duration::from_secs(600),
        || seen.count(&keys) == BURST,
    )
    .await;
    (BURST as f64 / (end - start).as_secs_f64(), created)
}

/// 500 triggers at once.
pub async fn burst(client: &Client, seen: &Seen) -> Vec<Row> {
    let (bare, bare_created) = burst_of(client, seen, "b/burst-").await;
    let (operator, created) = burst_of(client, seen, "q/burst-").await;
    vec![
        Row::rate(
            format!(
                "burst: {BURST} triggers created {BURST_CONCURRENCY} at a time → all Jobs seen"
            ),
            "Jobs/s",
            bare,
            operator,
            0.8,
        ),
        Row::info(
            "burst: the creates alone (bare ConfigMaps / QuarksJobs)",
            format!(
                "{} / {}",
                crate::fmt_duration(bare_created),
                crate::fmt_duration(created)
            ),
        ),
    ]
}

//! Scale: the namespace filled to 1×, 3× and 10× of (10k Secrets, 2k of them versioned as 200
//! names × 10 versions, 1k ConfigMaps, 1k QuarksJobs that reference one Secret and one
//! ConfigMap each); at each size the operator's memory (steady and peak, and per object), the
//! webhook's saturation and trigger → Job against the bare figures of the same run.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::{Api, PostParams};
use quarks_job::core::api::QuarksJob;
use quarks_job::core::api::labels::{
    LABEL_SECRET_KIND, LABEL_SECRET_VERSION, SECRET_KIND_VERSIONED,
};
use serde_json::{Value, json};

use crate::cluster::{NS, Operator, Seen, memory};
use crate::load::{Endpoint, review, saturate};
use crate::{Row, fmt_bytes, fmt_duration};

/// Per 1×.
const SECRETS: usize = 8_000;
const VERSIONED_NAMES: usize = 200;
const VERSIONS: usize = 10;
const CONFIGMAPS: usize = 1_000;
const QUARKS_JOBS: usize = 1_000;
const CONCURRENCY: usize = 32;

fn scales() -> Vec<usize> {
    std::env::var("QUARKS_BENCH_SCALES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|s: &Vec<usize>| !s.is_empty())
        .unwrap_or_else(|| vec![1, 3, 10])
}

fn referencing_qjob(i: usize) -> Value {
    json!({
        "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
        "metadata": {"name": format!("m{i}")},
        "spec": {"trigger": {"strategy": "manual"}, "template": {"spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "work", "image": "busybox",
                "envFrom": [{"secretRef": {"name": format!("s{i}")}},
                            {"configMapRef": {"name": format!("c{i}")}}]}]
        }}}}}
    })
}

/// The objects of size `from`× up to `to`× (the number of objects created).
async fn fill(client: &Client, from: usize, to: usize) -> usize {
    let pp = PostParams::default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let qjobs: Api<QuarksJob> = Api::namespaced(client.clone(), NS);
    let mut objects: Vec<(u8, Value)> = Vec::new();
    for i in from * SECRETS..to * SECRETS {
        objects.push((
            0,
            json!({"metadata": {"name": format!("s{i}")}, "data": {"k": "dmFsdWU="}}),
        ));
    }
    for n in from * VERSIONED_NAMES..to * VERSIONED_NAMES {
        for v in 1..=VERSIONS {
            objects.push((
                0,
                json!({"metadata": {"name": format!("vs{n}-v{v}"), "labels": {
                LABEL_SECRET_KIND: SECRET_KIND_VERSIONED, LABEL_SECRET_VERSION: v.to_string()}},
                "data": {"k": "dmFsdWU="}}),
            ));
        }
    }
    for i in from * CONFIGMAPS..to * CONFIGMAPS {
        objects.push((
            1,
            json!({"metadata": {"name": format!("c{i}")}, "data": {"k": "v"}}),
        ));
    }
    for i in from * QUARKS_JOBS..to * QUARKS_JOBS {
        objects.push((2, referencing_qjob(i)));
    }
    let count = objects.len();
    futures::stream::iter(objects)
        .for_each_concurrent(CONCURRENCY, |(kind, object)| {
            let (secrets, cms, qjobs, pp) = (&secrets, &cms, &qjobs, &pp);
            async move {
                match kind {
                    0 => drop(
                        secrets
                            .create(pp, &serde_json::from_value(object).unwrap())
                            .await
                            .expect("Secret"),
                    ),
                    1 => drop(
                        cms.create(pp, &serde_json::from_value(object).unwrap())
                            .await
                            .expect("ConfigMap"),
                    ),
                    _ => drop(
                        qjobs
                            .create(pp, &serde_json::from_value(object).unwrap())
                            .await
                            .expect("QuarksJob"),
                    ),
                }
            }
        })
        .await;
    count
}

/// The scale section.
pub async fn rows(
    client: &Client,
    operator_ns: &str,
    operator: &Operator,
    seen: &Seen,
    runs: usize,
) -> Vec<Row> {
    crate::trigger::ensure_qjob(client, "w0").await;
    let bare = crate::bare::start();
    let bare = Endpoint::new(bare.port, &bare.ca);
    let webhook = Endpoint::operator(client, operator_ns, operator.webhook).await;
    let body = review("w0");
    let window = Duration::from_secs(2);
    let (base_rss, _) = memory(operator.pid);
    let (empty, empty_stats) = saturate(&webhook, 32, window, &body).await;
    let mut rows = vec![Row::info(
        "webhook saturation, 32 in flight, few objects in the namespace",
        format!("{empty:.0} /s, p99 {}", fmt_duration(empty_stats.p99)),
    )];
    let mut done = 0;
    for scale in scales() {
        let started = Instant::now();
        let created = fill(client, done, scale).await;
        done = scale;
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (rss, peak) = memory(operator.pid);
        let objects = scale * (SECRETS + VERSIONED_NAMES * VERSIONS + CONFIGMAPS + QUARKS_JOBS);
        rows.push(Row::info(
            format!("{scale}×: {objects} objects in the namespace"),
            format!("{created} created in {}", fmt_duration(took)),
        ));
        rows.push(Row::bytes(
            format!("{scale}×: operator memory, steady (VmRSS)"),
            rss,
            50 << 20,
        ));
        rows.push(Row::bytes(
            format!("{scale}×: operator peak memory (VmHWM)"),
            peak,
            64 << 20,
        ));
        let per = rss.saturating_sub(base_rss) as f64 / objects as f64;
        rows.push(Row::info(
            format!("{scale}×: memory per object (VmRSS above the start of the section)"),
            format!(
                "{per:.0} B ({} in all)",
                fmt_bytes(rss.saturating_sub(base_rss))
            ),
        ));
        let (b, _) = saturate(&bare, 32, window, &body).await;
        let (o, stats) = saturate(&webhook, 32, window, &body).await;
        rows.push(Row::rate(
            format!("{scale}×: webhook saturation, 32 in flight (p99 {}; few objects: {empty:.0} /s, p99 {})",
                fmt_duration(stats.p99), fmt_duration(empty_stats.p99)),
            "/s",
            b,
            o,
            0.8,
        ));
        let mut within = Row::info(
            format!("{scale}×: webhook throughput against few objects"),
            format!("{:.2}×", o / empty),
        );
        within.target = "≥ 0.83× (within 1.2×)".into();
        within.met = Some(o / empty >= 1.0 / 1.2);
        rows.push(within);
        let (b, q) = crate::trigger::samples(client, seen, &format!("x{scale}-"), runs).await;
        let mut row = Row::slower(
            format!("{scale}×: trigger → Job, p95 (n={runs})"),
            b.p95,
            q.p95,
            0.0,
        );
        row.target = "< 100 ms".into();
        row.met = Some(q.p95 < Duration::from_millis(100));
        rows.push(row);
    }
    rows
}

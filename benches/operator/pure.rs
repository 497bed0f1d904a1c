//! The pure pod mutation, timed in process.

use std::hint::black_box;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::ObjectMeta;
use quarks_job::core::api::QuarksJob;
use quarks_job::webhook::mutate::{MutationContext, mutate};
use serde_json::json;

use crate::{Row, Stats};

fn pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"generateName": "job-", "labels": {"quarks.cloudfoundry.org/qjob-name": "q"}},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [
                {"name": "a", "image": "busybox", "envFrom": [{"secretRef": {"name": "creds-v3"}}]},
                {"name": "b", "image": "busybox"}
            ],
            "volumes": [{"name": "creds", "secret": {"secretName": "creds-v3"}}]
        }
    }))
    .expect("pod")
}

fn qjob() -> QuarksJob {
    serde_json::from_value(json!({
        "apiVersion": "quarks.cloudfoundry.org/v1alpha1",
        "kind": "QuarksJob",
        "metadata": {"name": "q", "namespace": "ns"},
        "spec": {
            "template": {"spec": {"template": {"spec": {"containers": []}}}},
            "output": {"outputMap": {"a": {"output.json": {"name": "out", "versioned": true}}}}
        }
    }))
    .expect("qjob")
}

fn versions() -> Vec<ObjectMeta> {
    (1..=20)
        .map(|v| {
            serde_json::from_value(json!({
                "name": format!("creds-v{v}"),
                "namespace": "ns",
                "labels": {
                    "quarks.cloudfoundry.org/secret-kind": "versionedSecret",
                    "quarks.cloudfoundry.org/secret-version": v.to_string(),
                }
            }))
            .expect("meta")
        })
        .collect()
}

/// Rows for the pure measurements.
pub fn rows() -> Vec<Row> {
    let (pod, qjob, versions) = (pod(), qjob(), versions());
    let resources = quarks_job::webhook::resources::OutputResources::DEFAULTS
        .requirements()
        .expect("resources");
    let ctx = MutationContext {
        namespace: "ns",
        qjob: Some(&qjob),
        output_service_account: Some("qjob-persist-output"),
        service_account_exists: true,
        image: "cfcontainerization/quarks-job:0.1.0",
        pull_policy: "IfNotPresent",
        versioned_secret_history: 0,
        pull_secrets: &[],
        versioned_secrets: &versions,
        resources: &resources,
    };
    let patch = mutate(&pod, &ctx).expect("mutate");
    assert!(!patch.0.is_empty(), "the mutation changed nothing");
    // warm up, then time batches of calls
    for _ in 0..1_000 {
        black_box(mutate(black_box(&pod), &ctx).ok());
    }
    const BATCH: u32 = 100;
    let samples: Vec<Duration> = (0..200)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..BATCH {
                black_box(mutate(black_box(&pod), &ctx).ok());
            }
            start.elapsed() / BATCH
        })
        .collect();
    let stats = Stats::of(samples);
    vec![Row::time(
        "pod mutation (pure function), p50",
        stats.p50,
        Duration::from_micros(200),
    )]
}

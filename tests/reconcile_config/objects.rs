//! The objects the config-change tests reference: ConfigMaps, Secrets, versioned secrets, and
//! QuarksJobs whose template references them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use quarks_job::core::api::labels::{
    LABEL_SECRET_KIND, LABEL_SECRET_VERSION, SECRET_KIND_VERSIONED,
};
use serde_json::{Value, json};

use crate::reconcile_helpers::{World, qjob};

pub async fn config_map(w: &World, name: &str, value: &str) {
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": name}, "data": {"key": value}}))
            .unwrap();
    Api::<ConfigMap>::namespaced(w.client.clone(), &w.ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
}

pub async fn update_config_map(w: &World, name: &str, patch: Value) {
    Api::<ConfigMap>::namespaced(w.client.clone(), &w.ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

pub async fn secret(w: &World, name: &str, value: &str, labels: &[(&str, &str)]) {
    let labels: BTreeMap<_, _> = labels.iter().copied().collect();
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "stringData": {"key": value}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(w.client.clone(), &w.ns)
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
}

pub async fn versioned(w: &World, prefix: &str, version: u32, value: &str) {
    let v = version.to_string();
    secret(
        w,
        &format!("{prefix}-v{version}"),
        value,
        &[
            (LABEL_SECRET_KIND, SECRET_KIND_VERSIONED),
            (LABEL_SECRET_VERSION, &v),
        ],
    )
    .await;
}

/// Pod spec referencing ConfigMap `cm` (volume) and Secret `secret` (env).
pub fn refs(cm: &str, secret: &str) -> Value {
    json!({
        "volumes": [{"name": "config", "configMap": {"name": cm}}],
        "containers": [{"name": "busybox", "image": "busybox", "command": ["sleep", "1"],
            "env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": secret, "key": "key"}}}]}]
    })
}

pub fn auto_updating(name: &str, pod: Value) -> Value {
    let mut q = qjob(name, "once", pod);
    q["spec"]["updateOnConfigChange"] = json!(true);
    q
}

/// Finish the Job of the last run and wait until it is cleaned up.
pub async fn finish_last(w: &World, name: &str) {
    let q = w.get(name).await;
    let job = q.status.unwrap().last_job_name.unwrap();
    w.finish_job(&job, 0).await;
    w.wait_job_gone(&job).await;
}

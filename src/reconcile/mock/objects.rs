//! The objects of the mock tier's scenarios (test only): the QuarksJob, its Jobs and pods as
//! the apiserver stores them, their paths, and the namespace cache.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{PartialObjectMeta, PartialObjectMetaExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::core::api::labels::{LABEL_MONITORED, LABEL_QJOB_NAME, LABEL_QJOB_SERVICE_ACCOUNT};
use crate::core::job_names::job_name;
use crate::reconcile::job::{Owner, build_job};

/// The namespace of every scenario.
pub const NS: &str = "mock-ns";
/// The QuarksJob's name.
pub const NAME: &str = "qj";
/// The QuarksJob's uid.
pub const UID: &str = "qj-uid";
/// The operator's `--monitored-id`.
pub const MONITORED_ID: &str = "mock-id";

/// The QuarksJob's path.
pub fn qjob_path() -> String {
    format!("/apis/quarks.cloudfoundry.org/v1alpha1/namespaces/{NS}/quarksjobs/{NAME}")
}
pub fn jobs_path() -> String {
    format!("/apis/batch/v1/namespaces/{NS}/jobs")
}
pub fn core_path(plural: &str) -> String {
    format!("/api/v1/namespaces/{NS}/{plural}")
}

/// The owner of the QuarksJob's Jobs.
pub const OWNER: Owner<'static> = Owner {
    name: NAME,
    namespace: NS,
    uid: UID,
};

/// The Job name of run `run`.
pub fn job_of(run: i64) -> String {
    job_name(NAME, UID, run)
}

/// A stored QuarksJob with `strategy`; its template carries a field the Rust types do not know.
pub fn qjob(strategy: &str) -> Value {
    json!({
        "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
        "metadata": {"name": NAME, "namespace": NS, "uid": UID, "resourceVersion": "1", "generation": 1},
        "spec": {"trigger": {"strategy": strategy}, "template": template()},
    })
}

/// The template of [`qjob`].
pub fn template() -> Value {
    json!({
        "metadata": {"labels": {"team": "blue"}},
        "spec": {"backoffLimit": 0, "someFutureField": {"kept": true}, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}},
    })
}

/// `qjob` with `status`.
pub fn with_status(mut qjob: Value, status: Value) -> Value {
    qjob["status"] = status;
    qjob
}

/// The stored Job of run `run` (as [`build_job`] makes it) with `conditions` (e.g.
/// `[{"type": "Complete", "status": "True"}]`); `pod_labels` are added to its pod template.
pub fn job(run: i64, conditions: Value, pod_labels: Value) -> Value {
    let mut template = template();
    template["spec"]["template"]["metadata"] = json!({"labels": pod_labels});
    let mut job = build_job(&OWNER, &template, &job_of(run));
    job["metadata"]["uid"] = json!(job_uid(run));
    job["status"] = json!({"conditions": conditions});
    job
}

/// The uid of the Job of run `run`.
pub fn job_uid(run: i64) -> String {
    format!("job-uid-{run}")
}

/// A pod `name` of the Job of run `run`, owned by that Job.
pub fn pod_of(run: i64, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "uid": format!("{name}-uid"),
            "labels": {"controller-uid": job_uid(run), "job-name": job_of(run), LABEL_QJOB_NAME: NAME},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_of(run),
                "uid": job_uid(run), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    })
}

/// The selector of the QuarksJob's Jobs, output Secrets and kept pods.
pub fn qjob_selector() -> String {
    format!("{LABEL_QJOB_NAME}={NAME}")
}
/// What the namespace cache knows of the scenario's namespace.
pub enum Cache {
    /// Labelled as monitored by this operator.
    Monitored,
    /// Labelled for another operator's monitored id.
    OtherId,
    /// Not in the cache at all.
    Unknown,
}

/// The namespace cache, filled as `ns` says.
pub fn namespaces(ns: Cache) -> Store<PartialObjectMeta<Namespace>> {
    let (reader, mut writer) = reflector::store::<PartialObjectMeta<Namespace>>();
    let id = match ns {
        Cache::Monitored => Some(MONITORED_ID),
        Cache::OtherId => Some("another-id"),
        Cache::Unknown => None,
    };
    if let Some(id) = id {
        let meta = ObjectMeta {
            name: Some(NS.into()),
            labels: Some(
                [
                    (LABEL_MONITORED, id),
                    (LABEL_QJOB_SERVICE_ACCOUNT, "qjob-sa"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ),
            ..ObjectMeta::default()
        };
        writer.apply_watcher_event(&watcher::Event::Apply(meta.into_response_partial()));
    }
    reader
}

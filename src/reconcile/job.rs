//! Building the Job of a run, and reading a Job's outcome (pure).
//!
//! The Job is built from the *raw* JSON of `spec.template`: the template is schemaless in the CRD
//! and may carry fields the Rust types do not know, which must reach the Job unchanged.

use k8s_openapi::api::batch::v1::Job;
use serde_json::{Map, Value, json};

use crate::core::api::labels::{DELETE_POD, LABEL_DELETE, LABEL_QJOB_NAME};

/// The QuarksJob a Job is built for.
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    /// QuarksJob name.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its uid.
    pub uid: &'a str,
}

/// What a QuarksJob owns, which decides whether a foreground deletion of the QuarksJob waits
/// for it (`blockOwnerDeletion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owned {
    /// A Job of a run: the deletion waits for it.
    Job,
    /// A pod kept for inspection after its Job was cleaned up: the deletion does not wait.
    KeptPod,
}

/// The controller owner reference to the QuarksJob for an object it owns.
pub fn owner_reference(owner: &Owner<'_>, owned: Owned) -> Value {
    json!({
        "apiVersion": "quarks.cloudfoundry.org/v1alpha1",
        "kind": "QuarksJob",
        "name": owner.name,
        "uid": owner.uid,
        "controller": true,
        "blockOwnerDeletion": owned == Owned::Job,
    })
}

/// The batch/v1 Job `job_name` for `template` (the raw `spec.template`, a JobTemplateSpec):
/// the template's own labels and annotations plus the `qjob-name` label on the Job, everything
/// of `template.spec` as the Job spec, the `qjob-name` label added to the pod template, and a
/// controller owner reference to the QuarksJob. The pod itself is not changed here.
pub fn build_job(owner: &Owner<'_>, template: &Value, job_name: &str) -> Value {
    let meta = template.get("metadata").and_then(Value::as_object);
    let map_of = |key: &str| -> Map<String, Value> {
        meta.and_then(|m| m.get(key))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let mut labels = map_of("labels");
    labels.insert(LABEL_QJOB_NAME.into(), Value::String(owner.name.into()));
    let annotations = map_of("annotations");

    let mut spec = template
        .get("spec")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let pod_template = object_at(&mut spec, "template");
    let pod_meta = object_at(pod_template, "metadata");
    let pod_labels = object_at(pod_meta, "labels");
    pod_labels
        .as_object_mut()
        .expect("object_at returns an object")
        .insert(LABEL_QJOB_NAME.into(), Value::String(owner.name.into()));

    let mut metadata = json!({
        "name": job_name,
        "namespace": owner.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(owner, Owned::Job)],
    });
    if !annotations.is_empty() {
        metadata["annotations"] = Value::Object(annotations);
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec})
}

/// `v[key]`, made an object if it is missing or not one.
fn object_at<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    let obj = v.as_object_mut().expect("caller passes an object");
    let slot = obj.entry(key.to_string()).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot
}

/// How a Job stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobPhase {
    /// Neither complete nor failed.
    Running,
    /// Condition `Complete` is true.
    Succeeded,
    /// Condition `Failed` is true, with the Job's reason and message.
    Failed {
        /// e.g. `BackoffLimitExceeded`.
        reason: String,
        /// The Job controller's message.
        message: String,
    },
}

/// The phase of `job` from its conditions (so `completions > 1` works, unlike upstream's
/// `succeeded == 1`).
pub fn phase(job: &Job) -> JobPhase {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    for c in conditions.into_iter().flatten() {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" => return JobPhase::Succeeded,
            "Failed" => {
                return JobPhase::Failed {
                    reason: c
                        .reason
                        .clone()
                        .filter(|r| !r.is_empty())
                        .unwrap_or_else(|| "JobFailed".into()),
                    message: c.message.clone().unwrap_or_default(),
                };
            }
            _ => {}
        }
    }
    JobPhase::Running
}

/// Whether the Job's pod template asks for its pods to be deleted after success (`delete: pod`).
pub fn deletes_pods(job: &Job) -> bool {
    job.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get(LABEL_DELETE))
        .is_some_and(|v| v == DELETE_POD)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: Owner<'static> = Owner {
        name: "qj",
        namespace: "ns",
        uid: "u-1",
    };

    #[test]
    fn job_has_label_owner_and_the_template_unchanged_otherwise() {
        let template = json!({
            "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}, "name": "ignored"},
            "spec": {
                "backoffLimit": 2,
                "someFutureField": {"kept": true},
                "template": {
                    "metadata": {"labels": {"delete": "pod"}, "annotations": {"pod": "ann"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "futureField": 1}]}
                }
            }
        });
        let job = build_job(&OWNER, &template, "qj-0123456789abcdef");
        assert_eq!(job["apiVersion"], "batch/v1");
        assert_eq!(job["kind"], "Job");
        assert_eq!(job["metadata"]["name"], "qj-0123456789abcdef");
        assert_eq!(job["metadata"]["namespace"], "ns");
        assert_eq!(
            job["metadata"]["labels"],
            json!({"team": "a", LABEL_QJOB_NAME: "qj"})
        );
        assert_eq!(job["metadata"]["annotations"], json!({"note": "x"}));
        assert_eq!(
            job["metadata"]["ownerReferences"],
            json!([{"apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob", "name": "qj", "uid": "u-1",
                    "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(job["spec"]["backoffLimit"], 2);
        assert_eq!(job["spec"]["someFutureField"], json!({"kept": true}));
        let pod = &job["spec"]["template"];
        assert_eq!(
            pod["metadata"]["labels"],
            json!({"delete": "pod", LABEL_QJOB_NAME: "qj"})
        );
        assert_eq!(pod["metadata"]["annotations"], json!({"pod": "ann"}));
        assert_eq!(
            pod["spec"], template["spec"]["template"]["spec"],
            "no pod-level mutation"
        );
        // and it is a valid typed Job
        let typed: Job = serde_json::from_value(job).unwrap();
        assert!(deletes_pods(&typed));
    }

    #[test]
    fn an_empty_template_still_gets_the_label() {
        let job = build_job(&OWNER, &json!({}), "n");
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"][LABEL_QJOB_NAME],
            "qj"
        );
        assert!(job["metadata"].get("annotations").is_none());
        let qjob_label_overrides = build_job(
            &OWNER,
            &json!({"metadata": {"labels": {LABEL_QJOB_NAME: "other"}}, "spec": {"template": {"metadata": {"labels": null}}}}),
            "n",
        );
        assert_eq!(
            qjob_label_overrides["metadata"]["labels"][LABEL_QJOB_NAME],
            "qj"
        );
        assert_eq!(
            qjob_label_overrides["spec"]["template"]["metadata"]["labels"][LABEL_QJOB_NAME],
            "qj"
        );
    }

    fn job_with(conditions: serde_json::Value) -> Job {
        serde_json::from_value(
            json!({"metadata": {"name": "j"}, "status": {"conditions": conditions}}),
        )
        .unwrap()
    }

    #[test]
    fn phases() {
        assert_eq!(phase(&job_with(json!([]))), JobPhase::Running);
        assert_eq!(
            phase(&job_with(json!([{"type": "Complete", "status": "False"}]))),
            JobPhase::Running
        );
        assert_eq!(
            phase(&job_with(json!([{"type": "Complete", "status": "True"}]))),
            JobPhase::Succeeded
        );
        assert_eq!(
            phase(&job_with(
                json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                    "message": "Job has reached the specified backoff limit"}])
            )),
            JobPhase::Failed {
                reason: "BackoffLimitExceeded".into(),
                message: "Job has reached the specified backoff limit".into()
            }
        );
        assert_eq!(
            phase(&job_with(json!([{"type": "Failed", "status": "True"}]))),
            JobPhase::Failed {
                reason: "JobFailed".into(),
                message: String::new()
            }
        );
    }

    #[test]
    fn delete_label_only_on_the_pod_template_counts() {
        let j: Job = serde_json::from_value(json!({"metadata": {"labels": {"delete": "pod"}},
            "spec": {"template": {"metadata": {"labels": {"delete": "something-else"}}}}}))
        .unwrap();
        assert!(!deletes_pods(&j));
    }
}

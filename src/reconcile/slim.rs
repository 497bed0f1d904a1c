//! What the reconciler's caches keep of an object (pure): everything a reconcile reads, nothing
//! else. `metadata.managedFields` (often larger than the object) goes, except the entries that
//! wrote `spec.trigger.strategy`, cut down to that field: who triggered a run
//! ([`super::runs::strategy_manager`]). The `last-applied-configuration` annotation (a second
//! copy of the object written by `kubectl apply`) goes too: no reconcile reads the QuarksJob's or
//! the namespace's annotations.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use kube::Resource;
use serde_json::json;

use super::context::Watched;
use crate::core::lenient::Lenient;

/// `kubectl apply`'s copy of the object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Whether `entry` wrote `spec.trigger.strategy` (the status subresource does not).
fn wrote_strategy(entry: &ManagedFieldsEntry) -> bool {
    entry.subresource.as_deref().unwrap_or_default().is_empty()
        && entry
            .fields_v1
            .as_ref()
            .and_then(|f| f.0.get("f:spec"))
            .and_then(|s| s.get("f:trigger"))
            .and_then(|t| t.get("f:strategy"))
            .is_some()
}

/// Strip `meta` to what the reconciler reads; `keep_strategy_writers` keeps the managedFields
/// entries that wrote `spec.trigger.strategy` (cut down to that field).
pub fn slim_meta(meta: &mut ObjectMeta, keep_strategy_writers: bool) {
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED);
    }
    let kept: Vec<ManagedFieldsEntry> = if keep_strategy_writers {
        meta.managed_fields
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(wrote_strategy)
            .map(|e| ManagedFieldsEntry {
                fields_v1: Some(FieldsV1(
                    json!({"f:spec": {"f:trigger": {"f:strategy": {}}}}),
                )),
                ..e
            })
            .collect()
    } else {
        Vec::new()
    };
    meta.managed_fields = (!kept.is_empty()).then_some(kept);
}

/// Strip a cached QuarksJob (see the module docs).
pub fn slim_qjob(qjob: &mut Watched) {
    match &mut qjob.qjob {
        q @ Lenient::Read(_) => slim_meta(q.meta_mut(), true),
        // (an unreadable one is only reported: its name and versions are enough)
        Lenient::Unreadable { metadata, .. } => slim_meta(metadata, false),
    }
}

/// Strip a cached Job to what a reconcile reads: its metadata without `managedFields` and
/// annotations, the labels of its pod template (`delete: pod`), its status. The pod spec (the
/// bulk of a Job) goes.
pub fn slim_job(job: &mut Job) {
    slim_meta(&mut job.metadata, false);
    job.metadata.annotations = None;
    if let Some(spec) = &mut job.spec {
        spec.template.spec = None;
        if let Some(meta) = &mut spec.template.metadata {
            *meta = ObjectMeta {
                labels: meta.labels.take(),
                ..ObjectMeta::default()
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::runs::strategy_manager;
    use kube::ResourceExt;
    use serde_json::Value;

    fn entry(manager: &str, fields: Value, subresource: Option<&str>, t: &str) -> Value {
        let mut e = json!({"manager": manager, "operation": "Update", "fieldsType": "FieldsV1",
            "fieldsV1": fields, "time": t});
        if let Some(s) = subresource {
            e["subresource"] = json!(s);
        }
        e
    }

    #[test]
    fn keeps_who_wrote_the_strategy_and_nothing_else() {
        let big = json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {}}},
            "f:trigger": {"f:strategy": {}}}});
        let mut q = Watched::from_value(&json!({
            "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
            "metadata": {"name": "q", "namespace": "n",
                "annotations": {LAST_APPLIED: "{...}", "keep": "me"},
                "labels": {"l": "v"},
                "managedFields": [
                    entry("kubectl-client-side-apply", big, None, "2026-01-01T00:00:00Z"),
                    entry("quarks-job", json!({"f:status": {"f:runs": {}}}), Some("status"), "2026-01-01T00:00:02Z"),
                    entry("other", json!({"f:metadata": {"f:labels": {}}}), None, "2026-01-01T00:00:03Z"),
                ]},
            "spec": {"template": {"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}}
        }));
        let manager_before = strategy_manager(q.meta().managed_fields.as_deref().unwrap());
        slim_qjob(&mut q);
        let managed = q.meta().managed_fields.clone().unwrap();
        assert_eq!(managed.len(), 1);
        assert_eq!(strategy_manager(&managed), manager_before);
        assert_eq!(
            managed[0].fields_v1.as_ref().unwrap().0,
            json!({"f:spec": {"f:trigger": {"f:strategy": {}}}})
        );
        assert_eq!(q.annotations().len(), 1);
        assert_eq!(q.labels().len(), 1);
        assert!(q.get().is_some());
    }

    #[test]
    fn without_a_strategy_writer_no_managed_fields_are_left() {
        let mut meta: ObjectMeta = serde_json::from_value(json!({"name": "ns",
            "managedFields": [entry("m", json!({"f:metadata": {}}), None, "2026-01-01T00:00:00Z")]}))
        .unwrap();
        slim_meta(&mut meta, true);
        assert_eq!(meta.managed_fields, None);
        slim_meta(&mut meta, false);
        assert_eq!(meta.managed_fields, None);
    }

    #[test]
    fn a_job_keeps_what_a_reconcile_reads() {
        let mut job: Job = serde_json::from_value(json!({
            "metadata": {"name": "j", "namespace": "n", "uid": "u",
                "labels": {"quarks.cloudfoundry.org/qjob-name": "q"},
                "annotations": {"a": "b"},
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "ownerReferences": [{"apiVersion": "v", "kind": "QuarksJob", "name": "q",
                    "uid": "o", "controller": true}],
                "managedFields": [entry("m", json!({"f:metadata": {}}), None, "2026-01-01T00:00:00Z")]},
            "spec": {"template": {
                "metadata": {"labels": {"delete": "pod"}, "annotations": {"x": "y"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
        }))
        .unwrap();
        let before = job.clone();
        slim_job(&mut job);
        assert_eq!(job.metadata.managed_fields, None);
        assert_eq!(job.metadata.annotations, None);
        assert_eq!(job.metadata.labels, before.metadata.labels);
        assert_eq!(
            job.metadata.owner_references,
            before.metadata.owner_references
        );
        assert_eq!(
            job.metadata.creation_timestamp,
            before.metadata.creation_timestamp
        );
        assert_eq!(job.status, before.status);
        let template = &job.spec.as_ref().unwrap().template;
        assert_eq!(template.spec, None);
        assert_eq!(
            serde_json::to_value(&template.metadata).unwrap(),
            json!({"labels": {"delete": "pod"}})
        );
        assert!(crate::reconcile::job::deletes_pods(&job));
    }
}

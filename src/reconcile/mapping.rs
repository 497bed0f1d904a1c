//! Which namespaces are monitored and which QuarksJobs a watched object concerns (pure; the
//! reference index in `super::index` files QuarksJobs by [`refers_to`]).

use k8s_openapi::api::core::v1::PodSpec;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use crate::core::api::QuarksJob;
use crate::core::api::labels::{LABEL_MONITORED, LABEL_QJOB_SERVICE_ACCOUNT};
use crate::core::podrefs::RefKind;
use crate::core::versioned;

/// Upstream's `IsMonitoredNamespace`: the namespace carries the `qjob-service-account` label (any
/// value) and its `monitored` label equals `monitored_id` exactly.
pub fn is_monitored(ns: &impl ResourceExt, monitored_id: &str) -> bool {
    let labels = ns.labels();
    labels.contains_key(LABEL_QJOB_SERVICE_ACCOUNT)
        && labels
            .get(LABEL_MONITORED)
            .is_some_and(|v| v == monitored_id)
}

/// The pod spec of a QuarksJob's template.
pub fn pod_spec(qjob: &QuarksJob) -> Option<&PodSpec> {
    qjob.spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
}

/// The QuarksJobs of `namespace` (readable or not).
pub fn in_namespace<'a, K: Resource<DynamicType = ()> + 'a>(
    qjobs: impl IntoIterator<Item = &'a K>,
    namespace: &str,
) -> Vec<ObjectRef<K>> {
    qjobs
        .into_iter()
        .filter(|q| q.namespace().as_deref() == Some(namespace))
        .map(ObjectRef::from_obj)
        .collect()
}

/// Whether the reference `reference` of kind `kind` is about the object `name`: the same name,
/// or, for secrets, another version of the same versioned secret (`<prefix>-v<N>`, same prefix
/// exactly; upstream matched prefixes as substrings).
pub fn refers_to(kind: RefKind, reference: &str, name: &str) -> bool {
    if reference == name {
        return true;
    }
    if kind != RefKind::Secret {
        return false;
    }
    match (
        versioned::name_prefix(reference),
        versioned::name_prefix(name),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Namespace;
    use serde_json::json;

    fn ns(labels: serde_json::Value) -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": "n", "labels": labels}})).unwrap()
    }

    fn qjob(ns: &str, name: &str, secret: &str) -> QuarksJob {
        serde_json::from_value(json!({
            "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}]}],
                "volumes": [{"name": "v", "secret": {"secretName": secret}}]
            }}}}}
        }))
        .unwrap()
    }

    #[test]
    fn both_labels_and_the_exact_id() {
        assert!(is_monitored(
            &ns(json!({LABEL_MONITORED: "1234", LABEL_QJOB_SERVICE_ACCOUNT: "default"})),
            "1234"
        ));
        assert!(is_monitored(
            &ns(json!({LABEL_MONITORED: "1234", LABEL_QJOB_SERVICE_ACCOUNT: ""})),
            "1234"
        ));
        assert!(!is_monitored(
            &ns(json!({LABEL_MONITORED: "1234", LABEL_QJOB_SERVICE_ACCOUNT: "default"})),
            "abcde"
        ));
        assert!(!is_monitored(&ns(json!({LABEL_MONITORED: "1234"})), "1234"));
        assert!(!is_monitored(
            &ns(json!({LABEL_MONITORED: "12345", LABEL_QJOB_SERVICE_ACCOUNT: "x"})),
            "1234"
        ));
        assert!(!is_monitored(&ns(json!({})), "1234"));
    }

    #[test]
    fn exact_and_versioned_matching() {
        assert!(refers_to(RefKind::ConfigMap, "cm", "cm"));
        assert!(
            !refers_to(RefKind::ConfigMap, "cm-v1", "cm-v2"),
            "ConfigMaps are not versioned"
        );
        assert!(refers_to(RefKind::Secret, "s-v1", "s-v2"));
        assert!(!refers_to(RefKind::Secret, "s-v1", "s"));
        assert!(
            !refers_to(RefKind::Secret, "s", "s-v2"),
            "a bare name is exact"
        );
        assert!(
            !refers_to(RefKind::Secret, "my-s-v1", "s-v2"),
            "no substring matching (upstream bug)"
        );
        assert!(!refers_to(RefKind::Secret, "s-v1", "my-s-v2"));
    }

    #[test]
    fn namespace_events_map_to_the_quarks_jobs_of_their_namespace() {
        let qjobs = [
            qjob("a", "q1", "s-v1"),
            qjob("a", "q2", "other"),
            qjob("b", "q3", "s-v1"),
        ];
        let names =
            |refs: Vec<ObjectRef<QuarksJob>>| refs.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(names(in_namespace(&qjobs, "a")), ["q1", "q2"]);
        assert_eq!(names(in_namespace(&qjobs, "b")), ["q3"]);
    }
}

//! Pointing a pod's references to versioned secrets at their newest version: every reference to
//! `<name>-v<N>` — secret volumes, projected volume sources, `env[].valueFrom.secretKeyRef` and
//! `envFrom[].secretRef` of init and regular containers — where versions of `<name>` exist, is
//! rewritten to the newest one, by the rule the reconciler's config digest uses
//! ([`versioned::newest_for_reference`]). (Upstream skipped init containers and projected
//! volumes.)

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::core::podrefs::{RefKind, visit_mut};
use crate::core::versioned;

/// Rewrite versioned secret references in `spec` to the newest version in `snapshot`.
pub fn point_to_latest(spec: &mut PodSpec, snapshot: &[ObjectMeta]) {
    visit_mut(spec, |kind, name, _optional| {
        if kind != RefKind::Secret {
            return;
        }
        if let Some((_, latest)) = versioned::newest_for_reference(name, snapshot)
            && let Some(latest_name) = latest.name.as_deref()
            && latest_name != name.as_str()
        {
            *name = latest_name.to_string();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reconciler (config digest, `reconcile/refs.rs`: [`versioned::resolve_reference`]) and
    /// the webhook (mounted Secret) must pick the same version of the same reference in the same
    /// snapshot.
    #[test]
    fn reconciler_and_webhook_pick_the_same_newest_version() {
        let version = |name: &str,
                       label: &str|
         -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            serde_json::from_value(serde_json::json!({"name": name, "labels": {
                "quarks.cloudfoundry.org/secret-kind": "versionedSecret",
                "quarks.cloudfoundry.org/secret-version": label}}))
            .unwrap()
        };
        // s-v1 carries a label claiming version 5
        let snapshot = [version("s-v1", "5"), version("s-v2", "2")];
        let reconciler = versioned::resolve_reference("s-v1", &snapshot);
        let mut pod: k8s_openapi::api::core::v1::PodSpec =
            serde_json::from_value(serde_json::json!({
                "containers": [{"name": "c"}],
                "volumes": [{"name": "v", "secret": {"secretName": "s-v1"}}]
            }))
            .unwrap();
        point_to_latest(&mut pod, &snapshot);
        let mounted = pod.volumes.unwrap()[0]
            .secret
            .clone()
            .unwrap()
            .secret_name
            .unwrap();
        assert_eq!(reconciler, mounted, "digest and mount disagree");
    }
}

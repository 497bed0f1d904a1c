//! Pointing a pod's references to versioned secrets at their newest version: every reference to
//! `<name>-v<N>` — secret volumes, projected volume sources, `env[].valueFrom.secretKeyRef` and
//! `envFrom[].secretRef` of init and regular containers — where versions of `<name>` exist, is
//! rewritten to the newest one, by the rule the reconciler's config digest uses
//! ([`versioned::newest_for_reference`]). (Upstream skipped init containers and projected
//! volumes.)

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::core::podrefs::{RefKind, visit};
use crate::core::versioned;

/// The versioned secret references of `spec` that do not name the newest version in `snapshot`:
/// (the tokens of the reference's JSON pointer in the spec, the newest version's name).
pub fn point_to_latest(spec: &PodSpec, snapshot: &[ObjectMeta]) -> Vec<(Vec<String>, String)> {
    let mut rewrites = Vec::new();
    if snapshot.is_empty() {
        return rewrites;
    }
    visit(spec, |r| {
        if r.kind != RefKind::Secret {
            return;
        }
        if let Some((_, latest)) = versioned::newest_for_reference(r.name, snapshot)
            && let Some(latest_name) = latest.name.as_deref()
            && latest_name != r.name
        {
            rewrites.push((r.tokens(), latest_name.to_string()));
        }
    });
    rewrites
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
        let pod: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [{"name": "c"}],
            "volumes": [{"name": "v", "secret": {"secretName": "s-v1"}}]
        }))
        .unwrap();
        let mounted = match point_to_latest(&pod, &snapshot).as_slice() {
            [] => "s-v1".to_string(),
            [(tokens, name)] => {
                assert_eq!(tokens, &["volumes", "0", "secret", "secretName"]);
                name.clone()
            }
            more => panic!("one reference, rewritten {} times", more.len()),
        };
        assert_eq!(reconciler, mounted, "digest and mount disagree");
    }
}

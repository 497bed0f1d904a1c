//! Pointing a pod's references to versioned secrets at their newest version: every reference to
//! `<name>-v<N>` — secret volumes, projected volume sources, `env[].valueFrom.secretKeyRef` and
//! `envFrom[].secretRef` of init and regular containers — where versions of `<name>` exist, is
//! rewritten to the newest one, by the rule the reconciler's config digest uses
//! ([`versioned::newest_for_reference`]). (Upstream skipped init containers and projected
//! volumes.)

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::podrefs::{RefKind, visit_mut};
use crate::versioned;

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

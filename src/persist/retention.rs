//! Retention of versioned secrets (`--versioned-secret-history`): after writing, keep the newest
//! versions of each written name and every version a current pod of the namespace references.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Pod, PodSpec, Secret};
use kube::Api;
use kube::api::{DeleteParams, ListParams};

use crate::versioned;

use super::secrets::list_versions;

/// Secret names a pod spec references: volumes (also projected), `env[].valueFrom.secretKeyRef`
/// and `envFrom[].secretRef` of init and regular containers, and image pull secrets.
// TODO: use the shared `podrefs` module once it is merged.
pub fn secret_refs(spec: &PodSpec) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for v in spec.volumes.iter().flatten() {
        names.extend(v.secret.as_ref().and_then(|s| s.secret_name.clone()));
        let projected = v.projected.as_ref().and_then(|p| p.sources.as_ref());
        names.extend(
            projected
                .into_iter()
                .flatten()
                .filter_map(|s| Some(s.secret.as_ref()?.name.clone())),
        );
    }
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for c in containers {
        for e in c.env.iter().flatten() {
            let key_ref = e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref());
            names.extend(key_ref.map(|r| r.name.clone()));
        }
        for e in c.env_from.iter().flatten() {
            names.extend(e.secret_ref.as_ref().map(|r| r.name.clone()));
        }
    }
    names.extend(
        spec.image_pull_secrets
            .iter()
            .flatten()
            .map(|r| r.name.clone()),
    );
    names.retain(|n| !n.is_empty());
    names
}

/// Whether a pod still runs (or will): not Succeeded and not Failed. Finished pods cannot start
/// again, so what they referenced may go.
pub fn is_current(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Delete the versions of `prefix` beyond the `keep` newest that no current pod references.
/// Returns the deleted names. Versions deleted by someone else meanwhile are fine.
pub async fn prune(
    secrets: &Api<Secret>,
    pods: &Api<Pod>,
    prefix: &str,
    keep: usize,
) -> Result<Vec<String>, kube::Error> {
    if keep == 0 {
        return Ok(Vec::new());
    }
    let existing = list_versions(secrets).await?;
    if versioned::versions(prefix, existing.iter().map(|s| &s.metadata)).len() <= keep {
        return Ok(Vec::new());
    }
    let in_use: BTreeSet<String> = pods
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|p| is_current(p))
        .filter_map(|p| p.spec.as_ref())
        .flat_map(secret_refs)
        .collect();
    let doomed = versioned::prune(prefix, existing.iter().map(|s| &s.metadata), keep, &in_use);
    for name in &doomed {
        match secrets.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(doomed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_secret_reference() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "volumes": [
                {"name": "a", "secret": {"secretName": "vol-v1"}},
                {"name": "b", "projected": {"sources": [{"secret": {"name": "proj-v2"}}, {"configMap": {"name": "cm"}}]}},
                {"name": "c", "configMap": {"name": "cm2"}},
            ],
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-from"}}]}],
            "containers": [{
                "name": "m",
                "env": [
                    {"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-v3", "key": "k"}}},
                    {"name": "Y", "value": "plain"},
                ],
                "envFrom": [{"secretRef": {"name": "from-v4"}}, {"configMapRef": {"name": "cm3"}}],
            }],
            "imagePullSecrets": [{"name": "pull"}],
        }))
        .unwrap();
        let refs: Vec<_> = secret_refs(&spec).into_iter().collect();
        assert_eq!(
            refs,
            [
                "env-v3",
                "from-v4",
                "init-from",
                "proj-v2",
                "pull",
                "vol-v1"
            ]
        );
    }

    #[test]
    fn finished_pods_are_not_current() {
        let pod = |phase: &str| -> Pod {
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": "p"}, "status": {"phase": phase}}),
            )
            .unwrap()
        };
        assert!(is_current(&pod("Running")));
        assert!(is_current(&pod("Pending")));
        assert!(!is_current(&pod("Succeeded")));
        assert!(!is_current(&pod("Failed")));
        assert!(is_current(&Pod::default()));
    }
}

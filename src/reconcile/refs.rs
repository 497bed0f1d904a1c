//! Resolving a QuarksJob's references: GET each referenced ConfigMap/Secret (only those), and
//! find the newest version of versioned secrets from a metadata-only list, by the rule the
//! webhook mounts them with ([`versioned::resolve_reference`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};

use super::context::Context;
use super::digest::Resolved;
use super::error::Result;
use crate::api::labels::{LABEL_SECRET_KIND, SECRET_KIND_VERSIONED};
use crate::podrefs::{PodRefs, RefKind};
use crate::versioned;

/// Resolve every reference of `refs` in `namespace`. `object` (`namespace/name` of the QuarksJob)
/// names errors.
pub async fn resolve(
    ctx: &Context,
    object: &str,
    namespace: &str,
    refs: &PodRefs,
) -> Result<Vec<Resolved>> {
    let versions = if refs.secrets.keys().any(|n| versioned::is_versioned_name(n)) {
        versioned_secrets(ctx, object, namespace).await?
    } else {
        Vec::new()
    };
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let mut out = Vec::new();
    for (kind, reference, optional) in refs.iter() {
        let resolved = match kind {
            RefKind::Secret => {
                if let Some(prefix) = versioned::name_prefix(reference) {
                    versioned::warn_mislabelled(namespace, prefix, &versions);
                }
                versioned::resolve_reference(reference, &versions)
            }
            RefKind::ConfigMap => reference.to_string(),
        };
        let action = format!("get {kind} '{resolved}'");
        let data = match kind {
            RefKind::ConfigMap => ctx
                .api(object, &action, cms.get_opt(&resolved))
                .await?
                .map(config_map_data),
            RefKind::Secret => ctx
                .api(object, &action, secrets.get_opt(&resolved))
                .await?
                .map(secret_data),
        };
        out.push(Resolved {
            kind,
            reference: reference.to_string(),
            resolved,
            optional,
            data,
        });
    }
    Ok(out)
}

/// Metadata of the namespace's versioned secrets (one metadata-only list).
async fn versioned_secrets(
    ctx: &Context,
    object: &str,
    namespace: &str,
) -> Result<Vec<ObjectMeta>> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let lp = ListParams::default().labels(&format!("{LABEL_SECRET_KIND}={SECRET_KIND_VERSIONED}"));
    let list = ctx
        .api(object, "list versioned secrets", secrets.list_metadata(&lp))
        .await?;
    Ok(list.items.into_iter().map(|s| s.metadata).collect())
}

fn config_map_data(cm: ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.unwrap_or_default() {
        out.insert(format!("binaryData/{k}"), v.0);
    }
    out
}

fn secret_data(secret: Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reconciler (config digest) and the webhook (mounted Secret) must pick the same version
    /// of the same reference in the same snapshot.
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
        crate::webhook::versioned_refs::point_to_latest(&mut pod, &snapshot);
        let mounted = pod.volumes.unwrap()[0]
            .secret
            .clone()
            .unwrap()
            .secret_name
            .unwrap();
        assert_eq!(reconciler, mounted, "digest and mount disagree");
    }

    #[test]
    fn binary_data_does_not_collide_with_data() {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "data": {"k": "v"}, "binaryData": {"k": "dg=="}
        }))
        .unwrap();
        let d = config_map_data(cm);
        assert_eq!(d["k"], b"v");
        assert_eq!(d["binaryData/k"], b"v");
    }
}

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
use crate::core::api::labels::{LABEL_SECRET_KIND, SECRET_KIND_VERSIONED};
use crate::core::podrefs::{PodRefs, RefKind};
use crate::core::versioned;

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

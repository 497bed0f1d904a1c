//! Resolving a QuarksJob's references: GET each referenced ConfigMap/Secret (only those), and
//! find the newest version of versioned secrets from a metadata-only list.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};

use super::context::Context;
use super::digest::Resolved;
use super::error::Result;
use super::naming::split_versioned;
use crate::api::labels::{LABEL_SECRET_KIND, SECRET_KIND_VERSIONED};
use crate::podrefs::{PodRefs, RefKind};

/// Resolve every reference of `refs` in `namespace`. `object` (`namespace/name` of the QuarksJob)
/// names errors.
pub async fn resolve(
    ctx: &Context,
    object: &str,
    namespace: &str,
    refs: &PodRefs,
) -> Result<Vec<Resolved>> {
    let newest = if refs.secrets.keys().any(|n| split_versioned(n).is_some()) {
        newest_versions(ctx, object, namespace).await?
    } else {
        HashMap::new()
    };
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let mut out = Vec::new();
    for (kind, reference, optional) in refs.iter() {
        let resolved = match kind {
            RefKind::Secret => resolve_name(reference, &newest),
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

/// Versioned secret prefix → newest existing version, from a metadata-only list of the
/// namespace's versioned secrets.
async fn newest_versions(
    ctx: &Context,
    object: &str,
    namespace: &str,
) -> Result<HashMap<String, u64>> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let lp = ListParams::default().labels(&format!("{LABEL_SECRET_KIND}={SECRET_KIND_VERSIONED}"));
    let list = ctx
        .api(object, "list versioned secrets", secrets.list_metadata(&lp))
        .await?;
    Ok(newest_by_prefix(
        list.items.iter().filter_map(|s| s.metadata.name.as_deref()),
    ))
}

/// Prefix → greatest version among `names` of the form `<prefix>-v<N>`.
pub fn newest_by_prefix<'a>(names: impl IntoIterator<Item = &'a str>) -> HashMap<String, u64> {
    let mut newest: HashMap<String, u64> = HashMap::new();
    for (prefix, version) in names.into_iter().filter_map(split_versioned) {
        let e = newest.entry(prefix.to_string()).or_insert(version);
        *e = (*e).max(version);
    }
    newest
}

/// The name a secret reference resolves to: the newest version `<prefix>-v<N>` for a versioned
/// reference when one exists, else the reference itself.
pub fn resolve_name(reference: &str, newest: &HashMap<String, u64>) -> String {
    match split_versioned(reference).and_then(|(prefix, _)| newest.get(prefix).map(|v| (prefix, v)))
    {
        Some((prefix, version)) => format!("{prefix}-v{version}"),
        None => reference.to_string(),
    }
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
    fn newest_version_per_exact_prefix() {
        let newest = newest_by_prefix(["s-v1", "s-v3", "s-v2", "my-s-v9", "plain", "s-v10"]);
        assert_eq!(newest["s"], 10);
        assert_eq!(newest["my-s"], 9);
        assert_eq!(resolve_name("s-v1", &newest), "s-v10");
        assert_eq!(resolve_name("my-s-v1", &newest), "my-s-v9");
        assert_eq!(resolve_name("other-v1", &newest), "other-v1");
        assert_eq!(
            resolve_name("s", &newest),
            "s",
            "bare names are not versioned references"
        );
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

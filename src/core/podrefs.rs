//! Which ConfigMaps and Secrets a pod spec references, and whether each reference is optional.
//!
//! Pure. Looks at volumes (`configMap`, `secret`, and the sources of `projected` volumes), and at
//! `env[].valueFrom` and `envFrom[]` of init and regular containers. `imagePullSecrets` are not
//! references in this sense: a missing pull secret does not stop a pod from being created (as
//! upstream). A name referenced several times is optional only if every reference is optional.
//!
//! Shared by the reconciler (wait for missing references, config digest) and the webhook
//! (rewriting versioned secret references, through [`visit_mut`]).
//!
//! Layer: core: plain data and pure functions, no I/O (see `crate::core`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};

/// The two kinds of referenced objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefKind {
    /// A `ConfigMap`.
    ConfigMap,
    /// A `Secret`.
    Secret,
}

impl RefKind {
    /// `ConfigMap` or `Secret`, as in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RefKind::ConfigMap => "ConfigMap",
            RefKind::Secret => "Secret",
        }
    }
}

impl std::fmt::Display for RefKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The references of a pod spec: name → `optional` (true only if every reference to the name is
/// optional).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRefs {
    /// Referenced ConfigMaps.
    pub config_maps: BTreeMap<String, bool>,
    /// Referenced Secrets.
    pub secrets: BTreeMap<String, bool>,
}

impl PodRefs {
    /// The references of one kind.
    pub fn of(&self, kind: RefKind) -> &BTreeMap<String, bool> {
        match kind {
            RefKind::ConfigMap => &self.config_maps,
            RefKind::Secret => &self.secrets,
        }
    }

    /// Every reference as `(kind, name, optional)`, ConfigMaps first, names sorted.
    pub fn iter(&self) -> impl Iterator<Item = (RefKind, &str, bool)> {
        let cms = self
            .config_maps
            .iter()
            .map(|(n, o)| (RefKind::ConfigMap, n.as_str(), *o));
        let secrets = self
            .secrets
            .iter()
            .map(|(n, o)| (RefKind::Secret, n.as_str(), *o));
        cms.chain(secrets)
    }

    /// No references at all.
    pub fn is_empty(&self) -> bool {
        self.config_maps.is_empty() && self.secrets.is_empty()
    }

    fn add(&mut self, kind: RefKind, name: Option<&str>, optional: Option<bool>) {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return;
        };
        let optional = optional.unwrap_or(false);
        let map = match kind {
            RefKind::ConfigMap => &mut self.config_maps,
            RefKind::Secret => &mut self.secrets,
        };
        map.entry(name.to_string())
            .and_modify(|o| *o = *o && optional)
            .or_insert(optional);
    }
}

/// The ConfigMaps and Secrets `spec` references.
pub fn references(spec: &PodSpec) -> PodRefs {
    let mut refs = PodRefs::default();
    // one walk serves reading and rewriting; the copy is cheap next to the API calls around it
    visit_mut(&mut spec.clone(), |kind, name, optional| {
        refs.add(kind, Some(name.as_str()), optional)
    });
    refs
}

/// Call `f(kind, name, optional)` with every reference of `spec`, with the name mutable (the
/// webhook points versioned secret references at their newest version this way). Unnamed
/// references are skipped.
pub fn visit_mut(spec: &mut PodSpec, mut f: impl FnMut(RefKind, &mut String, Option<bool>)) {
    for volume in spec.volumes.iter_mut().flatten() {
        if let Some(cm) = &mut volume.config_map {
            f(RefKind::ConfigMap, &mut cm.name, cm.optional);
        }
        if let Some(secret) = &mut volume.secret
            && let Some(name) = &mut secret.secret_name
        {
            f(RefKind::Secret, name, secret.optional);
        }
        for source in volume
            .projected
            .iter_mut()
            .flat_map(|p| p.sources.iter_mut().flatten())
        {
            if let Some(cm) = &mut source.config_map {
                f(RefKind::ConfigMap, &mut cm.name, cm.optional);
            }
            if let Some(secret) = &mut source.secret {
                f(RefKind::Secret, &mut secret.name, secret.optional);
            }
        }
    }
    let containers = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut());
    for container in containers {
        visit_container(container, &mut f);
    }
}

fn visit_container(
    container: &mut Container,
    f: &mut impl FnMut(RefKind, &mut String, Option<bool>),
) {
    for env in container.env.iter_mut().flatten() {
        let Some(from) = &mut env.value_from else {
            continue;
        };
        if let Some(cm) = &mut from.config_map_key_ref {
            f(RefKind::ConfigMap, &mut cm.name, cm.optional);
        }
        if let Some(secret) = &mut from.secret_key_ref {
            f(RefKind::Secret, &mut secret.name, secret.optional);
        }
    }
    for from in container.env_from.iter_mut().flatten() {
        if let Some(cm) = &mut from.config_map_ref {
            f(RefKind::ConfigMap, &mut cm.name, cm.optional);
        }
        if let Some(secret) = &mut from.secret_ref {
            f(RefKind::Secret, &mut secret.name, secret.optional);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    fn names(m: &BTreeMap<String, bool>) -> Vec<(&str, bool)> {
        m.iter().map(|(k, v)| (k.as_str(), *v)).collect()
    }

    #[test]
    fn volumes_and_projected_sources() {
        let refs = references(&spec(json!({
            "containers": [{"name": "c"}],
            "volumes": [
                {"name": "a", "configMap": {"name": "cm1"}},
                {"name": "b", "secret": {"secretName": "s1", "optional": true}},
                {"name": "e", "emptyDir": {}},
                {"name": "p", "projected": {"sources": [
                    {"configMap": {"name": "cm2", "optional": true}},
                    {"secret": {"name": "s2"}},
                    {"downwardAPI": {"items": []}}
                ]}}
            ]
        })));
        assert_eq!(names(&refs.config_maps), [("cm1", false), ("cm2", true)]);
        assert_eq!(names(&refs.secrets), [("s1", true), ("s2", false)]);
    }

    #[test]
    fn env_and_env_from_of_init_and_regular_containers() {
        let refs = references(&spec(json!({
            "initContainers": [{"name": "i",
                "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "init-secret", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "init-cm", "optional": true}}]}],
            "containers": [{"name": "c",
                "env": [
                    {"name": "A", "value": "plain"},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": false}}},
                    {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                ],
                "envFrom": [{"secretRef": {"name": "s", "optional": true}}, {"prefix": "P_", "configMapRef": {"name": "cm"}}]}]
        })));
        assert_eq!(names(&refs.config_maps), [("cm", false), ("init-cm", true)]);
        assert_eq!(names(&refs.secrets), [("init-secret", false), ("s", true)]);
    }

    #[test]
    fn a_name_is_optional_only_if_every_reference_is() {
        let refs = references(&spec(json!({
            "containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "s", "optional": true}}]}],
            "volumes": [{"name": "v", "secret": {"secretName": "s"}}]
        })));
        assert_eq!(names(&refs.secrets), [("s", false)]);
        let refs = references(&spec(json!({
            "containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "s", "optional": true}}]}],
            "volumes": [{"name": "v", "secret": {"secretName": "s", "optional": true}}]
        })));
        assert_eq!(names(&refs.secrets), [("s", true)]);
    }

    #[test]
    fn same_name_different_kinds_are_different_references() {
        let refs = references(&spec(json!({
            "containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "x"}}, {"configMapRef": {"name": "x"}}]}]
        })));
        let all: Vec<_> = refs.iter().collect();
        assert_eq!(
            all,
            [
                (RefKind::ConfigMap, "x", false),
                (RefKind::Secret, "x", false)
            ]
        );
    }

    #[test]
    fn nothing_referenced_and_pull_secrets_ignored() {
        let refs = references(&spec(json!({
            "containers": [{"name": "c", "image": "busybox"}],
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [{"name": "s", "secret": {}}]
        })));
        assert!(refs.is_empty());
    }
}

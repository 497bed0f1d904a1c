//! Which ConfigMaps and Secrets a pod spec references, and whether each reference is optional.
//!
//! Pure. Looks at volumes (`configMap`, `secret`, and the sources of `projected` volumes), and at
//! `env[].valueFrom` and `envFrom[]` of init and regular containers. `imagePullSecrets` are not
//! references in this sense: a missing pull secret does not stop a pod from being created (as
//! upstream). A name referenced several times is optional only if every reference is optional.
//!
//! Shared by the reconciler (wait for missing references, config digest) and the webhook
//! (rewriting versioned secret references where [`visit`] says they are).
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
    visit(spec, |r| refs.add(r.kind, Some(r.name), r.optional));
    refs
}

/// One reference of a pod spec, and where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ref<'a> {
    /// What it references.
    pub kind: RefKind,
    /// The referenced name.
    pub name: &'a str,
    /// Its `optional`.
    pub optional: Option<bool>,
    /// Where the name is.
    pub at: RefAt,
}

/// The containers of a pod spec a reference can be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerList {
    /// `initContainers`.
    Init,
    /// `containers`.
    Regular,
}

impl ContainerList {
    fn field(self) -> &'static str {
        match self {
            ContainerList::Init => "initContainers",
            ContainerList::Regular => "containers",
        }
    }
}

/// Where a reference is in a pod spec (indices into the spec's lists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefAt {
    /// `volumes[i]`: its `configMap` or `secret`.
    Volume(usize),
    /// `volumes[i].projected.sources[j]`.
    ProjectedSource(usize, usize),
    /// `<list>[c].env[e].valueFrom`.
    Env(ContainerList, usize, usize),
    /// `<list>[c].envFrom[e]`.
    EnvFrom(ContainerList, usize, usize),
}

impl Ref<'_> {
    /// The tokens of the name's JSON pointer, relative to the spec (`volumes`, `0`, `secret`,
    /// `secretName`).
    pub fn tokens(&self) -> Vec<String> {
        let (cm, secret) = match self.at {
            RefAt::Volume(_) => (["configMap", "name"], ["secret", "secretName"]),
            RefAt::ProjectedSource(..) => (["configMap", "name"], ["secret", "name"]),
            RefAt::Env(..) => (["configMapKeyRef", "name"], ["secretKeyRef", "name"]),
            RefAt::EnvFrom(..) => (["configMapRef", "name"], ["secretRef", "name"]),
        };
        let mut tokens: Vec<String> = match self.at {
            RefAt::Volume(i) => vec!["volumes".into(), i.to_string()],
            RefAt::ProjectedSource(i, j) => vec![
                "volumes".into(),
                i.to_string(),
                "projected".into(),
                "sources".into(),
                j.to_string(),
            ],
            RefAt::Env(list, c, e) => vec![
                list.field().into(),
                c.to_string(),
                "env".into(),
                e.to_string(),
                "valueFrom".into(),
            ],
            RefAt::EnvFrom(list, c, e) => vec![
                list.field().into(),
                c.to_string(),
                "envFrom".into(),
                e.to_string(),
            ],
        };
        let last = match self.kind {
            RefKind::ConfigMap => cm,
            RefKind::Secret => secret,
        };
        tokens.extend(last.map(String::from));
        tokens
    }
}

/// Call `f` with every reference of `spec` (the one walk that says what a reference is; the
/// webhook rewrites versioned secret references at [`Ref::tokens`]). Unnamed references are
/// skipped.
pub fn visit<'a>(spec: &'a PodSpec, mut f: impl FnMut(Ref<'a>)) {
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        let at = RefAt::Volume(i);
        if let Some(cm) = &volume.config_map {
            f(Ref {
                kind: RefKind::ConfigMap,
                name: &cm.name,
                optional: cm.optional,
                at,
            });
        }
        if let Some(secret) = &volume.secret
            && let Some(name) = &secret.secret_name
        {
            f(Ref {
                kind: RefKind::Secret,
                name,
                optional: secret.optional,
                at,
            });
        }
        for (j, source) in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
            .enumerate()
        {
            let at = RefAt::ProjectedSource(i, j);
            if let Some(cm) = &source.config_map {
                f(Ref {
                    kind: RefKind::ConfigMap,
                    name: &cm.name,
                    optional: cm.optional,
                    at,
                });
            }
            if let Some(secret) = &source.secret {
                f(Ref {
                    kind: RefKind::Secret,
                    name: &secret.name,
                    optional: secret.optional,
                    at,
                });
            }
        }
    }
    let init = spec.init_containers.iter().flatten().enumerate();
    for (c, container) in init {
        visit_container(container, ContainerList::Init, c, &mut f);
    }
    for (c, container) in spec.containers.iter().enumerate() {
        visit_container(container, ContainerList::Regular, c, &mut f);
    }
}

fn visit_container<'a>(
    container: &'a Container,
    list: ContainerList,
    c: usize,
    f: &mut impl FnMut(Ref<'a>),
) {
    for (e, env) in container.env.iter().flatten().enumerate() {
        let Some(from) = &env.value_from else {
            continue;
        };
        let at = RefAt::Env(list, c, e);
        if let Some(cm) = &from.config_map_key_ref {
            f(Ref {
                kind: RefKind::ConfigMap,
                name: &cm.name,
                optional: cm.optional,
                at,
            });
        }
        if let Some(secret) = &from.secret_key_ref {
            f(Ref {
                kind: RefKind::Secret,
                name: &secret.name,
                optional: secret.optional,
                at,
            });
        }
    }
    for (e, from) in container.env_from.iter().flatten().enumerate() {
        let at = RefAt::EnvFrom(list, c, e);
        if let Some(cm) = &from.config_map_ref {
            f(Ref {
                kind: RefKind::ConfigMap,
                name: &cm.name,
                optional: cm.optional,
                at,
            });
        }
        if let Some(secret) = &from.secret_ref {
            f(Ref {
                kind: RefKind::Secret,
                name: &secret.name,
                optional: secret.optional,
                at,
            });
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

    #[test]
    fn every_pointer_leads_to_its_name() {
        let spec = spec(json!({
            "initContainers": [{"name": "i",
                "env": [{"name": "X", "value": "v"}, {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "s-env", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "cm-env-from"}}]}],
            "containers": [{"name": "c"}, {"name": "d",
                "env": [{"name": "Z", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "k"}}}],
                "envFrom": [{"prefix": "P"}, {"secretRef": {"name": "s-env-from"}}]}],
            "volumes": [
                {"name": "e", "emptyDir": {}},
                {"name": "a", "configMap": {"name": "cm-vol"}},
                {"name": "b", "secret": {"secretName": "s-vol"}},
                {"name": "p", "projected": {"sources": [{"configMap": {"name": "cm-proj"}}, {"secret": {"name": "s-proj"}}]}}
            ]
        }));
        let document = serde_json::to_value(&spec).unwrap();
        let mut seen = Vec::new();
        visit(&spec, |r| {
            let pointer: String = r.tokens().iter().map(|t| format!("/{t}")).collect();
            assert_eq!(
                document.pointer(&pointer).and_then(|v| v.as_str()),
                Some(r.name),
                "{pointer}"
            );
            seen.push((r.kind, r.name.to_string(), pointer));
        });
        let names: Vec<&str> = seen.iter().map(|(_, n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "cm-vol",
                "s-vol",
                "cm-proj",
                "s-proj",
                "s-env",
                "cm-env-from",
                "cm-env",
                "s-env-from"
            ]
        );
        assert_eq!(seen[1].2, "/volumes/2/secret/secretName");
        assert_eq!(seen[7].2, "/containers/1/envFrom/1/secretRef/name");
    }
}

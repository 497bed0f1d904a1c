//! The digest of the configuration a QuarksJob references (pure).
//!
//! It covers the set of references (kind, name as written, name resolved to the newest version
//! for versioned secrets) and the data of each referenced object (`data` and, for ConfigMaps,
//! `binaryData`), absent objects included as absent. It is stored in `status.configDigest` when a
//! Job is created; a `once`/`done` QuarksJob with `updateOnConfigChange` re-runs exactly when the
//! digest computed now differs, which also works for changes made while the operator was down.

use std::collections::BTreeMap;

use ring::digest::{SHA256, digest};

use crate::core::podrefs::RefKind;

/// A reference and what it resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// ConfigMap or Secret.
    pub kind: RefKind,
    /// The name in the pod template.
    pub reference: String,
    /// The object looked at: the reference itself, or the newest version `<name>-v<N>` of a
    /// versioned secret.
    pub resolved: String,
    /// Every reference to it is `optional: true`.
    pub optional: bool,
    /// The object's data, `None` if it does not exist.
    pub data: Option<BTreeMap<String, Vec<u8>>>,
}

impl Resolved {
    /// A required reference to an object that does not exist.
    pub fn is_missing(&self) -> bool {
        self.data.is_none() && !self.optional
    }

    /// `ConfigMap 'name'` (or `Secret 'name-v2' (newest version of 'name-v1')`).
    pub fn describe(&self) -> String {
        if self.resolved == self.reference {
            format!("{} '{}'", self.kind, self.reference)
        } else {
            format!(
                "{} '{}' (newest version of '{}')",
                self.kind, self.resolved, self.reference
            )
        }
    }
}

/// `sha256:<hex>` over the references and their data, independent of their order.
pub fn config_digest(refs: &[Resolved]) -> String {
    let mut sorted: Vec<&Resolved> = refs.iter().collect();
    sorted.sort_by(|a, b| (a.kind, &a.reference).cmp(&(b.kind, &b.reference)));
    let mut buf = Vec::new();
    let mut put = |bytes: &[u8]| {
        buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        buf.extend_from_slice(bytes);
    };
    for r in sorted {
        put(r.kind.as_str().as_bytes());
        put(r.reference.as_bytes());
        put(r.resolved.as_bytes());
        match &r.data {
            None => put(b"absent"),
            Some(data) => {
                put(b"present");
                put(&(data.len() as u64).to_be_bytes());
                for (k, v) in data {
                    put(k.as_bytes());
                    put(v);
                }
            }
        }
    }
    let sum = digest(&SHA256, &buf);
    let hex: String = sum.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The required references that do not exist.
pub fn missing(refs: &[Resolved]) -> Vec<&Resolved> {
    refs.iter().filter(|r| r.is_missing()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str, data: Option<&[(&str, &str)]>) -> Resolved {
        Resolved {
            kind: RefKind::ConfigMap,
            reference: name.into(),
            resolved: name.into(),
            optional: false,
            data: data.map(|d| {
                d.iter()
                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                    .collect()
            }),
        }
    }

    #[test]
    fn stable_and_order_independent() {
        let a = cm("a", Some(&[("k", "v")]));
        let b = Resolved {
            kind: RefKind::Secret,
            ..cm("b", Some(&[("x", "y")]))
        };
        let d = config_digest(&[a.clone(), b.clone()]);
        assert_eq!(d, config_digest(&[b, a]));
        assert!(d.starts_with("sha256:") && d.len() == 7 + 64);
    }

    #[test]
    fn changes_with_data_references_kind_and_versions() {
        let base = config_digest(&[cm("a", Some(&[("k", "v")]))]);
        assert_ne!(
            base,
            config_digest(&[cm("a", Some(&[("k", "w")]))]),
            "value"
        );
        assert_ne!(base, config_digest(&[cm("a", Some(&[("j", "v")]))]), "key");
        assert_ne!(base, config_digest(&[cm("a", None)]), "deleted");
        assert_ne!(
            base,
            config_digest(&[cm("b", Some(&[("k", "v")]))]),
            "other reference"
        );
        assert_ne!(
            base,
            config_digest(&[cm("a", Some(&[("k", "v")])), cm("b", None)]),
            "one more reference"
        );
        assert_ne!(
            base,
            config_digest(&[Resolved {
                kind: RefKind::Secret,
                ..cm("a", Some(&[("k", "v")]))
            }]),
            "kind"
        );
        let newer = Resolved {
            resolved: "a-v2".into(),
            ..cm("a", Some(&[("k", "v")]))
        };
        assert_ne!(base, config_digest(&[newer]), "newer version, same data");
        assert_eq!(config_digest(&[]), config_digest(&[]));
    }

    #[test]
    fn no_ambiguity_between_keys_and_values() {
        assert_ne!(
            config_digest(&[cm("a", Some(&[("ab", "c")]))]),
            config_digest(&[cm("a", Some(&[("a", "bc")]))])
        );
    }

    #[test]
    fn missing_ignores_optional() {
        let opt = Resolved {
            optional: true,
            ..cm("o", None)
        };
        let refs = [cm("present", Some(&[])), cm("gone", None), opt];
        let m: Vec<_> = missing(&refs)
            .iter()
            .map(|r| r.reference.as_str())
            .collect();
        assert_eq!(m, ["gone"]);
        assert_eq!(refs[1].describe(), "ConfigMap 'gone'");
        let v = Resolved {
            kind: RefKind::Secret,
            resolved: "s-v3".into(),
            ..cm("s-v1", None)
        };
        assert_eq!(v.describe(), "Secret 's-v3' (newest version of 's-v1')");
    }
}

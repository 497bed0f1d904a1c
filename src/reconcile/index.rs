//! Which QuarksJobs a ConfigMap or Secret event concerns, through an index instead of a scan
//! (pure): reference → QuarksJobs, kept up to date from the QuarksJob reflector's events.
//!
//! A QuarksJob is indexed under its references only while they can change what its reconcile
//! does ([`references_matter`]): a pending trigger (`now`/`once`, which waits for missing
//! references), a pending run, or an auto-errand with `updateOnConfigChange` (config digest).
//! A `manual` or `done` QuarksJob without `updateOnConfigChange` reads no ConfigMap or Secret of
//! its template, so their events would only queue reconciles that change nothing (with many
//! QuarksJobs, thousands of them). When a QuarksJob starts to care (e.g. `manual` → `now`), its
//! own watch event reconciles it anyway.
//!
//! The keys follow [`super::mapping::refers_to`]: a reference to `<prefix>-v<N>` of a Secret
//! concerns every version of `<prefix>`; any other reference concerns exactly its name.

use std::collections::{HashMap, HashSet};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;

use super::context::Watched;
use super::mapping::pod_spec;
use super::state::references_matter;
use crate::core::api::QuarksJob;
use crate::core::podrefs::{self, RefKind};
use crate::core::versioned;

/// What a reference is filed under.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// Exactly the object `name` of `kind`.
    Exact {
        namespace: String,
        kind: RefKind,
        name: String,
    },
    /// Every version `<prefix>-v<N>` of a versioned Secret.
    Versioned { namespace: String, prefix: String },
}

/// The keys of one reference.
fn key_of(namespace: &str, kind: RefKind, reference: &str) -> Key {
    match (kind, versioned::name_prefix(reference)) {
        (RefKind::Secret, Some(prefix)) => Key::Versioned {
            namespace: namespace.to_string(),
            prefix: prefix.to_string(),
        },
        _ => Key::Exact {
            namespace: namespace.to_string(),
            kind,
            name: reference.to_string(),
        },
    }
}

/// The keys an event about the `kind` object `name` must look up.
fn lookups(namespace: &str, kind: RefKind, name: &str) -> Vec<Key> {
    let exact = Key::Exact {
        namespace: namespace.to_string(),
        kind,
        name: name.to_string(),
    };
    match (kind, versioned::name_prefix(name)) {
        (RefKind::Secret, Some(prefix)) => vec![
            exact,
            Key::Versioned {
                namespace: namespace.to_string(),
                prefix: prefix.to_string(),
            },
        ],
        _ => vec![exact],
    }
}

/// Whether the references of `qjob` can change what its reconcile does (see the module docs).
pub fn cares(qjob: &QuarksJob) -> bool {
    let st = qjob.status.clone().unwrap_or_default();
    references_matter(
        qjob.strategy(),
        qjob.spec.update_on_config_change,
        st.requested_run > st.created_run,
    )
}

/// The keys `qjob` is filed under (none if it does not care, or cannot be read).
fn keys(qjob: &Watched) -> Vec<Key> {
    let (Some(q), Some(namespace)) = (qjob.get(), qjob.namespace()) else {
        return Vec::new();
    };
    if !cares(q) {
        return Vec::new();
    }
    let Some(spec) = pod_spec(q) else {
        return Vec::new();
    };
    let refs = podrefs::references(spec);
    let mut keys: Vec<Key> = refs
        .iter()
        .map(|(kind, name, _)| key_of(&namespace, kind, name))
        .collect();
    keys.sort_by_key(|k| format!("{k:?}"));
    keys.dedup();
    keys
}

/// reference → QuarksJobs, and back.
#[derive(Debug, Default)]
pub struct RefIndex {
    by_key: HashMap<Key, HashSet<ObjectRef<Watched>>>,
    by_qjob: HashMap<ObjectRef<Watched>, Vec<Key>>,
    /// While the watch re-lists: the QuarksJobs seen so far.
    relisting: Option<HashSet<ObjectRef<Watched>>>,
}

impl RefIndex {
    /// Apply one event of the QuarksJob watch.
    pub fn event(&mut self, event: &Event<Watched>) {
        match event {
            Event::Apply(q) => self.apply(q),
            Event::Delete(q) => self.remove(&ObjectRef::from_obj(q)),
            Event::Init => self.relisting = Some(HashSet::new()),
            Event::InitApply(q) => {
                if let Some(seen) = &mut self.relisting {
                    seen.insert(ObjectRef::from_obj(q));
                }
                self.apply(q);
            }
            Event::InitDone => {
                if let Some(seen) = self.relisting.take() {
                    let gone: Vec<_> = self
                        .by_qjob
                        .keys()
                        .filter(|r| !seen.contains(*r))
                        .cloned()
                        .collect();
                    for r in gone {
                        self.remove(&r);
                    }
                }
            }
        }
    }

    fn apply(&mut self, qjob: &Watched) {
        let r = ObjectRef::from_obj(qjob);
        let keys = keys(qjob);
        if self.by_qjob.get(&r) == Some(&keys) {
            return;
        }
        self.remove(&r);
        if keys.is_empty() {
            return;
        }
        for k in &keys {
            self.by_key.entry(k.clone()).or_default().insert(r.clone());
        }
        self.by_qjob.insert(r, keys);
    }

    fn remove(&mut self, r: &ObjectRef<Watched>) {
        for k in self.by_qjob.remove(r).unwrap_or_default() {
            if let Some(set) = self.by_key.get_mut(&k) {
                set.remove(r);
                if set.is_empty() {
                    self.by_key.remove(&k);
                }
            }
        }
    }

    /// The QuarksJobs of `namespace` whose references the `kind` object `name` concerns.
    pub fn referencing(
        &self,
        namespace: &str,
        kind: RefKind,
        name: &str,
    ) -> Vec<ObjectRef<Watched>> {
        let mut found: Vec<ObjectRef<Watched>> = lookups(namespace, kind, name)
            .iter()
            .filter_map(|k| self.by_key.get(k))
            .flatten()
            .cloned()
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.dedup();
        found
    }

    /// How many QuarksJobs are indexed.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_qjob.len()
    }

    /// Whether none is.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_qjob.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lenient::Lenient;
    use crate::reconcile::mapping::refers_to;
    use serde_json::{Value, json};

    fn qjob(ns: &str, name: &str, strategy: &str, refs: &[(&str, &str)]) -> Watched {
        let volumes: Vec<Value> = refs
            .iter()
            .map(|(kind, n)| match *kind {
                "Secret" => json!({"name": format!("v-{n}"), "secret": {"secretName": n}}),
                _ => json!({"name": format!("v-{n}"), "configMap": {"name": n}}),
            })
            .collect();
        Watched::from_value(&json!({
            "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"trigger": {"strategy": strategy}, "template": {"spec": {"template": {"spec": {
                "containers": [{"name": "c"}], "volumes": volumes
            }}}}}
        }))
    }

    fn names(refs: Vec<ObjectRef<Watched>>) -> Vec<String> {
        refs.into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn finds_exactly_what_refers_to_finds() {
        let references = ["s", "s-v1", "s-v12", "my-s-v1", "cm", "cm-v1", "x-v"];
        let objects = [
            "s", "s-v1", "s-v2", "my-s-v3", "cm", "cm-v2", "x-v", "other",
        ];
        let mut index = RefIndex::default();
        for (i, r) in references.iter().enumerate() {
            index.event(&Event::Apply(qjob(
                "a",
                &format!("q{i}"),
                "now",
                &[("Secret", r)],
            )));
            index.event(&Event::Apply(qjob(
                "a",
                &format!("c{i}"),
                "now",
                &[("ConfigMap", r)],
            )));
        }
        for kind in [RefKind::Secret, RefKind::ConfigMap] {
            for o in objects {
                let mut expected: Vec<String> = references
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| refers_to(kind, r, o))
                    .map(|(i, _)| match kind {
                        RefKind::Secret => format!("q{i}"),
                        RefKind::ConfigMap => format!("c{i}"),
                    })
                    .collect();
                expected.sort();
                assert_eq!(
                    names(index.referencing("a", kind, o)),
                    expected,
                    "{kind} {o}"
                );
                assert!(
                    index.referencing("b", kind, o).is_empty(),
                    "other namespace"
                );
            }
        }
    }

    #[test]
    fn only_quarks_jobs_whose_references_matter_are_indexed() {
        let mut index = RefIndex::default();
        index.event(&Event::Apply(qjob("a", "q", "manual", &[("Secret", "s")])));
        assert!(index.referencing("a", RefKind::Secret, "s").is_empty());
        // `manual` → `now`: it waits for its references now
        index.event(&Event::Apply(qjob("a", "q", "now", &[("Secret", "s")])));
        assert_eq!(names(index.referencing("a", RefKind::Secret, "s")), ["q"]);
        // the trigger consumed: out again
        index.event(&Event::Apply(qjob("a", "q", "manual", &[("Secret", "s")])));
        assert!(index.is_empty());
        // `done` with updateOnConfigChange keeps watching its configuration
        let mut w = qjob("a", "d", "done", &[("ConfigMap", "cm")]);
        if let Lenient::Read(q) = &mut w.qjob {
            std::sync::Arc::make_mut(q).spec.update_on_config_change = true;
        }
        index.event(&Event::Apply(w));
        assert_eq!(
            names(index.referencing("a", RefKind::ConfigMap, "cm")),
            ["d"]
        );
        // a pending run
        let mut w = qjob("a", "p", "manual", &[("Secret", "t")]);
        if let Lenient::Read(q) = &mut w.qjob {
            let st = std::sync::Arc::make_mut(q).status.get_or_insert_default();
            st.requested_run = 2;
            st.created_run = 1;
        }
        index.event(&Event::Apply(w));
        assert_eq!(names(index.referencing("a", RefKind::Secret, "t")), ["p"]);
    }

    #[test]
    fn changes_deletes_and_relists_keep_it_exact() {
        let mut index = RefIndex::default();
        index.event(&Event::Apply(qjob("a", "q1", "now", &[("Secret", "s")])));
        index.event(&Event::Apply(qjob("a", "q2", "now", &[("Secret", "s")])));
        // q1 now references another Secret
        index.event(&Event::Apply(qjob("a", "q1", "now", &[("Secret", "t")])));
        assert_eq!(names(index.referencing("a", RefKind::Secret, "s")), ["q2"]);
        assert_eq!(names(index.referencing("a", RefKind::Secret, "t")), ["q1"]);
        index.event(&Event::Delete(qjob("a", "q2", "now", &[])));
        assert!(index.referencing("a", RefKind::Secret, "s").is_empty());
        // a re-list without q1 (deleted while the watch was down) drops it
        index.event(&Event::Init);
        index.event(&Event::InitApply(qjob(
            "a",
            "q3",
            "now",
            &[("Secret", "t")],
        )));
        index.event(&Event::InitDone);
        assert_eq!(names(index.referencing("a", RefKind::Secret, "t")), ["q3"]);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn unreadable_quarks_jobs_reference_nothing() {
        let mut index = RefIndex::default();
        index.event(&Event::Apply(Watched::from_value(&json!({
            "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
            "metadata": {"name": "bad", "namespace": "a"},
            "spec": {"trigger": {"strategy": "now"}, "template": {"spec": {"template": {"spec": {
                "containers": "oops"
            }}}}}
        }))));
        assert!(index.is_empty());
    }
}

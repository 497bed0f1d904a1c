//! The webhook's index of versioned secrets by (namespace, base name), kept up to date by the
//! watch events of the versioned-secret watcher, so that an admission touches only the versions
//! of the names its pod references instead of every versioned secret of the namespace.
//!
//! What counts as a version of `<prefix>` and which version is the newest are the rules of
//! [`crate::core::versioned`] ([`versioned::version_of`], [`versioned::newest_for_reference`]);
//! the index only groups objects by [`versioned::name_prefix`] and asks those rules. It holds
//! the little of each Secret's metadata the rules read: its name and its two versioned-secret
//! labels (no `managedFields`, annotations or data).
//!
//! Events follow `kube::runtime::watcher`: `Apply`/`Delete` change the live index; a (re)list
//! (`Init`, `InitApply`…, `InitDone`) is collected aside and replaces the index when done, so
//! objects deleted while the watch was down disappear and readers never see a half list.
//!
//! Pure (no I/O): `Caches` feeds it and reads it under a lock.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher::Event;

use crate::core::api::labels::{LABEL_SECRET_KIND, LABEL_SECRET_VERSION};
use crate::core::versioned;

/// namespace → base name → object name → slim metadata.
type Groups = HashMap<String, HashMap<String, BTreeMap<String, ObjectMeta>>>;

/// Versioned secrets grouped by (namespace, base name).
#[derive(Debug, Default)]
pub struct VersionedIndex {
    groups: Groups,
    /// The objects of a list in progress (between `Init` and `InitDone`).
    relisting: Option<Groups>,
    /// Whether a first full list has been applied.
    ready: bool,
}

impl VersionedIndex {
    /// Apply one watch event.
    pub fn apply(&mut self, event: Event<ObjectMeta>) {
        match event {
            Event::Apply(meta) => {
                remove(&mut self.groups, &meta);
                insert(&mut self.groups, meta);
            }
            Event::Delete(meta) => remove(&mut self.groups, &meta),
            Event::Init => self.relisting = Some(Groups::default()),
            Event::InitApply(meta) => insert(self.relisting.get_or_insert_default(), meta),
            Event::InitDone => {
                self.groups = self.relisting.take().unwrap_or_default();
                self.ready = true;
            }
        }
    }

    /// Whether a first full list has been applied.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The newest version (in `namespace`) of the versioned secret a reference to `reference`
    /// stands for, by [`versioned::newest_for_reference`]; `None` when `reference` is not a
    /// versioned name or no version of it exists.
    pub fn newest(&self, namespace: &str, reference: &str) -> Option<&ObjectMeta> {
        let prefix = versioned::name_prefix(reference)?;
        let group = self.groups.get(namespace)?.get(prefix)?;
        versioned::newest_for_reference(reference, group.values()).map(|(_, meta)| meta)
    }

    /// The number of versions held (all namespaces).
    pub fn len(&self) -> usize {
        self.groups
            .values()
            .flat_map(HashMap::values)
            .map(BTreeMap::len)
            .sum()
    }

    /// Whether no version is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The metadata the rules of `core::versioned` read: the name and the versioned-secret labels.
fn slim(meta: ObjectMeta) -> ObjectMeta {
    let labels = meta.labels.map(|labels| {
        labels
            .into_iter()
            .filter(|(k, _)| k == LABEL_SECRET_KIND || k == LABEL_SECRET_VERSION)
            .collect()
    });
    ObjectMeta {
        name: meta.name,
        labels,
        ..ObjectMeta::default()
    }
}

/// Add `meta` to its group if it is a version of its base name.
fn insert(groups: &mut Groups, meta: ObjectMeta) {
    let Some(name) = meta.name.as_deref() else {
        return;
    };
    let Some(prefix) = versioned::name_prefix(name) else {
        return;
    };
    if versioned::version_of(prefix, &meta).is_none() {
        return;
    }
    let (name, prefix) = (name.to_string(), prefix.to_string());
    let namespace = meta.namespace.clone().unwrap_or_default();
    groups
        .entry(namespace)
        .or_default()
        .entry(prefix)
        .or_default()
        .insert(name, slim(meta));
}

/// Remove the object named as `meta` from its group (if there), dropping emptied groups.
fn remove(groups: &mut Groups, meta: &ObjectMeta) {
    let Some(name) = meta.name.as_deref() else {
        return;
    };
    let Some(prefix) = versioned::name_prefix(name) else {
        return;
    };
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    let Some(by_prefix) = groups.get_mut(namespace) else {
        return;
    };
    if let Some(group) = by_prefix.get_mut(prefix) {
        group.remove(name);
        if group.is_empty() {
            by_prefix.remove(prefix);
        }
    }
    if by_prefix.is_empty() {
        groups.remove(namespace);
    }
}

#[cfg(test)]
#[path = "versioned_index_tests.rs"]
mod tests;

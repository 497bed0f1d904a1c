//! Whose Secret is it (pure): persist-output writes a Secret only if it does not exist or was
//! written before for the same QuarksJob. Every Secret it writes carries the label
//! `quarks.cloudfoundry.org/qjob-name=<QuarksJob>` ([`LABEL_QJOB_NAME`]), which QuarksJobs
//! cannot set themselves (reserved key, `api::labels::is_reserved_output_key`).
//!
//! Secrets written before that label existed are recognised by what upstream (and earlier
//! versions of quarks-job) left on them:
//! * an owner reference to this QuarksJob's uid: every versioned secret upstream wrote, and every
//!   Secret earlier quarks-job versions wrote;
//! * upstream's plain output Secrets had no owner and no QuarksJob label, only
//!   `quarks.cloudfoundry.org/container-name`: a plain Secret without owner references and
//!   without the label whose `container-name` is this file's container is taken over (once; the
//!   write adds the label). See docs/persist-output.md, "Whose Secret is it".

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::core::api::QuarksJob;
use crate::core::api::labels::{LABEL_CONTAINER_NAME, LABEL_QJOB_NAME};

/// The QuarksJob persist-output writes for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Its namespace.
    pub namespace: String,
    /// Its name, the value of [`LABEL_QJOB_NAME`] on what it writes.
    pub name: String,
    /// Its uid, for owner references.
    pub uid: String,
}

impl Owner {
    /// The owner of a QuarksJob read from the apiserver (which always has a uid).
    pub fn of(qjob: &QuarksJob) -> Option<Owner> {
        Some(Owner {
            namespace: qjob.namespace()?,
            name: qjob.name_any(),
            uid: qjob.meta().uid.clone()?,
        })
    }

    /// `namespace/name`, as in messages.
    pub fn display(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// An owner reference to the QuarksJob. Versioned secrets are controlled by it (upstream,
    /// [`Link::Controller`]); plain Secrets only name it as an owner ([`Link::CoOwner`],
    /// `controller: false`), so that owners a Secret already has stay valid.
    /// `blockOwnerDeletion` stays false, as upstream, so no permission on the QuarksJob's
    /// finalizers is needed.
    pub fn reference(&self, link: Link) -> OwnerReference {
        OwnerReference {
            api_version: QuarksJob::api_version(&()).to_string(),
            kind: QuarksJob::kind(&()).to_string(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(link == Link::Controller),
            block_owner_deletion: Some(false),
        }
    }

    /// Put the QuarksJob's label on `meta` and add its owner reference (once; other owners stay).
    pub fn mark(&self, meta: &mut ObjectMeta, link: Link) {
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(LABEL_QJOB_NAME.into(), self.name.clone());
        let refs = meta.owner_references.get_or_insert_with(Vec::new);
        if !refs.iter().any(|r| r.uid == self.uid) {
            refs.push(self.reference(link));
        }
    }
}

/// How a Secret is tied to its QuarksJob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The QuarksJob is the controller (versioned secrets).
    Controller,
    /// The QuarksJob is one owner among any others (plain Secrets).
    CoOwner,
}

/// Whether persist-output may write over an existing Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Written before for this QuarksJob (its label, or its owner reference).
    Ours,
    /// An upstream plain output Secret of this container, without owner: taken over.
    Legacy,
    /// Anything else: why not, to complete "QuarksJob 'x' may not write Secret 'y': ...".
    Foreign(String),
}

impl Claim {
    /// Ours or taken over.
    pub fn allowed(&self) -> bool {
        !matches!(self, Claim::Foreign(_))
    }
}

fn is_quarks_job(r: &OwnerReference) -> bool {
    r.kind == QuarksJob::kind(&())
        && r.api_version.split('/').next() == Some(QuarksJob::group(&()).as_ref())
}

/// Whose the Secret `meta` is, for a write of `owner`. `legacy_container` is the (sanitised)
/// container of a plain Secret's file; versions pass `None` (upstream's versions always had an
/// owner reference).
pub fn claim(meta: &ObjectMeta, owner: &Owner, legacy_container: Option<&str>) -> Claim {
    let labels = meta.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    let owners = meta.owner_references.as_deref().unwrap_or_default();
    match label(LABEL_QJOB_NAME) {
        Some(name) if name == owner.name => return Claim::Ours,
        Some(other) => {
            return Claim::Foreign(format!("it was written for QuarksJob '{other}'"));
        }
        None => {}
    }
    if owners
        .iter()
        .any(|r| r.uid == owner.uid && is_quarks_job(r))
    {
        return Claim::Ours;
    }
    if let Some(o) = owners.first() {
        let o = owners
            .iter()
            .find(|r| r.controller == Some(true))
            .unwrap_or(o);
        return Claim::Foreign(format!("it belongs to {} '{}'", o.kind, o.name));
    }
    if let Some(container) = legacy_container
        && label(LABEL_CONTAINER_NAME) == Some(container)
    {
        return Claim::Legacy;
    }
    Claim::Foreign(format!(
        "it was not written by persist-output for this QuarksJob (it has no label {LABEL_QJOB_NAME}={})",
        owner.name
    ))
}

#[cfg(test)]
impl Owner {
    /// A QuarksJob `name` in namespace `ns` with `uid`, for tests.
    pub(crate) fn example(name: &str, uid: &str) -> Owner {
        Owner {
            namespace: "ns".into(),
            name: name.into(),
            uid: uid.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner() -> Owner {
        Owner::example("qj", "uid-1")
    }

    fn meta(v: serde_json::Value) -> ObjectMeta {
        serde_json::from_value(v).unwrap()
    }

    fn qjob_ref(name: &str, uid: &str, controller: bool) -> serde_json::Value {
        json!({"apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
               "name": name, "uid": uid, "controller": controller})
    }

    #[test]
    fn the_label_decides_first() {
        let ours = meta(json!({"name": "s", "labels": {LABEL_QJOB_NAME: "qj"}}));
        assert_eq!(claim(&ours, &owner(), None), Claim::Ours);
        // even with another QuarksJob's owner reference left from shared writes of the past
        let ours = meta(json!({"name": "s", "labels": {LABEL_QJOB_NAME: "qj"},
            "ownerReferences": [qjob_ref("other", "uid-2", false)]}));
        assert_eq!(claim(&ours, &owner(), None), Claim::Ours);
        let theirs = meta(json!({"name": "s", "labels": {LABEL_QJOB_NAME: "other"},
            "ownerReferences": [qjob_ref("qj", "uid-1", false)]}));
        assert_eq!(
            claim(&theirs, &owner(), Some("c")),
            Claim::Foreign("it was written for QuarksJob 'other'".into())
        );
    }

    #[test]
    fn an_owner_reference_to_this_quarksjob_is_ours() {
        // upstream's versions (controller) and earlier quarks-job Secrets (not controller)
        for controller in [true, false] {
            let m = meta(
                json!({"name": "s-v1", "ownerReferences": [qjob_ref("qj", "uid-1", controller)]}),
            );
            assert_eq!(claim(&m, &owner(), None), Claim::Ours);
        }
        // the same uid on something that is no QuarksJob does not count
        let m = meta(json!({"name": "s", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "uid-1"}]}));
        assert_eq!(
            claim(&m, &owner(), None),
            Claim::Foreign("it belongs to ConfigMap 'x'".into())
        );
        // a deleted and re-created QuarksJob of the same name has another uid
        let m = meta(json!({"name": "s", "ownerReferences": [qjob_ref("qj", "old-uid", true)]}));
        assert_eq!(
            claim(&m, &owner(), None),
            Claim::Foreign("it belongs to QuarksJob 'qj'".into())
        );
    }

    #[test]
    fn other_owners_are_named_controller_first() {
        let m = meta(json!({"name": "tls", "ownerReferences": [
            {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u2"},
            {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "web", "uid": "u3", "controller": true}]}));
        assert_eq!(
            claim(&m, &owner(), Some("c")),
            Claim::Foreign("it belongs to Certificate 'web'".into())
        );
    }

    #[test]
    fn upstream_plain_output_of_the_same_container_is_taken_over() {
        let legacy =
            meta(json!({"name": "s", "labels": {LABEL_CONTAINER_NAME: "busybox", "key": "v"}}));
        assert_eq!(claim(&legacy, &owner(), Some("busybox")), Claim::Legacy);
        assert!(claim(&legacy, &owner(), Some("busybox")).allowed());
        assert!(!claim(&legacy, &owner(), Some("other")).allowed());
        assert!(
            !claim(&legacy, &owner(), None).allowed(),
            "versions are never taken over"
        );
        let unrelated = meta(json!({"name": "db-password", "labels": {"app": "db"}}));
        let Claim::Foreign(why) = claim(&unrelated, &owner(), Some("busybox")) else {
            panic!("someone else's Secret")
        };
        assert_eq!(
            why,
            "it was not written by persist-output for this QuarksJob (it has no label quarks.cloudfoundry.org/qjob-name=qj)"
        );
    }

    #[test]
    fn marking_adds_the_label_and_one_owner_reference() {
        let mut m = meta(json!({"name": "s", "labels": {"a": "b"},
            "ownerReferences": [qjob_ref("other", "uid-2", false)]}));
        owner().mark(&mut m, Link::CoOwner);
        owner().mark(&mut m, Link::CoOwner);
        assert_eq!(m.labels.as_ref().unwrap()[LABEL_QJOB_NAME], "qj");
        assert_eq!(m.labels.as_ref().unwrap()["a"], "b");
        let uids: Vec<_> = m
            .owner_references
            .iter()
            .flatten()
            .map(|r| r.uid.as_str())
            .collect();
        assert_eq!(uids, ["uid-2", "uid-1"]);
        let r = owner().reference(Link::Controller);
        assert_eq!(r.api_version, "quarks.cloudfoundry.org/v1alpha1");
        assert_eq!(
            (r.controller, r.block_owner_deletion),
            (Some(true), Some(false))
        );
        assert_eq!(claim(&m, &owner(), None), Claim::Ours);
    }

    #[test]
    fn owner_of_a_stored_quarksjob() {
        let mut q = QuarksJob::new("qj", Default::default());
        assert!(Owner::of(&q).is_none());
        q.metadata.namespace = Some("ns".into());
        q.metadata.uid = Some("uid-1".into());
        assert_eq!(Owner::of(&q), Some(owner()));
        assert_eq!(owner().display(), "ns/qj");
    }
}

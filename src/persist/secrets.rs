//! What writing a planned Secret means (pure): the objects written (plain Secrets, versions,
//! overwrites) and the decision for each planned Secret given what exists — create, overwrite,
//! leave unchanged, write the next version, or refuse because the Secret is not this
//! QuarksJob's (`persist::ownership`). The I/O is in `persist::write`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::core::api::labels::{
    ANNOTATION_SOURCE_DESCRIPTION, LABEL_SECRET_KIND, LABEL_SECRET_VERSION, SECRET_KIND_VERSIONED,
};
use crate::core::names::sanitize;
use crate::core::versioned::{self, Content};

use super::ownership::{Claim, Link, Owner, claim};
use super::plan::PlannedSecret;

/// Upstream's source description of versions written by persist-output.
pub const SOURCE_DESCRIPTION: &str = "created by quarksJob";

/// What happened to one planned Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A plain Secret was created.
    Created,
    /// A plain Secret was overwritten.
    Updated,
    /// A plain Secret already held exactly this.
    Unchanged,
    /// A new version `N` was created.
    NewVersion(u64),
    /// The latest version `N` already held this content.
    UnchangedVersion(u64),
}

/// What to do for one planned Secret, decided from what exists.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Create the plain Secret.
    Create,
    /// Overwrite the existing plain Secret (this QuarksJob's, or upstream's taken over).
    Overwrite(Box<Secret>),
    /// The plain Secret already holds this.
    Unchanged,
    /// Create version `n`, named `name`.
    NewVersion {
        /// The version.
        n: u64,
        /// `<prefix>-v<n>`.
        name: String,
    },
    /// The latest version `n` already holds this.
    UnchangedVersion(u64),
}

/// Why a planned Secret is not written (and, decided before writing, nothing is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("QuarksJob '{qjob}' may not write Secret '{secret}': {reason}")]
pub struct Refusal {
    /// `namespace/name` of the QuarksJob.
    pub qjob: String,
    /// `namespace/name` of the Secret (the version's name for versioned secrets).
    pub secret: String,
    /// Why, e.g. "it belongs to Certificate 'web'".
    pub reason: String,
}

fn refusal(owner: &Owner, name: &str, reason: String) -> Refusal {
    Refusal {
        qjob: owner.display(),
        secret: format!("{}/{name}", owner.namespace),
        reason,
    }
}

fn bytes(data: &BTreeMap<String, String>) -> BTreeMap<String, ByteString> {
    data.iter()
        .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

/// A new plain Secret, marked as the QuarksJob's.
pub fn plain_secret(p: &PlannedSecret, owner: &Owner) -> Secret {
    let mut metadata = ObjectMeta {
        name: Some(p.name.clone()),
        namespace: Some(owner.namespace.clone()),
        labels: Some(p.labels.clone()),
        annotations: Some(p.annotations.clone()),
        ..Default::default()
    };
    owner.mark(&mut metadata, Link::CoOwner);
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(bytes(&p.data)),
        ..Default::default()
    }
}

/// An existing plain Secret overwritten with the new output: data, labels and annotations are
/// replaced (as upstream's update did), the QuarksJob's label and owner reference added (other
/// owners stay); the `resourceVersion` stays for optimistic concurrency.
pub fn overwrite(mut existing: Secret, p: &PlannedSecret, owner: &Owner) -> Secret {
    existing.data = Some(bytes(&p.data));
    existing.string_data = None;
    existing.metadata.labels = Some(p.labels.clone());
    existing.metadata.annotations = Some(p.annotations.clone());
    owner.mark(&mut existing.metadata, Link::CoOwner);
    existing
}

/// Whether writing `desired` over `existing` would change nothing.
pub fn same_plain(existing: &Secret, desired: &Secret) -> bool {
    let m = |s: &Secret| {
        (
            s.metadata.labels.clone().unwrap_or_default(),
            s.metadata.annotations.clone().unwrap_or_default(),
            s.metadata.owner_references.clone().unwrap_or_default(),
        )
    };
    content_of(existing).data == content_of(desired).data && m(existing) == m(desired)
}

/// What a version of `p` holds: its data, labels, and annotations with the source description.
pub fn desired_content(p: &PlannedSecret) -> Content {
    let mut annotations = p.annotations.clone();
    annotations.insert(
        ANNOTATION_SOURCE_DESCRIPTION.into(),
        SOURCE_DESCRIPTION.into(),
    );
    Content {
        data: p
            .data
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect(),
        labels: p.labels.clone(),
        annotations,
    }
}

/// What an existing Secret holds.
pub fn content_of(s: &Secret) -> Content {
    Content {
        data: s
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect(),
        labels: s.metadata.labels.clone().unwrap_or_default(),
        annotations: s.metadata.annotations.clone().unwrap_or_default(),
    }
}

/// Version `n` of `p`, named `name` (already validated), controlled by the QuarksJob.
pub fn version_secret(name: &str, n: u64, p: &PlannedSecret, owner: &Owner) -> Secret {
    let content = desired_content(p);
    let mut labels = content.labels;
    labels.insert(LABEL_SECRET_VERSION.into(), n.to_string());
    labels.insert(LABEL_SECRET_KIND.into(), SECRET_KIND_VERSIONED.into());
    let mut metadata = ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(owner.namespace.clone()),
        labels: Some(labels),
        annotations: Some(content.annotations),
        ..Default::default()
    };
    owner.mark(&mut metadata, Link::Controller);
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(bytes(&p.data)),
        ..Default::default()
    }
}

/// The plain Secret `p`: created when absent, overwritten when it is the QuarksJob's (or an
/// upstream output Secret of the same container), refused otherwise.
pub fn decide_plain(
    p: &PlannedSecret,
    existing: Option<&Secret>,
    owner: &Owner,
) -> Result<Step, Refusal> {
    let Some(existing) = existing else {
        return Ok(Step::Create);
    };
    if let Claim::Foreign(reason) = claim(&existing.metadata, owner, Some(&sanitize(&p.container)))
    {
        return Err(refusal(owner, &p.name, reason));
    }
    if same_plain(existing, &overwrite(existing.clone(), p, owner)) {
        return Ok(Step::Unchanged);
    }
    Ok(Step::Overwrite(Box::new(existing.clone())))
}

/// The next version of `p` among `existing` (the namespace's versioned secrets): refused when any
/// version of the series is not the QuarksJob's (a version written by another QuarksJob would be
/// mounted as the newest); unchanged when the latest holds the same content; else the next free
/// number above `taken` (a number found taken on create).
pub fn decide_versioned(
    p: &PlannedSecret,
    existing: &[Secret],
    owner: &Owner,
    taken: u64,
) -> Result<Step, Refusal> {
    let metas: Vec<&ObjectMeta> = existing.iter().map(|s| &s.metadata).collect();
    let series = versioned::versions(&p.name, metas.iter().copied());
    for (_, meta) in &series {
        if let Claim::Foreign(reason) = claim(meta, owner, None) {
            let name = meta.name.as_deref().unwrap_or_default();
            return Err(refusal(
                owner,
                name,
                format!("it is a version of '{}' and {reason}", p.name),
            ));
        }
    }
    if let Some((n, meta)) = series.first() {
        let latest = existing.iter().find(|s| s.metadata.name == meta.name);
        if latest.is_some_and(|l| versioned::is_identical(&content_of(l), &desired_content(p))) {
            return Ok(Step::UnchangedVersion(*n));
        }
    }
    let (n, name) = versioned::next_name(&p.name, metas.iter().copied(), taken)
        .map_err(|e| refusal(owner, &p.name, e.to_string()))?;
    Ok(Step::NewVersion { n, name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::api::labels::{LABEL_CONTAINER_NAME, LABEL_QJOB_NAME};

    fn planned(versioned: bool) -> PlannedSecret {
        PlannedSecret {
            name: "foo".into(),
            versioned,
            labels: [
                ("l".to_string(), "v".to_string()),
                (LABEL_CONTAINER_NAME.to_string(), "c".to_string()),
            ]
            .into(),
            annotations: [("a".to_string(), "b".to_string())].into(),
            data: [("hello".to_string(), "world".to_string())].into(),
            container: "c".into(),
            file: "f".into(),
        }
    }

    fn owner() -> Owner {
        Owner::example("qj", "uid-1")
    }

    fn other() -> Owner {
        Owner::example("other", "uid-2")
    }

    fn secret(v: serde_json::Value) -> Secret {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn versions_carry_upstream_labels_the_mark_and_a_controller_owner() {
        let s = version_secret("foo-v3", 3, &planned(true), &owner());
        let labels = s.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_SECRET_VERSION], "3");
        assert_eq!(labels[LABEL_SECRET_KIND], "versionedSecret");
        assert_eq!(labels[LABEL_QJOB_NAME], "qj");
        assert_eq!(labels["l"], "v");
        let annotations = s.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            annotations[ANNOTATION_SOURCE_DESCRIPTION],
            "created by quarksJob"
        );
        assert_eq!(annotations["a"], "b");
        let owners = s.metadata.owner_references.as_ref().unwrap();
        assert_eq!(
            (owners.len(), owners[0].uid.as_str(), owners[0].controller),
            (1, "uid-1", Some(true))
        );
        assert_eq!(s.data.as_ref().unwrap()["hello"].0, b"world");
        // what was written compares identical to what would be written again
        assert!(versioned::is_identical(
            &content_of(&s),
            &desired_content(&planned(true))
        ));
    }

    #[test]
    fn an_absent_secret_is_created_and_marked() {
        assert_eq!(
            decide_plain(&planned(false), None, &owner()),
            Ok(Step::Create)
        );
        let s = plain_secret(&planned(false), &owner());
        assert_eq!(s.metadata.labels.as_ref().unwrap()[LABEL_QJOB_NAME], "qj");
        assert_eq!(
            s.metadata.owner_references.as_ref().unwrap()[0].controller,
            Some(false)
        );
    }

    #[test]
    fn a_secret_of_someone_else_is_refused_naming_it() {
        // the hijack: an outputMap entry naming an existing Secret used to overwrite it, drop
        // its labels and annotations and make the QuarksJob an owner (then garbage-collect it)
        let victim = secret(serde_json::json!({"metadata": {"name": "foo",
            "labels": {"app": "db"}, "annotations": {"owner": "team-a"}},
            "data": {"password": "c2VjcmV0"}}));
        let err = decide_plain(&planned(false), Some(&victim), &owner()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "QuarksJob 'ns/qj' may not write Secret 'ns/foo': it was not written by persist-output for this QuarksJob (it has no label quarks.cloudfoundry.org/qjob-name=qj)"
        );
        let written_by_other = plain_secret(&planned(false), &other());
        let err = decide_plain(&planned(false), Some(&written_by_other), &owner()).unwrap_err();
        assert_eq!(err.reason, "it was written for QuarksJob 'other'");
    }

    #[test]
    fn our_own_secret_is_overwritten_or_left_unchanged() {
        let mut ours = plain_secret(&planned(false), &owner());
        ours.metadata.resource_version = Some("42".into());
        assert_eq!(
            decide_plain(&planned(false), Some(&ours), &owner()),
            Ok(Step::Unchanged)
        );
        let mut changed = planned(false);
        changed.data.insert("hello".into(), "again".into());
        let Ok(Step::Overwrite(existing)) = decide_plain(&changed, Some(&ours), &owner()) else {
            panic!("overwrite expected")
        };
        let s = overwrite(*existing, &changed, &owner());
        assert_eq!(s.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(s.data.as_ref().unwrap()["hello"].0, b"again");
        assert_eq!(s.metadata.owner_references.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn upstreams_plain_output_is_taken_over_and_marked() {
        let legacy = secret(serde_json::json!({"metadata": {"name": "foo",
            "labels": {LABEL_CONTAINER_NAME: "c", "l": "v"}}, "data": {"hello": "d29ybGQ="}}));
        let Ok(Step::Overwrite(existing)) = decide_plain(&planned(false), Some(&legacy), &owner())
        else {
            panic!("taken over")
        };
        let s = overwrite(*existing, &planned(false), &owner());
        assert_eq!(s.metadata.labels.as_ref().unwrap()[LABEL_QJOB_NAME], "qj");
        // ... and from then on it is this QuarksJob's: another one is refused
        let mut theirs = planned(false);
        theirs.container = "c".into();
        assert!(decide_plain(&theirs, Some(&s), &other()).is_err());
    }

    #[test]
    fn versions_are_written_only_into_a_series_of_this_quarksjob() {
        let p = planned(true);
        let v1 = version_secret("foo-v1", 1, &p, &owner());
        let mut changed = planned(true);
        changed.data.insert("hello".into(), "again".into());
        assert_eq!(
            decide_versioned(&p, std::slice::from_ref(&v1), &owner(), 0),
            Ok(Step::UnchangedVersion(1))
        );
        assert_eq!(
            decide_versioned(&changed, std::slice::from_ref(&v1), &owner(), 0),
            Ok(Step::NewVersion {
                n: 2,
                name: "foo-v2".into()
            })
        );
        assert_eq!(
            decide_versioned(&changed, std::slice::from_ref(&v1), &owner(), 5),
            Ok(Step::NewVersion {
                n: 6,
                name: "foo-v6".into()
            })
        );
        // another QuarksJob's version in the series: the whole write is refused
        let v2 = version_secret("foo-v2", 2, &p, &other());
        let err = decide_versioned(&changed, &[v1.clone(), v2], &owner(), 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "QuarksJob 'ns/qj' may not write Secret 'ns/foo-v2': it is a version of 'foo' and it was written for QuarksJob 'other'"
        );
        // upstream's versions: controller owner reference, no label
        let mut upstream = v1;
        upstream
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .remove(LABEL_QJOB_NAME);
        assert_eq!(
            decide_versioned(&changed, &[upstream], &owner(), 0),
            Ok(Step::NewVersion {
                n: 2,
                name: "foo-v2".into()
            })
        );
        // no next version past the bound
        let full = version_secret("foo-v999999999", 999_999_999, &p, &owner());
        let err = decide_versioned(&changed, &[full], &owner(), 0).unwrap_err();
        assert!(err.reason.contains("greatest version number"), "{err}");
    }
}

//! Writing planned Secrets: plain ones are created or updated in place, versioned ones get the
//! next free `<name>-v<N>` unless the latest version already holds the same content.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{ListParams, PostParams};
use kube::{Api, Resource, ResourceExt};

use crate::api::QuarksJob;
use crate::api::labels::{
    ANNOTATION_SOURCE_DESCRIPTION, LABEL_SECRET_KIND, LABEL_SECRET_VERSION, SECRET_KIND_VERSIONED,
};
use crate::versioned::{self, Content};

use super::plan::PlannedSecret;

/// Upstream's source description of versions written by persist-output.
pub const SOURCE_DESCRIPTION: &str = "created by quarksJob";

/// How often a versioned create is retried when other writers take the version numbers.
pub const MAX_VERSION_ATTEMPTS: u32 = 10;

/// What happened to one planned Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A plain Secret was created.
    Created,
    /// A plain Secret was overwritten.
    Updated,
    /// A new version `N` was created.
    NewVersion(u64),
    /// The latest version `N` already held this content.
    Unchanged(u64),
}

/// An owner reference to the QuarksJob. Versioned secrets are controlled by it (upstream); plain
/// Secrets only name it as an owner (`controller: false`), since several QuarksJobs may write
/// the same Secret and each keeps it alive. `blockOwnerDeletion` stays false, as upstream, so no
/// permission on the QuarksJob's finalizers is needed.
pub fn owner_reference(qjob: &QuarksJob, controller: bool) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: QuarksJob::api_version(&()).to_string(),
        kind: QuarksJob::kind(&()).to_string(),
        name: qjob.name_any(),
        uid: qjob.meta().uid.clone()?,
        controller: Some(controller),
        block_owner_deletion: Some(false),
    })
}

fn bytes(data: &BTreeMap<String, String>) -> BTreeMap<String, ByteString> {
    data.iter()
        .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

/// A new plain Secret.
pub fn plain_secret(namespace: &str, p: &PlannedSecret, owner: Option<&OwnerReference>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(p.name.clone()),
            namespace: Some(namespace.to_string()),
            labels: Some(p.labels.clone()),
            annotations: Some(p.annotations.clone()),
            owner_references: owner.map(|o| vec![o.clone()]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(bytes(&p.data)),
        ..Default::default()
    }
}

/// An existing plain Secret overwritten with the new output: data, labels and annotations are
/// replaced (as upstream's update did); other owners stay and the QuarksJob is added once.
pub fn overwrite(
    mut existing: Secret,
    p: &PlannedSecret,
    owner: Option<&OwnerReference>,
) -> Secret {
    existing.data = Some(bytes(&p.data));
    existing.string_data = None;
    existing.metadata.labels = Some(p.labels.clone());
    existing.metadata.annotations = Some(p.annotations.clone());
    if let Some(owner) = owner {
        let refs = existing
            .metadata
            .owner_references
            .get_or_insert_with(Vec::new);
        if !refs.iter().any(|r| r.uid == owner.uid) {
            refs.push(owner.clone());
        }
    }
    existing
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

/// Version `n` of `p`, named `name` (already validated).
pub fn version_secret(
    namespace: &str,
    name: &str,
    n: u64,
    p: &PlannedSecret,
    owner: Option<&OwnerReference>,
) -> Secret {
    let content = desired_content(p);
    let mut labels = content.labels;
    labels.insert(LABEL_SECRET_VERSION.into(), n.to_string());
    labels.insert(LABEL_SECRET_KIND.into(), SECRET_KIND_VERSIONED.into());
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: Some(content.annotations),
            owner_references: owner.map(|o| vec![o.clone()]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(bytes(&p.data)),
        ..Default::default()
    }
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteFailure {
    /// The apiserver refused.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// Every version number (or update) tried was taken by another writer.
    #[error("other writers won {0} attempts in a row")]
    Conflicts(u32),
    /// No next version can be written (name unusable, or the series is full).
    #[error(transparent)]
    Version(#[from] versioned::VersionError),
}

fn is_status(e: &kube::Error, pred: impl Fn(&kube::core::Status) -> bool) -> bool {
    matches!(e, kube::Error::Api(s) if pred(s))
}

/// Create the plain Secret, or overwrite it when it exists (retrying on update conflicts).
pub async fn write_plain(
    api: &Api<Secret>,
    namespace: &str,
    p: &PlannedSecret,
    owner: Option<&OwnerReference>,
) -> Result<Outcome, WriteFailure> {
    let pp = PostParams::default();
    for _ in 0..MAX_VERSION_ATTEMPTS {
        match api.create(&pp, &plain_secret(namespace, p, owner)).await {
            Ok(_) => return Ok(Outcome::Created),
            Err(e) if is_status(&e, |s| s.is_already_exists()) => {}
            Err(e) => return Err(e.into()),
        }
        let Some(existing) = api.get_opt(&p.name).await? else {
            continue; // deleted in between: create again
        };
        match api
            .replace(&p.name, &pp, &overwrite(existing, p, owner))
            .await
        {
            Ok(_) => return Ok(Outcome::Updated),
            Err(e) if is_status(&e, |s| s.is_conflict() || s.is_not_found()) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(WriteFailure::Conflicts(MAX_VERSION_ATTEMPTS))
}

/// The versioned secrets of the namespace (all prefixes).
pub async fn list_versions(api: &Api<Secret>) -> Result<Vec<Secret>, kube::Error> {
    let selector = format!("{LABEL_SECRET_KIND}={SECRET_KIND_VERSIONED}");
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}

/// Create the next version of `p`, unless the latest version holds the same content. A version
/// number taken by a concurrent writer (AlreadyExists) makes it look again and take the next.
pub async fn write_versioned(
    api: &Api<Secret>,
    namespace: &str,
    p: &PlannedSecret,
    owner: Option<&OwnerReference>,
) -> Result<Outcome, WriteFailure> {
    let desired = desired_content(p);
    let mut taken = 0; // the last version number a create found taken
    for _ in 0..MAX_VERSION_ATTEMPTS {
        let existing = list_versions(api).await?;
        let metas = existing.iter().map(|s| &s.metadata);
        if let Some((n, meta)) = versioned::latest(&p.name, metas.clone()) {
            let latest = existing.iter().find(|s| s.metadata.name == meta.name);
            if latest.is_some_and(|l| versioned::is_identical(&content_of(l), &desired)) {
                return Ok(Outcome::Unchanged(n));
            }
        }
        // A name can be taken without being listed: created after our LIST, or not labelled as
        // a version at all. Never try a taken number twice.
        versioned::warn_mislabelled(namespace, &p.name, metas.clone());
        let (n, name) = versioned::next_name(&p.name, metas, taken)?;
        match api
            .create(
                &PostParams::default(),
                &version_secret(namespace, &name, n, p, owner),
            )
            .await
        {
            Ok(_) => return Ok(Outcome::NewVersion(n)),
            Err(e) if is_status(&e, |s| s.is_already_exists()) => taken = n,
            Err(e) => return Err(e.into()),
        }
    }
    Err(WriteFailure::Conflicts(MAX_VERSION_ATTEMPTS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::QuarksJobSpec;

    fn planned() -> PlannedSecret {
        PlannedSecret {
            name: "foo".into(),
            versioned: true,
            labels: [("l".to_string(), "v".to_string())].into(),
            annotations: [("a".to_string(), "b".to_string())].into(),
            data: [("hello".to_string(), "world".to_string())].into(),
            container: "c".into(),
            file: "f".into(),
        }
    }

    fn qjob() -> QuarksJob {
        let mut q = QuarksJob::new("qj", QuarksJobSpec::default());
        q.metadata.uid = Some("uid-1".into());
        q
    }

    #[test]
    fn owner_references() {
        let o = owner_reference(&qjob(), true).unwrap();
        assert_eq!(o.api_version, "quarks.cloudfoundry.org/v1alpha1");
        assert_eq!(
            (o.kind.as_str(), o.name.as_str(), o.uid.as_str()),
            ("QuarksJob", "qj", "uid-1")
        );
        assert_eq!(
            (o.controller, o.block_owner_deletion),
            (Some(true), Some(false))
        );
        assert_eq!(
            owner_reference(&qjob(), false).unwrap().controller,
            Some(false)
        );
        assert!(owner_reference(&QuarksJob::new("x", QuarksJobSpec::default()), true).is_none());
    }

    #[test]
    fn versions_carry_upstream_labels_and_annotation() {
        let owner = owner_reference(&qjob(), true);
        let s = version_secret("ns", "foo-v3", 3, &planned(), owner.as_ref());
        let labels = s.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_SECRET_VERSION], "3");
        assert_eq!(labels[LABEL_SECRET_KIND], "versionedSecret");
        assert_eq!(labels["l"], "v");
        let annotations = s.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            annotations[ANNOTATION_SOURCE_DESCRIPTION],
            "created by quarksJob"
        );
        assert_eq!(annotations["a"], "b");
        assert_eq!(s.metadata.owner_references.as_ref().unwrap().len(), 1);
        assert_eq!(s.data.as_ref().unwrap()["hello"].0, b"world");
        // what was written compares identical to what would be written again
        assert!(versioned::is_identical(
            &content_of(&s),
            &desired_content(&planned())
        ));
    }

    #[test]
    fn overwrite_replaces_content_and_keeps_other_owners() {
        let other = OwnerReference {
            uid: "other".into(),
            ..owner_reference(&qjob(), false).unwrap()
        };
        let mut existing = plain_secret("ns", &planned(), Some(&other));
        existing.metadata.labels = Some([("stale".to_string(), "x".to_string())].into());
        existing.string_data = Some([("old".to_string(), "x".to_string())].into());
        existing.metadata.resource_version = Some("42".into());
        let owner = owner_reference(&qjob(), false).unwrap();
        let s = overwrite(existing, &planned(), Some(&owner));
        assert_eq!(s.metadata.labels, Some(planned().labels));
        assert_eq!(
            s.metadata.resource_version.as_deref(),
            Some("42"),
            "optimistic concurrency"
        );
        assert!(s.string_data.is_none());
        let uids: Vec<_> = s
            .metadata
            .owner_references
            .as_ref()
            .unwrap()
            .iter()
            .map(|r| r.uid.as_str())
            .collect();
        assert_eq!(uids, ["other", "uid-1"]);
        // the same owner is not added twice
        let again = overwrite(s, &planned(), Some(&owner));
        assert_eq!(again.metadata.owner_references.unwrap().len(), 2);
    }
}

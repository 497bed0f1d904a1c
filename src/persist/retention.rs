//! Retention of versioned secrets (`--versioned-secret-history`): after writing, keep the newest
//! versions of each written name, and every version that a pod (whatever its phase), a Job or a
//! QuarksJob template of the namespace references. Only versions of this QuarksJob are ever
//! deleted.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodSpec, Secret};
use kube::api::{DeleteParams, DynamicObject, ListParams, Preconditions};
use kube::discovery::ApiResource;
use kube::{Api, Client, ResourceExt};
use serde_json::Value;
use tracing::warn;

use crate::core::api::QuarksJob;
use crate::core::podrefs;
use crate::core::versioned;

use super::ownership::{Owner, claim};
use super::retry;
use super::write::Writer;

/// The Secrets `spec` references (the shared rule of [`podrefs`]).
fn secret_refs(spec: &PodSpec) -> impl Iterator<Item = String> {
    podrefs::references(spec).secrets.into_keys()
}

/// Every string in a QuarksJob whose template does not decode as a pod spec: nothing it might
/// reference is deleted (such a QuarksJob cannot run, but its references are not known either).
fn strings(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| strings(i, out)),
        _ => {}
    }
}

/// The Secret names a QuarksJob's template references.
pub fn qjob_refs(qjob: &DynamicObject) -> BTreeSet<String> {
    let template = &qjob.data["spec"]["template"];
    match serde_json::from_value::<PodSpec>(template["spec"]["template"]["spec"].clone()) {
        Ok(spec) => secret_refs(&spec).collect(),
        Err(e) => {
            warn!(
                "QuarksJob '{}/{}' has a template that is no pod spec ({e}); every name in it is kept",
                qjob.namespace().unwrap_or_default(),
                qjob.name_any()
            );
            let mut out = BTreeSet::new();
            strings(template, &mut out);
            out
        }
    }
}

/// The Secret names referenced by the namespace's pods (any phase: a finished pod's logs and
/// restarts still name them), Jobs and QuarksJob templates.
async fn in_use(client: &Client, namespace: &str) -> Result<BTreeSet<String>, kube::Error> {
    let lp = ListParams::default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    // untyped, so that one QuarksJob the types cannot read does not stop retention
    let qjobs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<QuarksJob>(&()),
    );
    let mut names = BTreeSet::new();
    let what = |kind: &str| format!("list {kind} in '{namespace}'");
    for pod in retry::call(&what("pods"), || pods.list(&lp)).await?.items {
        names.extend(pod.spec.as_ref().into_iter().flat_map(secret_refs));
    }
    for job in retry::call(&what("jobs"), || jobs.list(&lp)).await?.items {
        let spec = job.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        names.extend(spec.into_iter().flat_map(secret_refs));
    }
    for qjob in retry::call(&what("quarksjobs"), || qjobs.list(&lp))
        .await?
        .items
    {
        names.extend(qjob_refs(&qjob));
    }
    Ok(names)
}

/// Delete the versions of `prefix` beyond the `keep` newest that nothing references and that
/// belong to this QuarksJob. Returns the deleted names. Versions deleted by someone else
/// meanwhile are fine.
pub async fn prune(
    client: &Client,
    writer: &Writer<'_>,
    prefix: &str,
    keep: usize,
) -> Result<Vec<String>, kube::Error> {
    if keep == 0 {
        return Ok(Vec::new());
    }
    let owner: &Owner = writer.owner;
    let existing = writer.list_versions().await?;
    let ours: Vec<&Secret> = existing
        .iter()
        .filter(|s| claim(&s.metadata, owner, None).allowed())
        .collect();
    if versioned::versions(prefix, ours.iter().map(|s| &s.metadata)).len() <= keep {
        return Ok(Vec::new());
    }
    let in_use = in_use(client, &owner.namespace).await?;
    let doomed = versioned::prune(prefix, ours.iter().map(|s| &s.metadata), keep, &in_use);
    for name in &doomed {
        // only the object looked at: a version re-created meanwhile is not deleted
        let uid = ours
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
            .and_then(|s| s.metadata.uid.clone());
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid,
                resource_version: None,
            }),
            ..Default::default()
        };
        let what = format!("delete secret '{}/{name}'", owner.namespace);
        match retry::call(&what, || writer.api.delete(name, &dp)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(doomed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn qjob(template: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
            "metadata": {"name": "q", "namespace": "ns"},
            "spec": {"template": template}
        }))
        .unwrap()
    }

    #[test]
    fn a_quarksjob_template_references_what_its_pod_spec_does() {
        let q = qjob(json!({"spec": {"template": {"spec": {
            "containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "creds-v1"}}]}],
            "initContainers": [{"name": "i", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "init-v2", "key": "k"}}}]}],
            "volumes": [{"name": "p", "projected": {"sources": [{"secret": {"name": "proj-v3"}}]}},
                        {"name": "c", "configMap": {"name": "not-a-secret"}}]
        }}}}));
        let refs: Vec<String> = qjob_refs(&q).into_iter().collect();
        assert_eq!(refs, ["creds-v1", "init-v2", "proj-v3"]);
    }

    #[test]
    fn an_undecodable_template_keeps_every_name_in_it() {
        // `value: 8080` is no string: the typed pod spec cannot be read
        let q = qjob(json!({"spec": {"template": {"spec": {
            "containers": [{"name": "c", "env": [{"name": "PORT", "value": 8080}],
                            "envFrom": [{"secretRef": {"name": "creds-v4"}}]}]
        }}}}));
        let refs = qjob_refs(&q);
        assert!(refs.contains("creds-v4"), "{refs:?}");
    }
}

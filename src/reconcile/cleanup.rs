//! Cleaning up a succeeded Job.
//!
//! Upstream deleted the Job with the server's default propagation for batch/v1 Jobs (Orphan), so
//! the pods stayed, lost their owner, and outlived the QuarksJob; with `delete: pod` it deleted
//! only the newest pod. Here:
//!
//! * `delete: pod` on the pod template: every pod of the Job is deleted, then the Job;
//! * otherwise the pods are kept for their logs but *re-owned*: their owner references are
//!   replaced by one to the QuarksJob (as controller, so the Job controller no longer claims
//!   them), and only then is the Job deleted, with **Background** propagation. The garbage
//!   collector then deletes what still depends on the Job only: a pod that has the QuarksJob as
//!   owner is not a dependent of the Job any more, and a pod that was somehow missed is deleted
//!   rather than leaked. Kept pods go when the QuarksJob is deleted.
//!
//! Failed Jobs are kept for inspection (their pods with them). Of both, a QuarksJob keeps at
//! most `--job-history` (failed Jobs, and kept pods); the oldest are deleted first
//! ([`super::history`]), never the Job of the last run.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use serde_json::json;

use super::context::{Context, is_not_found, kube_error};
use super::error::Result;
use super::events::{self, EventType, job_named, job_reference, publish_about};
use super::history::{Leftover, beyond};
use super::job::{JobPhase, Owned, Owner, deletes_pods, owner_reference, phase};
use crate::core::api::labels::LABEL_QJOB_NAME;
use crate::core::job_names::run_of;

/// Delete the pods of `job` or re-own them to the QuarksJob, then delete `job`. Returns whether
/// this call deleted the Job (false when it was gone already).
pub async fn cleanup_succeeded(
    ctx: &Context,
    owner: &Owner<'_>,
    regarding: &ObjectReference,
    job: &Job,
) -> Result<bool> {
    let object = format!("{}/{}", owner.namespace, owner.name);
    let job_name = job.name_any();
    let job_uid = job.uid().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), owner.namespace);
    let lp = ListParams::default().labels(&format!("controller-uid={job_uid}"));
    let list = ctx
        .api(
            &object,
            &format!("list pods of Job '{job_name}'"),
            pods.list(&lp),
        )
        .await?;

    if deletes_pods(job) {
        for pod in &list.items {
            let pod_name = pod.name_any();
            announced_delete(
                ctx,
                &object,
                (regarding, Some(&pod_reference(&pod.metadata))),
                (events::DELETING_JOBS_POD, "DeletePod"),
                &format!(
                    "pod '{}/{pod_name}' of succeeded job '{job_name}'",
                    owner.namespace
                ),
                &format!("delete pod '{pod_name}'"),
                pods.delete(&pod_name, &DeleteParams::background()),
            )
            .await?;
        }
    } else {
        let mut kept = Vec::new();
        for pod in &list.items {
            let already = pod.owner_references().iter().any(|r| r.uid == owner.uid);
            if already {
                continue;
            }
            let patch =
                json!({"metadata": {"ownerReferences": [owner_reference(owner, Owned::KeptPod)]}});
            let action = format!("re-own pod '{}' to the QuarksJob", pod.name_any());
            match ctx
                .call(
                    &object,
                    &action,
                    pods.patch(
                        &pod.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    ),
                )
                .await?
            {
                Ok(_) => kept.push(pod.name_any()),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(kube_error(&object, &action, e)),
            }
        }
        if !kept.is_empty() {
            ctx.set_pruned(owner.uid, false);
            let note = format!(
                "Keeping pods {} of succeeded job '{job_name}', now owned by the QuarksJob",
                kept.join(", ")
            );
            publish_about(
                &ctx.recorder,
                regarding,
                Some(&job_reference(job)),
                EventType::Normal,
                events::KEEPING_PODS,
                "KeepPods",
                note,
            )
            .await;
        }
    }

    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), owner.namespace);
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(job_uid),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    let deleted = announced_delete(
        ctx,
        &object,
        (regarding, Some(&job_reference(job))),
        (events::DELETING_JOB, "DeleteJob"),
        &format!("succeeded job '{}/{job_name}'", owner.namespace),
        &format!("delete Job '{job_name}'"),
        jobs.delete(&job_name, &dp),
    )
    .await?;
    ctx.jobs().deleted(owner.uid, &job_name);
    Ok(deleted)
}

/// The label the job controller puts on the pods of a Job: the Job's name.
const JOB_NAME_LABEL: &str = "job-name";

/// Delete the failed Jobs (of `jobs`, the QuarksJob's) and the kept pods beyond the newest
/// `--job-history` of each, oldest first; never the Job `last_job`. `last_run` is the newest run.
/// The kept pods are listed only if `kept_pods` (see [`Context::needs_pruning`]: a list reads
/// every pod of the namespace).
pub async fn prune_history(
    ctx: &Context,
    owner: &Owner<'_>,
    regarding: &ObjectReference,
    jobs: &[Arc<Job>],
    (last_job, last_run): (Option<&str>, i64),
    kept_pods: bool,
) -> Result<()> {
    let keep = ctx.config.job_history;
    if keep == 0 {
        return Ok(());
    }
    let object = format!("{}/{}", owner.namespace, owner.name);
    let leftover = |meta: &ObjectMeta, job: &str| Leftover {
        name: meta.name.clone().unwrap_or_default(),
        run: run_of(job, owner.name, owner.uid, last_run),
        created: meta.creation_timestamp.as_ref().map(|t| t.0),
    };
    let failed = jobs
        .iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .filter(|j| matches!(phase(j), JobPhase::Failed { .. }))
        .map(|j| leftover(&j.metadata, &j.name_any()))
        .collect();
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), owner.namespace);
    for job in beyond(failed, keep) {
        if Some(job.as_str()) == last_job {
            continue;
        }
        announced_delete(
            ctx,
            &object,
            (regarding, Some(&job_named(regarding, &job))),
            (events::DELETING_JOB, "DeleteJob"),
            &format!(
                "failed job '{}/{job}' (more than {keep} failed jobs)",
                owner.namespace
            ),
            &format!("delete Job '{job}'"),
            api.delete(&job, &DeleteParams::background()),
        )
        .await?;
        ctx.jobs().deleted(owner.uid, &job);
    }
    if !kept_pods {
        return Ok(());
    }

    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), owner.namespace);
    let lp = ListParams::default().labels(&format!("{LABEL_QJOB_NAME}={}", owner.name));
    let list = ctx.api(&object, "list kept pods", pods.list(&lp)).await?;
    let kept = list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.owner_references()
                .iter()
                .any(|r| r.controller == Some(true) && r.uid == owner.uid)
        })
        .map(|p| {
            let job = p.labels().get(JOB_NAME_LABEL).cloned().unwrap_or_default();
            leftover(&p.metadata, &job)
        })
        .collect();
    for pod in beyond(kept, keep) {
        let related = pod_reference(&ObjectMeta {
            name: Some(pod.clone()),
            namespace: Some(owner.namespace.to_string()),
            ..ObjectMeta::default()
        });
        announced_delete(
            ctx,
            &object,
            (regarding, Some(&related)),
            (events::DELETING_JOBS_POD, "DeletePod"),
            &format!(
                "kept pod '{}/{pod}' (more than {keep} kept pods)",
                owner.namespace
            ),
            &format!("delete pod '{pod}'"),
            pods.delete(&pod, &DeleteParams::background()),
        )
        .await?;
    }
    ctx.set_pruned(owner.uid, true);
    Ok(())
}

/// A reference to the pod with `meta`: the `related` object of the event about its deletion
/// (the recorder folds events with the same reason, object and related object into one series
/// whose note is the first one's: with the Job as related object, the deletion of a Job's second
/// pod was counted into the event naming the first).
fn pod_reference(meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        ..ObjectReference::default()
    }
}

/// Announce the deletion of `what` with a Normal event (`reason`, `event_action`), run
/// `request`, and return whether it deleted something (false: already gone). A failure is a
/// Warning `DeleteError` event and the error.
async fn announced_delete<T>(
    ctx: &Context,
    object: &str,
    (regarding, related): (&ObjectReference, Option<&ObjectReference>),
    (reason, event_action): (&str, &str),
    what: &str,
    action: &str,
    request: impl Future<Output = kube::Result<T>>,
) -> Result<bool> {
    publish_about(
        &ctx.recorder,
        regarding,
        related,
        EventType::Normal,
        reason,
        event_action,
        format!("Deleting {what}"),
    )
    .await;
    match ctx.call(object, action, request).await? {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => {
            publish_about(
                &ctx.recorder,
                regarding,
                related,
                EventType::Warning,
                events::DELETE_ERROR,
                event_action,
                format!("Cannot delete {what}: {e}"),
            )
            .await;
            Err(kube_error(object, action, e))
        }
    }
}

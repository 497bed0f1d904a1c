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

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use serde_json::json;

use super::context::{Context, is_not_found, kube_error};
use super::error::Result;
use super::events::{self, publish};
use super::job::{Owner, deletes_pods, owner_reference};

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
                regarding,
                (events::DELETING_JOBS_POD, "DeletePod"),
                &format!("succeeded job's pod '{}/{pod_name}'", owner.namespace),
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
            let patch = json!({"metadata": {"ownerReferences": [owner_reference(owner, false)]}});
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
            let note = format!(
                "Keeping pods {} of succeeded job '{job_name}', now owned by the QuarksJob",
                kept.join(", ")
            );
            publish(
                &ctx.recorder,
                regarding,
                false,
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
    announced_delete(
        ctx,
        &object,
        regarding,
        (events::DELETING_JOB, "DeleteJob"),
        &format!("succeeded job '{}/{job_name}'", owner.namespace),
        &format!("delete Job '{job_name}'"),
        jobs.delete(&job_name, &dp),
    )
    .await
}

/// Announce the deletion of `what` with a Normal event (`reason`, `event_action`), run
/// `request`, and return whether it deleted something (false: already gone). A failure is a
/// Warning `DeleteError` event and the error.
async fn announced_delete<T>(
    ctx: &Context,
    object: &str,
    regarding: &ObjectReference,
    (reason, event_action): (&str, &str),
    what: &str,
    action: &str,
    request: impl Future<Output = kube::Result<T>>,
) -> Result<bool> {
    publish(
        &ctx.recorder,
        regarding,
        false,
        reason,
        event_action,
        format!("Deleting {what}"),
    )
    .await;
    match ctx.call(object, action, request).await? {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => {
            publish(
                &ctx.recorder,
                regarding,
                true,
                events::DELETE_ERROR,
                event_action,
                format!("Cannot delete {what}: {e}"),
            )
            .await;
            Err(kube_error(object, action, e))
        }
    }
}

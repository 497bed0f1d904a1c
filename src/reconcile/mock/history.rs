//! Scenarios of `--job-history` (test only): beyond the newest 5 (the default), the oldest
//! failed Job and the oldest kept pod are deleted, each with its own event
//! ([`crate::reconcile::cleanup::prune_history`]). Mirrors
//! `tests/reconcile_cleanup.rs::only_the_newest_failed_jobs_and_kept_pods_stay`.

use serde_json::{Value, json};

use super::fixtures::scenario;
use super::objects::{Cache, OWNER, job, job_of, pod_of, qjob, qjob_selector, with_status};
use crate::reconcile::job::{Owned, owner_reference};

/// Six runs recorded, the last one's Job `job_of(6)`; a Job succeeded before (so pods may be
/// kept).
fn six_runs() -> Value {
    with_status(
        qjob("manual"),
        json!({"requestedRun": 6, "createdRun": 6, "lastJobName": job_of(6), "completed": true}),
    )
}

#[tokio::test]
async fn the_oldest_failed_job_beyond_the_history_is_deleted() {
    let failed = json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]);
    let jobs: Vec<Value> = (1..=6)
        .map(|run| job(run, failed.clone(), json!({})))
        .collect();
    let (result, _api) = scenario(six_runs(), Cache::Monitored, jobs, |mut api| async move {
        // announced once, for the last run's Job only
        let announced = api.expect_event("JobFailed").await;
        assert_eq!(announced["type"], "Warning");
        assert_eq!(announced["related"]["name"], job_of(6));
        let deleting = api.expect_event("DeletingJob").await;
        assert_eq!(deleting["related"]["name"], job_of(1));
        api.expect_delete("jobs", &job_of(1), |options| {
            assert_eq!(options["propagationPolicy"], "Background");
        })
        .await;
        api.expect_list_pods(&qjob_selector(), vec![]).await;
        api.expect_status_patch(|body| {
            let conditions = body["status"]["conditions"].as_array().expect("conditions");
            let failed = conditions
                .iter()
                .find(|c| c["type"] == "Failed")
                .expect("Failed");
            assert_eq!(
                (&failed["status"], &failed["reason"]),
                (&json!("True"), &json!("BackoffLimitExceeded"))
            );
        })
        .await;
        api
    })
    .await;
    result.expect("reconciled");
}

#[tokio::test]
async fn the_oldest_kept_pod_beyond_the_history_is_deleted() {
    let kept: Vec<Value> = (1..=6)
        .map(|run| {
            let mut pod = pod_of(run, &format!("kept-{run}"));
            pod["metadata"]["ownerReferences"] = json!([owner_reference(&OWNER, Owned::KeptPod)]);
            pod
        })
        .collect();
    let (result, _api) = scenario(six_runs(), Cache::Monitored, vec![], |mut api| async move {
        // the Jobs were cleaned up; their pods are the QuarksJob's
        api.expect_list_pods(&qjob_selector(), kept).await;
        let deleting = api.expect_event("DeletingJobsPod").await;
        assert_eq!(
            (&deleting["related"]["kind"], &deleting["related"]["name"]),
            (&json!("Pod"), &json!("kept-1"))
        );
        api.expect_delete("pods", "kept-1", |options| {
            assert_eq!(options["propagationPolicy"], "Background");
        })
        .await;
        api.expect_status_patch(|body| {
            assert!(body["status"]["conditions"].is_array());
        })
        .await;
        api
    })
    .await;
    result.expect("reconciled");
}

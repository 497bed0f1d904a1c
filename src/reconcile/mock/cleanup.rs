//! Scenarios of a succeeded Job (test only): its run's record completed, its pods re-owned to
//! the QuarksJob (or deleted with `delete: pod`), then the Job deleted with Background
//! propagation and its uid as precondition ([`crate::reconcile::cleanup`]). Mirrors
//! `tests/reconcile_cleanup.rs` at the level of the apiserver requests.

use serde_json::{Value, json};

use super::fixtures::{ApiServer, scenario};
use super::objects::{
    Cache, NAME, NS, OWNER, job, job_of, job_uid, pod_of, qjob, qjob_selector, with_status,
};
use crate::core::api::labels::LABEL_QJOB_NAME;
use crate::reconcile::job::{Owned, owner_reference};

const STARTED: &str = "2026-01-01T00:00:00Z";
const WRITTEN: &str = "2026-01-01T00:00:05Z";
const FINISHED: &str = "2026-01-01T00:00:10Z";

/// Run 1 recorded and running (by the record of [`super::triggers`]'s scenarios), its
/// outcome awaited if `with_record`.
fn recorded(with_record: bool) -> Value {
    let runs = if with_record {
        json!([{"run": 1, "trigger": "now", "jobName": job_of(1), "started": STARTED, "result": "Running"}])
    } else {
        json!([])
    };
    with_status(
        qjob("manual"),
        json!({"requestedRun": 1, "createdRun": 1, "lastJobName": job_of(1), "runs": runs}),
    )
}

/// The Job of run 1, complete.
fn succeeded(pod_labels: Value) -> Value {
    let mut job = job(
        1,
        json!([{"type": "Complete", "status": "True", "lastTransitionTime": FINISHED}]),
        pod_labels,
    );
    job["status"]["completionTime"] = json!(FINISHED);
    job
}

fn controller_uid() -> String {
    format!("controller-uid={}", job_uid(1))
}

/// The Job's delete: Background, only that Job (its uid as precondition).
async fn expect_job_delete(api: &mut ApiServer) {
    api.expect_event("DeletingJob").await;
    api.expect_delete("jobs", &job_of(1), |options| {
        assert_eq!(options["propagationPolicy"], "Background", "{options:#}");
        assert_eq!(options["preconditions"]["uid"], job_uid(1));
    })
    .await;
}

#[tokio::test]
async fn a_succeeded_job_is_recorded_its_pods_kept_for_the_qjob_and_it_is_deleted() {
    let p1 = pod_of(1, "p1");
    let mut kept = p1.clone();
    kept["metadata"]["ownerReferences"] = json!([owner_reference(&OWNER, Owned::KeptPod)]);
    let (kept_for_history, kept_answer) = (kept.clone(), kept);
    let output = json!({"name": "out", "namespace": NS,
        "labels": {LABEL_QJOB_NAME: NAME}, "creationTimestamp": WRITTEN});
    let (result, api) = scenario(
        recorded(true),
        Cache::Monitored,
        vec![succeeded(json!({}))],
        |mut api| async move {
            // the outcome of the run: its pods, its output Secrets (metadata only)
            api.expect_list_pods(&controller_uid(), vec![p1.clone()])
                .await;
            api.expect_list_output_secrets(vec![output]).await;
            let written = api.expect_event("OutputWritten").await;
            assert!(
                written["note"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("'out'")
            );
            api.expect_event("JobSucceeded").await;
            // the cleanup: the pods re-owned to the QuarksJob, then the Job deleted
            api.expect_list_pods(&controller_uid(), vec![p1]).await;
            api.expect_pod_patch("p1", kept_answer, |body| {
                let owners = json!([owner_reference(&OWNER, Owned::KeptPod)]);
                assert_eq!(body, &json!({"metadata": {"ownerReferences": owners}}));
            })
            .await;
            api.expect_event("KeepingPods").await;
            expect_job_delete(&mut api).await;
            // the history: one kept pod, within --job-history
            api.expect_list_pods(&qjob_selector(), vec![kept_for_history])
                .await;
            api.expect_status_patch(|body| {
                let st = &body["status"];
                assert_eq!(st["completed"], true);
                assert_eq!(st["runs"][0]["result"], "Succeeded");
                assert_eq!(st["runs"][0]["podName"], "p1");
                assert_eq!(st["runs"][0]["outputs"], json!([{"name": "out"}]));
            })
            .await;
            api
        },
    )
    .await;
    result.expect("reconciled");
    assert_eq!(api.qjob["status"]["runs"][0]["finished"], FINISHED);
}

#[tokio::test]
async fn a_succeeded_job_with_delete_pod_loses_its_pods_then_is_deleted() {
    let pods = vec![pod_of(1, "p1"), pod_of(1, "p2")];
    let (result, _api) = scenario(
        recorded(false),
        Cache::Monitored,
        vec![succeeded(json!({"delete": "pod"}))],
        |mut api| async move {
            // no record awaits an outcome: straight to the announcement and the cleanup
            api.expect_event("JobSucceeded").await;
            api.expect_list_pods(&controller_uid(), pods).await;
            for pod in ["p1", "p2"] {
                // (each its own event: a second one about the same related object would be a
                // PATCH of the first one's series, with the first one's note)
                let announced = api.expect_event("DeletingJobsPod").await;
                assert_eq!(announced["related"]["kind"], "Pod");
                assert_eq!(announced["related"]["name"], pod);
                api.expect_delete("pods", pod, |options| {
                    assert_eq!(options["propagationPolicy"], "Background");
                })
                .await;
            }
            expect_job_delete(&mut api).await;
            api.expect_list_pods(&qjob_selector(), vec![]).await;
            api.expect_status_patch(|body| {
                assert_eq!(body["status"]["completed"], true);
                let conditions = body["status"]["conditions"].as_array().expect("conditions");
                let succeeded = conditions
                    .iter()
                    .find(|c| c["type"] == "Succeeded")
                    .expect("Succeeded");
                assert_eq!(succeeded["status"], "True");
            })
            .await;
            api
        },
    )
    .await;
    result.expect("reconciled");
}

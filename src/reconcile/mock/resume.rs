//! Scenarios of a run interrupted between its writes (test only), the crash paths of
//! [`crate::reconcile::state`]: a pending run (`requestedRun > createdRun`) is resumed with its
//! number, never allocated again, and never makes a second Job. Mirrors the crash tests of
//! `tests/reconcile_triggers.rs` at the level of the apiserver requests.

use serde_json::json;

use super::fixtures::scenario;
use super::objects::{Cache, job, job_of, qjob, with_status};
use super::triggers::{after_the_run, is_record_of};

/// Run 1 allocated, not recorded.
fn pending(strategy: &str) -> serde_json::Value {
    with_status(qjob(strategy), json!({"requestedRun": 1, "createdRun": 0}))
}

#[tokio::test]
async fn a_crash_after_the_allocation_resumes_the_same_run() {
    let (result, api) = scenario(pending("now"), Cache::Monitored, |mut api| async move {
        api.expect_get_qjob().await;
        api.expect_list_jobs(vec![]).await;
        // no allocation: the trigger is consumed, then the Job of run 1 created
        api.expect_spec_patch(|body| {
            assert_eq!(body["metadata"]["resourceVersion"], "1", "guarded");
            assert_eq!(body["spec"]["trigger"]["strategy"], "manual");
        })
        .await;
        api.expect_event("Triggered").await;
        api.expect_job_create(1, false).await;
        api.expect_event("CreateJob").await;
        api.expect_status_patch(is_record_of(1, "now")).await;
        after_the_run(&mut api, 1).await;
        api
    })
    .await;
    result.expect("reconciled");
    assert_eq!(api.qjob["spec"]["trigger"]["strategy"], "manual");
    assert_eq!(
        (
            &api.qjob["status"]["requestedRun"],
            &api.qjob["status"]["createdRun"]
        ),
        (&json!(1), &json!(1))
    );
}

#[tokio::test]
async fn a_job_created_before_the_crash_is_adopted_when_its_create_answers_already_exists() {
    // crashed after the strategy flip and the create, before the record; the list does not
    // show the Job (e.g. created meanwhile): the create answers AlreadyExists
    let (result, api) = scenario(pending("manual"), Cache::Monitored, |mut api| async move {
        api.expect_get_qjob().await;
        api.expect_list_jobs(vec![]).await;
        let resumed = api.expect_event("Triggered").await;
        let note = resumed["note"].as_str().unwrap_or_default();
        assert!(note.contains("resumed"), "{note}");
        api.expect_job_create(1, true).await;
        api.expect_event("AlreadyRunning").await;
        api.expect_status_patch(is_record_of(1, "resumed")).await;
        after_the_run(&mut api, 1).await;
        api
    })
    .await;
    result.expect("reconciled");
    assert_eq!(api.qjob["status"]["lastJobName"], job_of(1));
    let creates = api
        .seen
        .iter()
        .filter(|s| s.starts_with("POST /apis/batch"))
        .count();
    assert_eq!(creates, 1, "one create only: {:?}", api.seen);
}

#[tokio::test]
async fn a_listed_job_of_the_pending_run_is_not_created_again() {
    // crashed after the create, before the flip: the Job is there
    let running = job(1, json!([]), json!({}));
    let (result, api) = scenario(pending("once"), Cache::Monitored, |mut api| async move {
        api.expect_get_qjob().await;
        api.expect_list_jobs(vec![running]).await;
        api.expect_spec_patch(|body| {
            assert_eq!(body["spec"]["trigger"]["strategy"], "done");
        })
        .await;
        api.expect_event("Triggered").await;
        let skipped = api.expect_event("AlreadyRunning").await;
        assert_eq!(skipped["related"]["name"], job_of(1));
        api.expect_status_patch(is_record_of(1, "once")).await;
        after_the_run(&mut api, 1).await;
        api
    })
    .await;
    result.expect("reconciled");
    assert_eq!(api.qjob["spec"]["trigger"]["strategy"], "done");
    assert!(
        !api.seen.iter().any(|s| s.starts_with("POST /apis/batch")),
        "no create: {:?}",
        api.seen
    );
}

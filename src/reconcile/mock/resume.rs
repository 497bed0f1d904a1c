//! Scenarios of a run interrupted between its writes (test only), the crash paths of
//! [`crate::reconcile::state`]: the Job of run `createdRun + 1` existing marks a pending run,
//! which is resumed with its number and never makes a second Job; the pending mark of earlier
//! versions (`requestedRun > createdRun`) is still honoured. Mirrors the crash tests of
//! `tests/reconcile_triggers.rs` at the level of the apiserver requests.

use serde_json::json;

use super::fixtures::scenario;
use super::objects::{Cache, job, job_of, qjob, with_status};
use super::triggers::{after_the_run, consume, is_record_of};

#[tokio::test]
async fn a_crash_between_the_create_and_the_bookkeeping_resumes_the_same_run() {
    // the Job of run 1 was created, then the operator stopped: the trigger is still `now`
    let running = job(1, json!([]), json!({}));
    let (result, api) = scenario(
        qjob("now"),
        Cache::Monitored,
        vec![running],
        |mut api| async move {
            // no create: the Job is there
            consume(&mut api, "manual").await;
            api.expect_status_patch(is_record_of(1, "now")).await;
            api.expect_event("Triggered").await;
            let skipped = api.expect_event("AlreadyRunning").await;
            assert_eq!(skipped["related"]["name"], job_of(1));
            after_the_run(&api, 1);
            api
        },
    )
    .await;
    result.expect("reconciled");
    assert_eq!(api.qjob["spec"]["trigger"]["strategy"], "manual");
    assert_eq!(api.qjob["status"]["createdRun"], 1);
    assert!(
        !api.seen.iter().any(|s| s.starts_with("POST /apis/batch")),
        "no second Job: {:?}",
        api.seen
    );
}

#[tokio::test]
async fn a_crash_after_consuming_the_trigger_records_the_run_as_resumed() {
    // created, trigger consumed (`once → done`), not recorded
    let running = job(1, json!([]), json!({}));
    let (result, api) = scenario(
        qjob("done"),
        Cache::Monitored,
        vec![running],
        |mut api| async move {
            api.expect_status_patch(is_record_of(1, "resumed")).await;
            let resumed = api.expect_event("Triggered").await;
            let note = resumed["note"].as_str().unwrap_or_default();
            assert!(note.contains("resumed"), "{note}");
            api.expect_event("AlreadyRunning").await;
            after_the_run(&api, 1);
            api
        },
    )
    .await;
    result.expect("reconciled");
    assert_eq!(api.qjob["spec"]["trigger"]["strategy"], "done");
    assert_eq!(api.qjob["status"]["lastJobName"], job_of(1));
}

#[tokio::test]
async fn a_job_created_meanwhile_is_adopted_when_its_create_answers_already_exists() {
    // the list does not show the Job yet (created meanwhile): the create answers AlreadyExists
    let (result, api) = scenario(
        qjob("now"),
        Cache::Monitored,
        vec![],
        |mut api| async move {
            api.expect_job_create(1, true).await;
            consume(&mut api, "manual").await;
            api.expect_status_patch(is_record_of(1, "now")).await;
            api.expect_event("Triggered").await;
            api.expect_event("AlreadyRunning").await;
            after_the_run(&api, 1);
            api
        },
    )
    .await;
    result.expect("reconciled");
    let creates = api
        .seen
        .iter()
        .filter(|s| s.starts_with("POST /apis/batch"))
        .count();
    assert_eq!(creates, 1, "one create only: {:?}", api.seen);
}

#[tokio::test]
async fn a_run_allocated_by_an_earlier_version_is_resumed_with_its_number() {
    // earlier versions allocated `requestedRun` before the create; crashed after the flip
    let pending = with_status(qjob("manual"), json!({"requestedRun": 1, "createdRun": 0}));
    let (result, api) = scenario(pending, Cache::Monitored, vec![], |mut api| async move {
        api.expect_job_create(1, false).await;
        api.expect_status_patch(is_record_of(1, "resumed")).await;
        api.expect_event("Triggered").await;
        api.expect_event("CreateJob").await;
        after_the_run(&api, 1);
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

//! Scenarios of a trigger (test only): `now` and `once` runs (the Job first), a cache older than
//! the last write, a conflict on consuming the trigger,
//! and namespaces the operator does not monitor. Mirrors `tests/reconcile_triggers.rs` at the
//! level of the apiserver requests.

use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::fixtures::{ApiServer, scenario, scenario_having_seen};
use super::objects::{Cache, NAME, job_of, qjob, qjob_path, with_status};
use crate::reconcile::error::Error;
use crate::reconcile::reconciler::RESYNC;

/// The end of every reconcile that recorded run `run`: no request (no kept-pods list: no Job
/// of the QuarksJob succeeded yet, so no pod can have been kept); the record already said
/// `Reconciled`, so no closing status patch.
pub(super) fn after_the_run(api: &ApiServer, run: i64) {
    let reconciled = api.qjob["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Reconciled").cloned())
        .expect("Reconciled, written by the record");
    assert_eq!(reconciled["status"], "True");
    assert_eq!(api.qjob["status"]["runs"][0]["run"], run);
}

/// The record of run `run` (step 4): `createdRun`, `lastJobName`, the run's record; no
/// precondition (it writes only what the run decided).
pub(super) fn is_record_of(run: i64, trigger: &str) -> impl FnOnce(&Value) {
    move |body| {
        assert!(
            body.get("metadata").is_none(),
            "the record is not guarded: {body:#}"
        );
        let st = &body["status"];
        assert_eq!(
            (&st["requestedRun"], &st["createdRun"]),
            (&json!(run), &json!(run))
        );
        assert_eq!(st["lastJobName"], job_of(run));
        assert_eq!(st["runs"][0]["run"], run);
        assert_eq!(st["runs"][0]["trigger"], trigger);
        assert_eq!(st["runs"][0]["jobName"], job_of(run));
        assert_eq!(st["runs"][0]["result"], "Running");
    }
}

/// Step 2 of a run: the trigger consumed (`to`), guarded by the version it was decided on.
pub(super) async fn consume(api: &mut ApiServer, to: &str) {
    let rv = api.qjob["metadata"]["resourceVersion"].clone();
    api.expect_spec_patch(|body| {
        assert_eq!(
            body,
            &json!({"metadata": {"resourceVersion": rv}, "spec": {"trigger": {"strategy": to}}})
        );
    })
    .await;
}

#[tokio::test]
async fn now_creates_the_job_first_then_consumes_the_trigger_and_records_it() {
    let (result, api) = scenario(
        qjob("now"),
        Cache::Monitored,
        vec![],
        |mut api| async move {
            // the cached object stands in for a fresh read: no GET; the Jobs are the Job index's:
            // no list
            api.expect_job_create(1, false).await;
            consume(&mut api, "manual").await;
            api.expect_status_patch(is_record_of(1, "now")).await;
            // the story after the writes: events never delay the Job
            let triggered = api.expect_event("Triggered").await;
            assert_eq!(
                triggered["related"]["name"],
                job_of(1),
                "the event names the run's Job"
            );
            api.expect_event("CreateJob").await;
            after_the_run(&api, 1);
            api
        },
    )
    .await;
    assert_eq!(result.expect("reconciled"), Action::requeue(RESYNC));
    assert_eq!(api.qjob["spec"]["trigger"]["strategy"], "manual");
    assert_eq!(api.qjob["status"]["createdRun"], 1);
}

#[tokio::test]
async fn once_runs_the_next_run_and_becomes_done() {
    let done_before = with_status(
        qjob("once"),
        json!({"requestedRun": 3, "createdRun": 3, "lastJobName": job_of(3)}),
    );
    let (result, api) = scenario(
        done_before,
        Cache::Monitored,
        vec![],
        |mut api| async move {
            api.expect_job_create(4, false).await;
            consume(&mut api, "done").await;
            api.expect_status_patch(is_record_of(4, "once")).await;
            api.expect_event("Triggered").await;
            api.expect_event("CreateJob").await;
            after_the_run(&api, 4);
            api
        },
    )
    .await;
    result.expect("reconciled");
    assert_eq!(api.qjob["spec"]["trigger"]["strategy"], "done");
    assert_eq!(api.qjob["status"]["createdRun"], 4);
}

#[tokio::test]
async fn a_cache_older_than_the_last_write_is_read_fresh() {
    // this process last wrote version 7; the cache still shows 1: a GET first
    let (result, api) = scenario_having_seen(
        qjob("now"),
        Cache::Monitored,
        Some("7"),
        vec![],
        |mut api| async move {
            api.expect_get_qjob().await;
            api.expect_job_create(1, false).await;
            consume(&mut api, "manual").await;
            api.expect_status_patch(is_record_of(1, "now")).await;
            api.expect_event("Triggered").await;
            api.expect_event("CreateJob").await;
            after_the_run(&api, 1);
            api
        },
    )
    .await;
    result.expect("reconciled");
    assert_eq!(
        api.seen[0],
        format!("GET {}", qjob_path()),
        "{:?}",
        api.seen
    );
}

#[tokio::test]
async fn a_conflict_on_consuming_the_trigger_leaves_the_job_and_keeps_the_trigger() {
    let (result, api) = scenario(
        qjob("now"),
        Cache::Monitored,
        vec![],
        |mut api| async move {
            api.expect_job_create(1, false).await;
            api.expect_spec_patch_conflict(|body| {
                assert_eq!(body["metadata"]["resourceVersion"], "1");
                assert_eq!(body["spec"]["trigger"]["strategy"], "manual");
            })
            .await;
            // nothing else: no record, no failure report (a conflict is retried); the Job of run
            // 1 is now the mark of the pending run (`resume.rs`)
            api
        },
    )
    .await;
    let err = result.expect_err("a conflict fails the reconcile");
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(
        api.qjob["spec"]["trigger"]["strategy"], "now",
        "the trigger is kept"
    );
    assert_eq!(api.qjob["status"], Value::Null, "nothing recorded");
    assert_eq!(
        api.seen.len(),
        2,
        "the create and the patch: {:?}",
        api.seen
    );
}

#[tokio::test]
async fn a_namespace_that_is_not_monitored_gets_no_request() {
    for cache in [Cache::OtherId, Cache::Unknown] {
        let (result, api) = scenario(qjob("now"), cache, vec![], |api| async move { api }).await;
        assert_eq!(result.expect("ignored"), Action::await_change());
        assert!(api.seen.is_empty(), "{:?}", api.seen);
        assert_eq!(api.qjob["metadata"]["name"], NAME);
    }
}

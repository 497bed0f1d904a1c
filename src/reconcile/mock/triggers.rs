//! Scenarios of a trigger (test only): `now` and `once` runs, a conflict on the allocating patch,
//! and namespaces the operator does not monitor. Mirrors `tests/reconcile_triggers.rs` at the
//! level of the apiserver requests.

use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::fixtures::{ApiServer, scenario};
use super::objects::{Cache, NAME, job_of, qjob, qjob_selector, with_status};
use crate::reconcile::error::Error;
use crate::reconcile::reconciler::RESYNC;

/// The end of every reconcile that recorded run `run`: the kept-pods list of the history
/// check, then the status patch with `Reconciled`.
pub(super) async fn after_the_run(api: &mut ApiServer, run: i64) {
    api.expect_list_pods(&qjob_selector(), vec![]).await;
    api.expect_status_patch(|body| {
        assert!(body.get("metadata").is_none(), "not guarded: {body:#}");
        let conditions = body["status"]["conditions"].as_array().expect("conditions");
        let reconciled = conditions
            .iter()
            .find(|c| c["type"] == "Reconciled")
            .expect("Reconciled");
        assert_eq!(reconciled["status"], "True");
        assert_eq!(body["status"]["runs"][0]["run"], run);
    })
    .await;
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

/// Steps 1 and 2 of a run: the guarded allocation of run `run`, the guarded strategy flip.
async fn allocate_and_flip(api: &mut ApiServer, run: i64, to: &str) {
    let rv = api.qjob["metadata"]["resourceVersion"].clone();
    api.expect_status_patch(|body| {
        assert_eq!(
            body,
            &json!({"metadata": {"resourceVersion": rv}, "status": {"requestedRun": run}})
        );
    })
    .await;
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
async fn now_allocates_flips_to_manual_creates_and_records_one_job() {
    let (result, api) = scenario(qjob("now"), Cache::Monitored, |mut api| async move {
        api.expect_get_qjob().await;
        api.expect_list_jobs(vec![]).await;
        allocate_and_flip(&mut api, 1, "manual").await;
        let triggered = api.expect_event("Triggered").await;
        assert_eq!(
            triggered["related"]["name"],
            job_of(1),
            "the event names the run's Job"
        );
        api.expect_job_create(1, false).await;
        api.expect_event("CreateJob").await;
        api.expect_status_patch(is_record_of(1, "now")).await;
        after_the_run(&mut api, 1).await;
        api
    })
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
    let (result, api) = scenario(done_before, Cache::Monitored, |mut api| async move {
        api.expect_get_qjob().await;
        api.expect_list_jobs(vec![]).await;
        allocate_and_flip(&mut api, 4, "done").await;
        api.expect_event("Triggered").await;
        api.expect_job_create(4, false).await;
        api.expect_event("CreateJob").await;
        api.expect_status_patch(is_record_of(4, "once")).await;
        after_the_run(&mut api, 4).await;
        api
    })
    .await;
    result.expect("reconciled");
    assert_eq!(api.qjob["spec"]["trigger"]["strategy"], "done");
    assert_eq!(api.qjob["status"]["createdRun"], 4);
}

#[tokio::test]
async fn a_conflict_on_the_allocation_creates_no_job_and_is_retried() {
    let (result, api) = scenario(qjob("now"), Cache::Monitored, |mut api| async move {
        api.expect_get_qjob().await;
        api.expect_list_jobs(vec![]).await;
        api.expect_status_patch_conflict(|body| {
            assert_eq!(body["metadata"]["resourceVersion"], "1");
            assert_eq!(body["status"]["requestedRun"], 1);
        })
        .await;
        // nothing else: no strategy flip, no Job, no failure report (a conflict is retried)
        api
    })
    .await;
    let err = result.expect_err("a conflict fails the reconcile");
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(
        api.qjob["spec"]["trigger"]["strategy"], "now",
        "the trigger is kept"
    );
    assert_eq!(api.seen.len(), 3);
}

#[tokio::test]
async fn a_namespace_that_is_not_monitored_gets_no_request() {
    for cache in [Cache::OtherId, Cache::Unknown] {
        let (result, api) = scenario(qjob("now"), cache, |api| async move { api }).await;
        assert_eq!(result.expect("ignored"), Action::await_change());
        assert!(api.seen.is_empty(), "{:?}", api.seen);
        assert_eq!(api.qjob["metadata"]["name"], NAME);
    }
}

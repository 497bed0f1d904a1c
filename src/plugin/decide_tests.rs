//! Tests of the plugin's decisions (`super`).

use super::*;
use crate::core::api::QuarksJobSpec;
use serde_json::json;

fn qjob(strategy: Option<&str>, requested: i64, created: i64) -> QuarksJob {
    let mut spec = json!({"template": {}});
    if let Some(s) = strategy {
        spec["trigger"] = json!({"strategy": s});
    }
    let mut q = QuarksJob::new(
        "migrate",
        serde_json::from_value::<QuarksJobSpec>(spec).unwrap(),
    );
    q.metadata.namespace = Some("prod".into());
    q.status = Some(QuarksJobStatus {
        requested_run: requested,
        created_run: created,
        ..Default::default()
    });
    q
}

#[test]
fn only_an_idle_errand_is_run_and_refusals_say_how() {
    assert_eq!(next_run(&qjob(Some("manual"), 3, 3)), Ok(4));
    assert_eq!(next_run(&qjob(Some("manual"), 0, 0)), Ok(1));
    let done = next_run(&qjob(Some("done"), 1, 1)).unwrap_err();
    assert!(done.contains("auto-errand that ran"), "{done}");
    assert!(done.contains("kubectl replace --force"), "{done}");
    assert!(
        done.contains(r#"{"spec":{"trigger":{"strategy":"manual"}}}"#),
        "{done}"
    );
    let once = next_run(&qjob(Some("once"), 0, 0)).unwrap_err();
    assert!(once.contains("runs by itself, once"), "{once}");
    assert!(
        once.contains("kubectl qjob status migrate -n prod"),
        "{once}"
    );
    let now = next_run(&qjob(Some("now"), 0, 0)).unwrap_err();
    assert!(now.contains("already triggered"), "{now}");
    let pending = next_run(&qjob(Some("manual"), 5, 4)).unwrap_err();
    assert!(
        pending.starts_with("run 5 of QuarksJob 'prod/migrate' is being started"),
        "{pending}"
    );
    let none = next_run(&qjob(None, 0, 0)).unwrap_err();
    assert!(none.contains("has no trigger"), "{none}");
}

#[test]
fn the_trigger_is_guarded() {
    assert_eq!(
        trigger_patch("42"),
        json!({"metadata": {"resourceVersion": "42"}, "spec": {"trigger": {"strategy": "now"}}})
    );
}

fn record(run: i64, result: &str) -> RunRecord {
    RunRecord {
        run,
        job_name: format!("j{run}"),
        result: result.into(),
        ..Default::default()
    }
}

#[test]
fn a_run_is_finished_by_its_record_or_else_by_the_conditions() {
    let mut st = QuarksJobStatus {
        runs: vec![record(2, "Running"), record(1, "Failed")],
        ..Default::default()
    };
    assert_eq!(finished(&st, 2, "j2"), None);
    assert_eq!(finished(&st, 1, "j1").unwrap().result, "Failed");
    st.runs[0].result = "Succeeded".into();
    let r = finished(&st, 2, "j2").unwrap();
    assert_eq!(exit_code(&r), EXIT_OK);
    assert_eq!(exit_code(&record(1, "Failed")), EXIT_FAILED);
    assert_eq!(exit_code(&record(1, "Unknown")), EXIT_FAILED);

    // no history kept: the conditions of the last Job
    let mut st = QuarksJobStatus {
        last_job_name: Some("j3".into()),
        ..Default::default()
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    assert_eq!(finished(&st, 3, "j3"), None, "nothing known yet");
    status::set_job_phase(
        &mut st.conditions,
        "j3",
        &crate::reconcile::job::JobPhase::Running,
        None,
        now,
    );
    assert_eq!(finished(&st, 3, "j3"), None, "running");
    let failed = crate::reconcile::job::JobPhase::Failed {
        reason: "BackoffLimitExceeded".into(),
        message: String::new(),
    };
    status::set_job_phase(&mut st.conditions, "j3", &failed, None, now);
    let r = finished(&st, 3, "j3").unwrap();
    assert_eq!(
        (r.result.as_str(), r.reason.as_deref()),
        ("Failed", Some("BackoffLimitExceeded"))
    );
    assert_eq!(
        finished(&st, 4, "j4"),
        None,
        "another Job's conditions say nothing"
    );
}

#[test]
fn outputs_show_the_asked_or_the_newest_finished_run() {
    let runs_ = [
        record(3, "Running"),
        record(2, "Succeeded"),
        record(1, "Failed"),
    ];
    assert_eq!(pick_run(&runs_, None).unwrap().run, 2);
    assert_eq!(pick_run(&runs_, Some(1)).unwrap().run, 1);
    assert_eq!(
        pick_run(&runs_, Some(9)).unwrap_err(),
        "run 9 is not in the history (it keeps runs 3, 2, 1)"
    );
    assert!(pick_run(&runs_[..1], None).is_err());
}

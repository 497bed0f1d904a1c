//! Tests of the run history (`super`).

use super::*;
use crate::core::api::Strategy;
use crate::core::podrefs::RefKind;
use serde_json::json;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn rec(run: i64) -> RunRecord {
    started(
        run,
        &format!("job-{run}"),
        &Start {
            trigger: "now".into(),
            ..Default::default()
        },
        t(run),
    )
}

#[test]
fn records_are_newest_first_and_trimmed() {
    let mut runs = Vec::new();
    for n in 1..=7 {
        record(&mut runs, rec(n), 5);
    }
    let numbers: Vec<i64> = runs.iter().map(|r| r.run).collect();
    assert_eq!(numbers, [7, 6, 5, 4, 3]);
    // a resumed run is written again: replaced, not doubled
    record(&mut runs, rec(7), 5);
    assert_eq!(runs.iter().filter(|r| r.run == 7).count(), 1);
    assert_eq!(runs.len(), 5);
    // a smaller history trims the oldest
    trim(&mut runs, 2);
    assert_eq!(runs.iter().map(|r| r.run).collect::<Vec<_>>(), [7, 6]);
    // 0 keeps none, and the cap holds whatever is asked
    let mut many: Vec<RunRecord> = (1..=30).map(rec).collect();
    trim(&mut many, 1000);
    assert_eq!(many.len(), MAX_RUNS);
    assert_eq!(many[0].run, 30);
    trim(&mut many, 0);
    assert!(many.is_empty());
}

#[test]
fn triggers_are_named() {
    assert_eq!(
        trigger_name(RunReason::Trigger(Strategy::Now), Some(Strategy::Now)),
        "now"
    );
    assert_eq!(
        trigger_name(RunReason::Trigger(Strategy::Once), Some(Strategy::Once)),
        "once"
    );
    assert_eq!(
        trigger_name(RunReason::ConfigChange, Some(Strategy::Done)),
        "configChange"
    );
    assert_eq!(trigger_name(RunReason::Resume, Some(Strategy::Now)), "now");
    assert_eq!(
        trigger_name(RunReason::Resume, Some(Strategy::Manual)),
        "resumed"
    );
}

#[test]
fn the_manager_of_the_strategy_is_who_triggered() {
    let entries: Vec<ManagedFieldsEntry> = serde_json::from_value(json!([
        {"manager": "kubectl-client-side-apply", "operation": "Update", "time": "2026-01-01T00:00:00Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:trigger": {"f:strategy": {}}, "f:template": {}}}},
        {"manager": "kubectl-qjob", "operation": "Update", "time": "2026-01-01T00:01:00Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:trigger": {"f:strategy": {}}}}},
        {"manager": "quarks-job", "operation": "Update", "time": "2026-01-01T00:02:00Z",
         "subresource": "status", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}},
        {"manager": "someone", "operation": "Update", "time": "2026-01-01T00:03:00Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {}}}}
    ]))
    .unwrap();
    assert_eq!(strategy_manager(&entries).as_deref(), Some("kubectl-qjob"));
    assert_eq!(strategy_manager(&entries[2..]), None);
}

fn cm(name: &str, value: &str) -> Resolved {
    Resolved {
        kind: RefKind::ConfigMap,
        reference: name.into(),
        resolved: name.into(),
        optional: false,
        data: Some([("k".to_string(), value.as_bytes().to_vec())].into()),
    }
}

#[test]
fn the_changed_reference_is_named() {
    let before = reference_digests(&[cm("a", "1"), cm("b", "1")]);
    assert_eq!(before.len(), 2);
    assert_eq!(before["ConfigMap/a"].len(), 12);
    let after = reference_digests(&[cm("a", "1"), cm("b", "2"), cm("c", "1")]);
    assert_eq!(
        changed_references(&before, &after),
        ["ConfigMap/b", "ConfigMap/c"]
    );
    assert!(changed_references(&before, &before).is_empty());
    let removed = reference_digests(&[cm("a", "1")]);
    assert_eq!(changed_references(&before, &removed), ["ConfigMap/b"]);
}

fn job(conditions: serde_json::Value, completion: Option<&str>) -> Job {
    serde_json::from_value(json!({"metadata": {"name": "job-1"},
        "status": {"conditions": conditions, "completionTime": completion}}))
    .unwrap()
}

fn pod(name: &str, created: &str, statuses: serde_json::Value) -> Pod {
    serde_json::from_value(
        json!({"metadata": {"name": name, "creationTimestamp": created},
        "status": {"containerStatuses": statuses}}),
    )
    .unwrap()
}

#[test]
fn a_failure_names_the_reason_the_newest_pod_and_the_failing_container() {
    let failed = job(
        json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "lastTransitionTime": "2026-01-01T00:05:00Z"}]),
        None,
    );
    let pods = [
        pod(
            "job-1-old",
            "2026-01-01T00:00:00Z",
            json!([{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 1}}}]),
        ),
        pod(
            "job-1-new",
            "2026-01-01T00:01:00Z",
            json!([
                {"name": "output-persist", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0}}},
                {"name": "migrate", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 3}}}]),
        ),
    ];
    let o = outcome(&failed, &pods).unwrap();
    assert_eq!(o.result, FAILED);
    assert_eq!(o.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(o.pod.as_deref(), Some("job-1-new"));
    assert_eq!(o.failed_container, Some(("migrate".into(), 3)));
    assert_eq!(o.finished.unwrap().to_string(), "2026-01-01T00:05:00Z");

    let ok = job(
        json!([{"type": "Complete", "status": "True"}]),
        Some("2026-01-01T00:02:00Z"),
    );
    let o = outcome(&ok, &pods[..1]).unwrap();
    assert_eq!((o.result, o.reason.clone()), (SUCCEEDED, None));
    assert_eq!(o.failed_container, None, "a success names no container");
    assert_eq!(o.finished.unwrap().to_string(), "2026-01-01T00:02:00Z");
    assert_eq!(outcome(&job(json!([]), None), &pods), None, "running");
}

fn secret(name: &str, qjob: &str, version: Option<u32>, written: &str) -> ObjectMeta {
    let mut labels = json!({LABEL_QJOB_NAME: qjob});
    if let Some(v) = version {
        labels[LABEL_SECRET_VERSION] = json!(v.to_string());
    }
    serde_json::from_value(json!({"name": name, "labels": labels,
        "creationTimestamp": "2025-01-01T00:00:00Z",
        "managedFields": [{"manager": "quarks-job", "operation": "Update", "time": written}]}))
    .unwrap()
}

#[test]
fn outputs_are_the_secrets_of_the_quarksjob_written_during_the_run() {
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    let secrets = [
        secret("links-v3", "qj", Some(3), "2026-01-01T00:01:00Z"),
        secret("links-v2", "qj", Some(2), "2026-01-01T00:00:00Z"),
        secret("plain", "qj", None, "2026-01-01T00:02:01Z"),
        secret("other", "another", None, "2026-01-01T00:01:00Z"),
    ];
    let (found, omitted) = outputs(
        &secrets,
        "qj",
        (Some(at("2026-01-01T00:00:30Z")), None),
        at("2026-01-01T00:02:00Z"),
    );
    assert_eq!(
        found,
        [
            RunOutput {
                name: "links-v3".into(),
                version: Some(3)
            },
            RunOutput {
                name: "plain".into(),
                version: None
            },
        ],
        "the earlier version and the other QuarksJob's Secret are not this run's; a second of slack"
    );
    assert_eq!(omitted, 0);
    // the run before ended in the second its last write happened: not this run's
    let (found, _) = outputs(
        &secrets,
        "qj",
        (
            Some(at("2026-01-01T00:01:00Z")),
            Some(at("2026-01-01T00:01:00Z")),
        ),
        at("2026-01-01T00:02:00Z"),
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "plain");
    let mut before = rec(1);
    before.finished = Some(Time(t(5)));
    let runs_ = vec![rec(3), rec(2), before];
    assert_eq!(previous_end(&runs_, "job-3"), Some(t(5)));
    assert_eq!(previous_end(&runs_, "job-1"), None);

    let many: Vec<ObjectMeta> = (0..25)
        .map(|i| secret(&format!("s{i:02}"), "qj", None, "2026-01-01T00:01:00Z"))
        .collect();
    let (found, omitted) = outputs(&many, "qj", (None, None), at("2026-01-01T00:02:00Z"));
    assert_eq!((found.len(), omitted), (MAX_OUTPUTS, 5));
}

#[test]
fn an_outcome_is_merged_once_and_lost_jobs_are_unknown() {
    let mut runs = vec![rec(2), rec(1)];
    let o = Outcome {
        result: FAILED,
        reason: Some("BackoffLimitExceeded".into()),
        pod: Some("job-1-x".into()),
        failed_container: Some(("c".into(), 2)),
        finished: Some(t(10)),
    };
    let outs = (
        vec![RunOutput {
            name: "s".into(),
            version: None,
        }],
        0,
    );
    assert!(awaits_outcome(&runs, "job-1"));
    assert!(merge_outcome(
        &mut runs,
        "job-1",
        o.clone(),
        outs.clone(),
        t(11)
    ));
    assert!(!awaits_outcome(&runs, "job-1"));
    assert!(!merge_outcome(&mut runs, "job-1", o, outs, t(12)), "once");
    let r = &runs[1];
    assert_eq!(
        (r.result.as_str(), r.exit_code, r.container.as_deref()),
        (FAILED, Some(2), Some("c"))
    );
    assert_eq!(r.finished, Some(Time(t(10))));
    assert_eq!(r.outputs.len(), 1);

    assert!(mark_lost(&mut runs, |j| j == "job-1", t(20)));
    assert_eq!(runs[0].result, UNKNOWN);
    assert_eq!(runs[0].reason.as_deref(), Some("JobNotFound"));
    assert!(
        !mark_lost(&mut runs, |_| false, t(21)),
        "finished runs stay"
    );
}

#[test]
fn a_full_history_stays_small() {
    let long = "x".repeat(400);
    let mut runs = Vec::new();
    for n in 1..=100 {
        let mut r = rec(n);
        r.job_name = long.clone();
        r.triggered_by = Some(long.clone());
        let outs: Vec<ObjectMeta> = (0..100)
            .map(|i| {
                secret(
                    &format!("{i:03}{long}"),
                    "qj",
                    Some(i),
                    "2026-01-01T00:01:00Z",
                )
            })
            .collect();
        let (o, omitted) = outputs(&outs, "qj", (None, None), Timestamp::now());
        r.outputs = o;
        r.outputs_omitted = omitted;
        r.reason = Some(cut(&long));
        record(&mut runs, r, usize::MAX);
    }
    let size = serde_json::to_vec(&runs).unwrap().len();
    assert!(size < 200 * 1024, "{size} bytes");
    assert_eq!(runs.len(), MAX_RUNS);
}

#[test]
fn a_start_says_what_changed_only_when_it_knows() {
    let managed: Vec<ManagedFieldsEntry> = serde_json::from_value(json!([
        {"manager": "kubectl-patch", "operation": "Update", "time": "2026-01-01T00:00:00Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:trigger": {"f:strategy": {}}}}}]))
    .unwrap();
    let old = reference_digests(&[cm("a", "1")]);
    let now = [cm("a", "2")];
    let s = start_of(
        RunReason::ConfigChange,
        Some(Strategy::Done),
        &managed,
        &old,
        Some(&now),
        true,
    );
    assert_eq!(s.trigger, "configChange");
    assert_eq!(
        s.triggered_by, None,
        "a config change is nobody's strategy edit"
    );
    assert_eq!(s.changed, ["ConfigMap/a"]);
    assert_eq!(s.reference_digests, Some(reference_digests(&now)));
    // no digests recorded yet (first run after an upgrade): nothing is claimed
    let s = start_of(
        RunReason::ConfigChange,
        Some(Strategy::Done),
        &managed,
        &BTreeMap::new(),
        Some(&now),
        true,
    );
    assert!(s.changed.is_empty());
    // an errand: who set `now`; no digests kept for QuarksJobs that do not track changes
    let s = start_of(
        RunReason::Trigger(Strategy::Now),
        Some(Strategy::Now),
        &managed,
        &BTreeMap::new(),
        Some(&now),
        false,
    );
    assert_eq!(
        (s.trigger.as_str(), s.triggered_by.as_deref()),
        ("now", Some("kubectl-patch"))
    );
    assert_eq!(s.reference_digests, None);
}

#[test]
fn the_exit_note_names_the_container() {
    let mut r = rec(1);
    assert_eq!(exit_note(std::slice::from_ref(&r), "job-1"), "");
    r.container = Some("migrate".into());
    r.exit_code = Some(3);
    assert_eq!(
        exit_note(&[r], "job-1"),
        ", container 'migrate' exited with 3"
    );
}

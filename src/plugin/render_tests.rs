//! Tests of what the plugin prints (`super`).

use super::*;
use crate::core::api::{QuarksJobSpec, QuarksJobStatus, RunOutput};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn failed() -> RunRecord {
    RunRecord {
        run: 3,
        trigger: "now".into(),
        triggered_by: Some("kubectl-qjob".into()),
        job_name: "migrate-0123456789abcdef".into(),
        pod_name: Some("migrate-0123456789abcdef-x7k2p".into()),
        started: Some(Time(t(0))),
        finished: Some(Time(t(12))),
        result: "Failed".into(),
        reason: Some("BackoffLimitExceeded".into()),
        container: Some("migrate".into()),
        exit_code: Some(3),
        ..Default::default()
    }
}

fn succeeded() -> RunRecord {
    RunRecord {
        run: 4,
        result: "Succeeded".into(),
        reason: None,
        container: None,
        exit_code: None,
        finished: Some(Time(t(200))),
        started: Some(Time(t(10))),
        outputs: vec![
            RunOutput {
                name: "db-creds-v4".into(),
                version: Some(4),
            },
            RunOutput {
                name: "report".into(),
                version: None,
            },
        ],
        ..failed()
    }
}

#[test]
fn ages_read_like_kubectls() {
    assert_eq!(age(-5), "0s");
    assert_eq!(age(45), "45s");
    assert_eq!(age(192), "3m12s");
    assert_eq!(age(1500), "25m");
    assert_eq!(age(5 * 3600), "5h");
    assert_eq!(age(3 * 86_400), "3d");
}

#[test]
fn the_summary_names_run_job_pod_result_and_secrets() {
    assert_eq!(
        summary("prod", "migrate", &failed(), t(99)),
        "run 3 of quarksjob prod/migrate: Failed (BackoffLimitExceeded, container 'migrate' exited with 3) after 12s\n\
         \x20 trigger: now by kubectl-qjob\n\
         \x20 job:     migrate-0123456789abcdef\n\
         \x20 pod:     migrate-0123456789abcdef-x7k2p\n\
         \x20 secrets: none written\n"
    );
    let s = summary("prod", "migrate", &succeeded(), t(999));
    assert!(
        s.starts_with("run 4 of quarksjob prod/migrate: Succeeded after 3m10s\n"),
        "{s}"
    );
    assert!(
        s.ends_with("  secrets: db-creds-v4 (version 4)\n           report\n"),
        "{s}"
    );
}

#[test]
fn status_is_a_table_newest_first() {
    let mut running = succeeded();
    running.run = 5;
    running.result = "Running".into();
    running.finished = None;
    running.outputs.clear();
    running.trigger = "configChange".into();
    running.triggered_by = None;
    running.changed = vec!["ConfigMap/app".into()];
    let text = runs_table(&[running, succeeded(), failed()], t(300));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].starts_with("RUN   TRIGGER"), "{text}");
    let cols: Vec<&str> = lines[1]
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cols,
        [
            "5",
            "configChange: ConfigMap/app",
            "Running",
            "4m50s",
            "4m50s",
            "migrate-0123456789abcdef",
            "migrate-0123456789abcdef-x7k2p",
            "-"
        ]
    );
    assert!(
        lines[2].ends_with("db-creds-v4 (version 4), report"),
        "{text}"
    );
    assert!(lines[3].contains("Failed (BackoffLimitExceeded, container 'migrate' exited with 3)"));
}

#[test]
fn outputs_list_names_versions_and_a_hint_never_data() {
    let text = outputs_table("prod", &succeeded());
    assert_eq!(
        text,
        "SECRET        VERSION\ndb-creds-v4   4\nreport        -\n\nrun 4: look at them with\n  kubectl get secret db-creds-v4 report -n prod -o yaml\n"
    );
    assert_eq!(outputs_table("prod", &failed()), "run 3 wrote no Secrets\n");
}

#[test]
fn list_shows_strategy_last_result_and_when() {
    let mut q = QuarksJob::new(
        "migrate",
        serde_json::from_value::<QuarksJobSpec>(
            json!({"trigger": {"strategy": "manual"}, "template": {}}),
        )
        .unwrap(),
    );
    q.metadata.namespace = Some("prod".into());
    q.status = Some(QuarksJobStatus {
        created_run: 4,
        runs: vec![succeeded()],
        ..Default::default()
    });
    let fresh = QuarksJob::new("idle", QuarksJobSpec::default());
    let read = |q: &QuarksJob| Lenient::Read(std::sync::Arc::new(q.clone()));
    // an env value of the wrong type in the template: listed, never quoted
    let broken = Lenient::<QuarksJob>::from_value(&json!({
        "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
        "metadata": {"name": "broken", "namespace": "prod"},
        "spec": {"trigger": {"strategy": 7}, "template": {}}
    }));
    let text = list_table(&[read(&q), broken.clone(), read(&fresh)], true, t(260));
    assert_eq!(
        text,
        "NAMESPACE   NAME      STRATEGY   LAST RUN     FINISHED   RUNS\n\
         prod        migrate   manual     Succeeded    60s        4\n\
         prod        broken    -          unreadable   -          -\n\
         \x20           idle      -          -            -          0\n"
    );
    assert!(list_table(&[read(&q)], false, t(260)).starts_with("NAME      STRATEGY"));
    let notes = unreadable_notes(&[read(&q), broken]);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0]
            .starts_with("warning: quarksjob prod/broken cannot be read: spec.trigger.strategy"),
        "{notes:?}"
    );
    assert!(
        !notes[0].contains('7'),
        "the value found is never quoted: {notes:?}"
    );
}

#[test]
fn log_lines_are_prefixed_like_kubectl_logs_prefix() {
    assert_eq!(log_line("p", "c", "hello"), "[pod/p/c] hello");
}

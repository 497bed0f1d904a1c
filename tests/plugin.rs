//! `kubectl qjob` as a process against the real control plane, with an in-process operator and
//! the kubelet stand-in finishing pods: `run --wait` exit codes (0, 1, 124, 2), refusals, the
//! summary, `status`, `outputs`, `list -A` through the `kubectl-qjob` symlink, and the run
//! history and events the operator writes; one unreadable QuarksJob is listed, never quoted.
//! Logs need a real kubelet: the `plugin_run_logs` case of `tests/e2e.rs` (`make e2e-cluster`).

mod reconcile_helpers;
mod support;

use std::path::Path;
use std::process::Output;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use quarks_job::core::api::labels::LABEL_QJOB_NAME;
use reconcile_helpers::{World, qjob};
use serde_json::json;
use tokio::process::Command;

fn plugin_cmd(program: &Path, w: &World, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    if program.ends_with("quarks-job") {
        cmd.arg("qjob");
    }
    cmd.arg("--kubeconfig")
        .arg(&support::shared().kubeconfig)
        .args(["-n", &w.ns])
        .args(args)
        .env_remove("KUBECONFIG")
        .kill_on_drop(true);
    cmd
}

/// `quarks-job qjob ARGS` against the world's namespace.
fn qjob_cmd(w: &World, args: &[&str]) -> Command {
    plugin_cmd(Path::new(env!("CARGO_BIN_EXE_quarks-job")), w, args)
}

async fn output(mut cmd: Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().await.expect("run the plugin");
    (
        status.code().expect("exit code"),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

#[tokio::test]
async fn run_wait_exits_0_on_success_and_1_on_failure_with_a_summary() {
    let w = World::new("plugin-run").await;
    let _op = w.operator();
    w.create(qjob("errand", "manual", json!({}))).await;
    w.settled("errand").await;

    // run 1 succeeds, writing a Secret the way persist-output labels it
    let child = qjob_cmd(&w, &["run", "errand", "--wait", "--timeout", "60s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let job = w.wait_jobs("errand", 1).await[0].name_any();
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), &w.ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "errand-out-v1", "labels": {LABEL_QJOB_NAME: "errand",
            "quarks.cloudfoundry.org/secret-version": "1"}},
        "stringData": {"k": "secret-value"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    w.finish_job(&job, 0).await;
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    eprintln!("{stderr}{stdout}");
    let ns = &w.ns;
    assert!(
        stdout.starts_with(&format!("run 1 of quarksjob {ns}/errand: Succeeded after ")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("  job:     {job}\n")), "{stdout}");
    assert!(
        stdout.contains("  trigger: now by kubectl-qjob\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  secrets: errand-out-v1 (version 1)\n"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("secret-value") && !stdout.contains("c2VjcmV0"),
        "never data"
    );

    // the history the operator wrote
    let q = w.get("errand").await;
    let runs = q.status.clone().unwrap().runs;
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert_eq!(
        (r.run, r.trigger.as_str(), r.result.as_str()),
        (1, "now", "Succeeded")
    );
    assert_eq!(r.triggered_by.as_deref(), Some("kubectl-qjob"));
    assert_eq!(r.job_name, job);
    assert!(r.pod_name.as_deref().is_some_and(|p| p.starts_with(&job)));
    assert!(r.started.is_some() && r.finished.is_some());

    // run 2 fails: exit 1, the reason and the container's exit code
    let child = qjob_cmd(&w, &["run", "errand", "--wait", "--timeout", "60s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let job2 = support::eventually_some(support::WAIT, "the Job of run 2", || async {
        w.jobs_of("errand")
            .await
            .into_iter()
            .map(|j| j.name_any())
            .find(|j| j != &job)
    })
    .await;
    w.finish_job(&job2, 3).await;
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    eprintln!("{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "run 2 of quarksjob {ns}/errand: Failed (BackoffLimitExceeded, container 'busybox' exited with 3) after "
        )),
        "{stdout}"
    );

    // status: both runs, newest first; outputs of run 1
    let (code, text, _) = output(qjob_cmd(&w, &["status", "errand"])).await;
    assert_eq!(code, 0);
    eprintln!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("RUN"), "{text}");
    assert!(
        lines[1].starts_with("2 ") && lines[1].contains("Failed"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("1 ") && lines[2].contains("Succeeded"),
        "{text}"
    );
    let (code, text, _) = output(qjob_cmd(&w, &["outputs", "errand", "--run", "1"])).await;
    assert_eq!(code, 0);
    eprintln!("{text}");
    assert!(
        text.starts_with("SECRET          VERSION\nerrand-out-v1   1\n"),
        "{text}"
    );
    assert!(text.contains(&format!("kubectl get secret errand-out-v1 -n {ns} -o yaml")));
    let (code, text, _) = output(qjob_cmd(&w, &["outputs", "errand", "-o", "name"])).await;
    assert_eq!(
        (code, text.as_str()),
        (0, ""),
        "run 2, the newest finished, wrote nothing"
    );

    // each run's CreateJob event names its own Job (no folding into the first run's series)
    let events: Api<Event> = Api::namespaced(w.client.clone(), &w.ns);
    let created: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("CreateJob"))
        .filter_map(|e| e.related.and_then(|r| r.name))
        .collect();
    assert_eq!(created.len(), 2, "{created:?}");
    assert!(
        created.contains(&job) && created.contains(&job2),
        "{created:?}"
    );
    w.cleanup().await;
}

#[tokio::test]
async fn timeouts_usage_errors_and_refusals_have_their_exit_codes() {
    let w = World::new("plugin-codes").await;
    let _op = w.operator();
    w.create(qjob("slow", "manual", json!({}))).await;
    w.create(qjob("auto", "once", json!({}))).await;
    w.settled("slow").await;

    // nobody finishes the pod: 124
    let (code, _, err) = output(qjob_cmd(&w, &["run", "slow", "--wait", "--timeout", "3s"])).await;
    assert_eq!(code, 124, "{err}");
    assert!(
        err.contains("did not finish within 3s; it goes on"),
        "{err}"
    );
    w.wait_jobs("slow", 1).await;
    // usage errors: 2
    let (code, _, err) = output(qjob_cmd(&w, &["run"])).await;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = output(qjob_cmd(&w, &["run", "slow", "--timeout", "soon"])).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("'soon' is not a duration"), "{err}");
    // once/done: refused with how to re-run (2)
    w.wait_qjob("auto", "done", |q| {
        q.strategy() == Some(quarks_job::core::api::Strategy::Done)
    })
    .await;
    let (code, _, err) = output(qjob_cmd(&w, &["run", "auto"])).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("auto-errand that ran (strategy 'done')"),
        "{err}"
    );
    assert!(err.contains("kubectl replace --force"), "{err}");
    // another run while the first still runs is triggered (runs go side by side, as upstream)
    let (code, text, err) = output(qjob_cmd(&w, &["run", "slow"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("triggered: run 2"), "{text}");
    // not found: 1
    let (code, _, err) = output(qjob_cmd(&w, &["run", "missing"])).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("QuarksJob '{}/missing' not found", w.ns)),
        "{err}"
    );
    w.cleanup().await;
}

#[tokio::test]
async fn list_all_namespaces_through_the_kubectl_qjob_symlink() {
    let a = World::new("plugin-list-a").await;
    let b = World::new("plugin-list-b").await;
    a.create(qjob("first", "manual", json!({}))).await;
    b.create(qjob("second", "manual", json!({}))).await;
    // stored before a validating webhook could refuse it: listed, never hiding the others
    let mut broken = qjob("broken", "manual", json!({}));
    broken["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "PORT", "value": 8_080_737_373_i64}]);
    reconcile_helpers::create_raw(&a.client, &a.ns, broken)
        .await
        .expect("no webhook in this world");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("kubectl-qjob");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_quarks-job"), &link).unwrap();

    let (code, text, err) = output(plugin_cmd(&link, &a, &["list", "-A"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(text.starts_with("NAMESPACE"), "{text}");
    let row = |ns: &str, name: &str| {
        text.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() >= 4
                && cols[0] == ns
                && cols[1] == name
                && cols[2] == "manual"
                && cols[3] == "-"
        })
    };
    assert!(row(&a.ns, "first") && row(&b.ns, "second"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [a.ns.as_str(), "broken", "-", "unreadable", "-", "-"]),
        "{text}"
    );
    assert!(
        err.contains(&format!(
            "warning: quarksjob {}/broken cannot be read: spec.template.spec.template.spec.containers[0].env[0].value",
            a.ns
        )) && !err.contains("8080737373")
            && !text.contains("8080737373"),
        "{err}"
    );
    // one that cannot be read is named with where the mistake is, never with the value
    let (code, _, err) = output(plugin_cmd(&link, &a, &["status", "broken"])).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot be read: spec.template") && !err.contains("8080737373"),
        "{err}"
    );
    let (code, text, _) = output(plugin_cmd(&link, &a, &["list"])).await;
    assert_eq!(code, 0);
    assert!(
        text.starts_with("NAME ") && text.contains("first") && !text.contains("second"),
        "{text}"
    );
    // completion scripts come from clap
    let (code, text, _) = output(plugin_cmd(&link, &a, &["completions", "bash"])).await;
    assert_eq!(code, 0);
    assert!(
        text.contains("kubectl__qjob") || text.contains("kubectl-qjob"),
        "{text}"
    );
    a.cleanup().await;
    b.cleanup().await;
}

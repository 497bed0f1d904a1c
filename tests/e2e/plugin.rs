//! `kubectl qjob run --wait --logs` on real pods: the plugin (the operator's binary under its
//! `kubectl-qjob` name) triggers a manual errand and streams its containers' logs from the
//! kubelet, prefixed as `kubectl logs --prefix` does, `output-persist` left out unless
//! `--all-containers`, then prints the run's summary and exits 0. Logs need a real kubelet, so
//! this case lives here rather than in `tests/plugin.rs`.

use std::process::Command;

use quarks_job::core::api::labels::LABEL_QJOB_NAME;

use crate::target::Target;

const ERRAND: &str = r#"apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: talker
spec:
  trigger:
    strategy: manual
  template:
    spec:
      backoffLimit: 2
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: talker
            image: busybox
            command: ["sh", "-c", "echo first line; sleep 3; echo second line"]
"#;

/// `kubectl-qjob ARGS` (through a symlink, as kubectl finds it on PATH) against the target.
fn qjob(target: &Target, ns: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let link = dir.path().join("kubectl-qjob");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_quarks-job"), &link).expect("symlink");
    let out = Command::new(&link)
        .arg("--kubeconfig")
        .arg(&target.kubeconfig)
        .args(["-n", ns])
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl-qjob");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
#[ignore = "real pods: make e2e-cluster (or make e2e-kind)"]
async fn run_logs_streams_the_errands_lines_and_exits_0() {
    let target = Target::get();
    let ns = target.namespace("e2e-plugin");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("talker.yaml");
    std::fs::write(&file, ERRAND).expect("write the errand");
    ns.apply(&file);
    ns.wait("talker observed", || {
        ns.get(
            "quarksjob",
            "talker",
            "{.metadata.generation}/{.status.observedGeneration}",
        )
        .and_then(|g| g.split_once('/').map(|(a, b)| a == b))
            == Some(true)
    })
    .await;

    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let ns = ns.name.clone();
        move || qjob(target, &ns, &["run", "talker", "--logs", "--timeout", "5m"])
    })
    .await
    .expect("the plugin ran");
    println!("kubectl qjob run talker --logs:\n{stdout}{stderr}");
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let pod = ns
        .names("pod", &format!("{LABEL_QJOB_NAME}=talker"))
        .pop()
        .unwrap_or_else(|| panic!("no pod of talker\n{stdout}\n{stderr}"));
    for line in ["first line", "second line"] {
        assert!(
            stdout.contains(&format!("[pod/{pod}/talker] {line}")),
            "{line:?} missing:\n{stdout}\n{stderr}"
        );
    }
    assert!(
        !stdout.contains("/output-persist]"),
        "output-persist is shown only with --all-containers:\n{stdout}"
    );
    assert!(
        stdout.contains("Succeeded") && stdout.contains(&pod),
        "no summary naming the pod:\n{stdout}"
    );
    assert_eq!(
        ns.get("quarksjob", "talker", "{.status.runs[0].result}")
            .as_deref(),
        Some("Succeeded")
    );
    ns.delete();
}

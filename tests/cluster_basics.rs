//! The test environment and the QuarksJob API against a real kube-apiserver and
//! kube-controller-manager (see tests/support/controlplane.rs).

mod support;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use quarks_job::core::api::{QuarksJob, Strategy};
use support::WAIT;
use support::kubelet::{self, State};
use support::{
    admin_client, delete_namespace, ensure_crd, eventually, eventually_some, kubectl, shared,
    test_namespace,
};

fn example_files() -> Vec<std::path::PathBuf> {
    let dir = support::repo_root().join("tests/fixtures/upstream-examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn every_upstream_example_is_accepted_and_reads_back_typed() {
    let client = admin_client().await;
    ensure_crd(&client).await;
    let ns = test_namespace(&client, "examples", &[]).await;
    let files = example_files();
    assert_eq!(files.len(), 7, "the seven upstream example manifests");
    for file in &files {
        let out = kubectl(
            &shared().kubeconfig,
            &["apply", "-n", &ns, "-f", file.to_str().unwrap()],
        )
        .unwrap_or_else(|e| panic!("kubectl apply {} failed: {e}", file.display()));
        assert!(
            out.contains("quarksjob.quarks.cloudfoundry.org/"),
            "{}: {out}",
            file.display()
        );
    }
    let qjobs: Api<QuarksJob> = Api::namespaced(client.clone(), &ns);
    let list = qjobs
        .list(&ListParams::default())
        .await
        .expect("typed list of the stored QuarksJobs");
    let mut names = support::names(&list.items);
    names.sort();
    assert_eq!(
        names,
        [
            "auto-errand-sleep-again",
            "deletes-pod-1",
            "manual-sleep",
            "myfoo",
            "one-time-sleep"
        ]
    );

    let myfoo = qjobs.get("myfoo").await.unwrap();
    let output = myfoo.spec.output.as_ref().expect("output kept");
    assert_eq!(output.output_map["jsonout"]["output.json"].name, "foo-json");
    assert_eq!(output.secret_labels["key"], "value");
    assert_eq!(myfoo.strategy(), Some(Strategy::Once));
    // qjob_errand_updated.yaml was applied after qjob_errand.yaml
    assert_eq!(
        qjobs.get("manual-sleep").await.unwrap().strategy(),
        Some(Strategy::Now)
    );
    let updating = qjobs.get("auto-errand-sleep-again").await.unwrap();
    assert!(updating.spec.update_on_config_change);
    let pod = updating
        .spec
        .template
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(
        pod.volumes.as_ref().unwrap()[0]
            .secret
            .as_ref()
            .unwrap()
            .secret_name
            .as_deref(),
        Some("secret1")
    );
    // The misplaced upstream `backoffLimit` survives in storage (schemaless template) even though
    // Kubernetes does not read it there.
    let raw = kubectl(
        &shared().kubeconfig,
        &[
            "get",
            "qjob",
            "-n",
            &ns,
            "manual-sleep",
            "-o",
            "jsonpath={.spec.template.backoffLimit}",
        ],
    )
    .unwrap();
    assert_eq!(raw, "2");
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn invalid_strategy_is_rejected_by_the_apiserver() {
    let client = admin_client().await;
    ensure_crd(&client).await;
    let ns = test_namespace(&client, "invalid", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: quarks.cloudfoundry.org/v1alpha1\nkind: QuarksJob\nmetadata:\n  name: bad\nspec:\n  trigger:\n    strategy: sometimes\n  template: {}\n",
    )
    .unwrap();
    let err = kubectl(
        &shared().kubeconfig,
        &["apply", "-n", &ns, "-f", file.to_str().unwrap()],
    )
    .expect_err("must be rejected");
    assert!(
        err.contains("spec.trigger.strategy") && err.contains("Unsupported value: \"sometimes\""),
        "{err}"
    );
    let qjobs: Api<QuarksJob> = Api::namespaced(client.clone(), &ns);
    assert!(
        qjobs.get_opt("bad").await.unwrap().is_none(),
        "nothing was stored"
    );

    // and a wrong persistence method in the output map
    std::fs::write(
        &file,
        "apiVersion: quarks.cloudfoundry.org/v1alpha1\nkind: QuarksJob\nmetadata:\n  name: bad\nspec:\n  trigger:\n    strategy: manual\n  template: {}\n  output:\n    outputMap:\n      c:\n        f.json:\n          name: s\n          persistencemethod: fanout\n",
    )
    .unwrap();
    let err = kubectl(
        &shared().kubeconfig,
        &["apply", "-n", &ns, "-f", file.to_str().unwrap()],
    )
    .expect_err("must be rejected");
    assert!(
        err.contains("persistencemethod") && err.contains("Unsupported value: \"fanout\""),
        "{err}"
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn kubectl_get_shows_the_printer_columns() {
    let client = admin_client().await;
    ensure_crd(&client).await;
    let ns = test_namespace(&client, "columns", &[]).await;
    let file = support::repo_root()
        .join("tests/fixtures/upstream-examples/qjob_auto-errand-updating.yaml");
    kubectl(
        &shared().kubeconfig,
        &["apply", "-n", &ns, "-f", file.to_str().unwrap()],
    )
    .unwrap();

    let out = kubectl(&shared().kubeconfig, &["get", "qjob", "-n", &ns]).unwrap();
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    // upstream's strategy column is shown by default now, with the run history's columns
    assert_eq!(
        header,
        [
            "NAME",
            "COMPLETED",
            "STRATEGY",
            "LAST",
            "RUN",
            "FINISHED",
            "RUNS",
            "AGE"
        ],
        "{out}"
    );

    let wide = kubectl(
        &shared().kubeconfig,
        &["get", "qjobs", "-n", &ns, "-o", "wide"],
    )
    .unwrap();
    let mut lines = wide.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "COMPLETED",
            "STRATEGY",
            "LAST",
            "RUN",
            "FINISHED",
            "RUNS",
            "UPDATEONCONFIGCHANGE",
            "AGE"
        ],
        "{wide}"
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[0], "auto-errand-sleep-again");
    assert!(row.contains(&"once") && row.contains(&"true"), "{wide}");
    delete_namespace(&client, &ns).await;
}

fn job(name: &str, backoff_limit: i32) -> Job {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox"}, {"name": "side", "image": "busybox"}]
            }}
        }
    }))
    .unwrap()
}

async fn job_pod(pods: &Api<Pod>, job: &str) -> Pod {
    eventually_some(WAIT, &format!("a pod of job {job}"), || async {
        support::pods_of_job(pods, job).await.into_iter().next()
    })
    .await
}

async fn job_condition(jobs: &Api<Job>, job: &str, condition: &str) {
    eventually(
        WAIT,
        &format!("job {job} condition {condition}"),
        || async {
            jobs.get(job)
                .await
                .ok()
                .and_then(|j| j.status)
                .and_then(|s| s.conditions)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == condition && c.status == "True")
                })
        },
    )
    .await;
}

#[tokio::test]
async fn a_job_gets_a_pod_that_the_kubelet_stand_in_completes() {
    let client = admin_client().await;
    let ns = test_namespace(&client, "jobs", &[]).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    jobs.create(&PostParams::default(), &job("ok", 0))
        .await
        .unwrap();

    let pod = job_pod(&pods, "ok").await;
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending"),
        "no kubelet runs here"
    );

    // one container done, the other still running: the Job is not complete yet
    let p =
        kubelet::set_containers(&pods, &pod.name_any(), &[("main", State::Terminated(0))]).await;
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        jobs.get("ok")
            .await
            .unwrap()
            .status
            .unwrap()
            .succeeded
            .unwrap_or(0),
        0
    );

    let p =
        kubelet::set_containers(&pods, &pod.name_any(), &[("side", State::Terminated(0))]).await;
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Succeeded"));
    job_condition(&jobs, "ok", "Complete").await;
    assert_eq!(
        jobs.get("ok").await.unwrap().status.unwrap().succeeded,
        Some(1)
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn a_job_whose_pod_fails_past_its_backoff_limit_fails() {
    let client = admin_client().await;
    let ns = test_namespace(&client, "jobfail", &[]).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    jobs.create(&PostParams::default(), &job("bad", 0))
        .await
        .unwrap();
    let pod = job_pod(&pods, "bad").await;
    let p = kubelet::finish_pod(&pods, &pod.name_any(), 3).await;
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Failed"));
    job_condition(&jobs, "bad", "Failed").await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn the_garbage_collector_deletes_owned_objects() {
    let client = admin_client().await;
    let ns = test_namespace(&client, "gc", &[]).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    jobs.create(&PostParams::default(), &job("owned", 0))
        .await
        .unwrap();
    let pod = job_pod(&pods, "owned").await;
    jobs.delete("owned", &kube::api::DeleteParams::background())
        .await
        .unwrap();
    eventually(WAIT, "the job's pod to be garbage-collected", || async {
        pods.get_opt(&pod.name_any()).await.unwrap().is_none()
    })
    .await;
    delete_namespace(&client, &ns).await;
}

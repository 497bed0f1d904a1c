//! The install lifecycle on real pods (`make e2e-cluster` runs it after the suite, once per
//! install kind): with the operator installed as `make deploy` does, an upgrade to a second image
//! tag (`helm upgrade`, or the kustomize overlay's image changed) while a QuarksJob is created
//! every second; a run; the uninstall, after which nothing may be left that admission sends job
//! pods to; a re-install over what the uninstall kept (Helm: the certificate Secret); a run.
//!
//! Settings (`make e2e-lifecycle` passes them): `QUARKS_E2E_DEPLOY` (kustomize or helm: the
//! install to drive with `hack/deploy.sh`), `QUARKS_E2E_UPGRADE_TAG` (the second tag, pushed to
//! the cluster's registry beforehand), and the `IMAGE_*`, `PULL_POLICY` and `MONITORED_ID` of the
//! install. The figures (upgrade duration, triggers sent, Jobs seen, `FailedCreate` events) are
//! printed; what is asserted is that nothing was lost or refused.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use quarks_job::core::api::QuarksJob;
use quarks_job::core::api::labels::LABEL_QJOB_NAME;
use serde_json::json;

use crate::support;
use crate::target::{Ns, OPERATOR_NS, Target};

/// The install to drive: kustomize or helm (as `make deploy DEPLOY=...`).
const DEPLOY_ENV: &str = "QUARKS_E2E_DEPLOY";
/// The image tag to upgrade to.
const UPGRADE_TAG_ENV: &str = "QUARKS_E2E_UPGRADE_TAG";
/// Triggers keep coming this long after the upgrade finished (the old pods' drain).
const AFTER_UPGRADE: Duration = Duration::from_secs(8);

fn setting(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the lifecycle case with make e2e-lifecycle (docs/e2e.md)")
    })
}

/// `hack/deploy.sh <cmd>` for this install, with `tag` as the image tag. Returns how long it
/// took.
fn deploy(t: &Target, cmd: &str, tag: Option<&str>) -> Duration {
    let start = Instant::now();
    let mut run = std::process::Command::new("bash");
    run.current_dir(support::repo_root())
        .args(["hack/deploy.sh", cmd])
        .env("KUBECONFIG", &t.kubeconfig)
        .env("DEPLOY", setting(DEPLOY_ENV))
        .env("MONITORED_ID", &t.monitored_id);
    if let Some(tag) = tag {
        run.env("IMAGE_TAG", tag);
    }
    let out = run.output().expect("run hack/deploy.sh");
    assert!(
        out.status.success(),
        "hack/deploy.sh {cmd} (tag {tag:?}): {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

/// A QuarksJob that runs once and writes `{"n": "<n>"}` into the Secret `out-<n>`.
fn trigger(n: usize) -> QuarksJob {
    serde_json::from_value(json!({
        "apiVersion": "quarks.cloudfoundry.org/v1alpha1",
        "kind": "QuarksJob",
        "metadata": {"name": format!("t-{n}")},
        "spec": {
            "trigger": {"strategy": "once"},
            "output": {"outputMap": {"out": {"output.json": {"name": format!("out-{n}")}}}},
            "template": {"spec": {"backoffLimit": 2, "template": {"spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "out",
                    "image": "busybox",
                    "command": ["/bin/sh", "-c",
                        format!("echo '{{\"n\": \"{n}\"}}' > /mnt/quarks/output.json")],
                }],
            }}}},
        },
    }))
    .unwrap()
}

/// Every Job created in `ns`, as (QuarksJob, Job) names (a watch that resumes after its
/// timeout).
fn watch_jobs(client: kube::Client, ns: &str) -> Arc<Mutex<BTreeSet<(String, String)>>> {
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let jobs: Api<Job> = Api::namespaced(client, ns);
    let record = seen.clone();
    tokio::spawn(async move {
        let mut since = "0".to_string();
        loop {
            let Ok(events) = jobs
                .watch(&WatchParams::default().timeout(290), &since)
                .await
            else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let mut events = events.boxed();
            while let Ok(Some(event)) = events.try_next().await {
                if let WatchEvent::Added(job) | WatchEvent::Modified(job) = &event {
                    let qjob = job
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(LABEL_QJOB_NAME))
                        .cloned()
                        .unwrap_or_default();
                    let name = job.metadata.name.clone().unwrap_or_default();
                    record.lock().unwrap().insert((qjob, name));
                    since = job.metadata.resource_version.clone().unwrap_or(since);
                }
            }
        }
    });
    seen
}

/// `FailedCreate` events in `ns` (the Job controller could not create a pod: refused by
/// admission, for one).
fn failed_creates(ns: &Ns) -> Vec<String> {
    ns.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "reason=FailedCreate",
        "-o",
        "jsonpath={range .items[*]}{.involvedObject.name}: {.message}{\"\\n\"}{end}",
    ])
    .unwrap_or_else(|e| panic!("events: {e}"))
    .lines()
    .map(String::from)
    .collect()
}

/// Upgrade to `tag` while a QuarksJob is created every second; every one gets its Job and its
/// output, and no pod is refused.
async fn upgrade_under_load(t: &'static Target, tag: &str) {
    let ns = t.namespace("e2e-upgrade");
    let client = support::client_for(&t.kubeconfig).await;
    let jobs = watch_jobs(client.clone(), &ns.name);
    let qjobs: Api<QuarksJob> = Api::namespaced(client, &ns.name);
    let upgrading = Arc::new(Mutex::new(None::<Instant>));
    let sender = {
        let (qjobs, upgrading) = (qjobs.clone(), upgrading.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut sent = 0;
            loop {
                tick.tick().await;
                if upgrading
                    .lock()
                    .unwrap()
                    .is_some_and(|done| done.elapsed() > AFTER_UPGRADE)
                {
                    return sent;
                }
                qjobs
                    .create(&PostParams::default(), &trigger(sent))
                    .await
                    .unwrap_or_else(|e| panic!("create QuarksJob t-{sent}: {e}"));
                sent += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let to = tag.to_string();
    let took = tokio::task::spawn_blocking(move || deploy(t, "apply", Some(&to)))
        .await
        .unwrap();
    *upgrading.lock().unwrap() = Some(Instant::now());
    let sent = sender.await.unwrap();
    let image = t
        .kubectl(&[
            "get",
            "deployment",
            "-n",
            OPERATOR_NS,
            "quarks-job",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image} {.status.readyReplicas}/{.spec.replicas}",
        ])
        .unwrap();
    assert!(
        image.contains(&format!(":{tag} 2/2")),
        "after the upgrade: {image}"
    );

    // every trigger ran, with its output
    for n in 0..sent {
        let secret = format!("out-{n}");
        ns.wait(&format!("Secret {secret}"), || {
            ns.get("secret", &secret, "{.data.n}").is_some()
        })
        .await;
        let value = ns.get("secret", &secret, "{.data.n}").unwrap();
        assert_eq!(value, base64_of(&n.to_string()), "Secret {secret}");
    }
    let seen = jobs.lock().unwrap().clone();
    let failed = failed_creates(&ns);
    eprintln!(
        "lifecycle {}: upgrade to tag {tag} took {:.1} s; {sent} QuarksJobs created (one a \
         second, from 3 s before to {} s after it); Jobs seen {}; outputs {sent}/{sent}; \
         FailedCreate events {}",
        setting(DEPLOY_ENV),
        took.as_secs_f64(),
        AFTER_UPGRADE.as_secs(),
        seen.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "job pods refused: {failed:?}");
    let expected: BTreeSet<String> = (0..sent).map(|n| format!("t-{n}")).collect();
    let triggered: BTreeSet<String> = seen.iter().map(|(q, _)| q.clone()).collect();
    assert_eq!(triggered, expected, "QuarksJobs with a Job: {seen:?}");
    ns.delete();
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// No webhook configuration in the cluster would still send a pod to this operator: none
/// names its webhooks or Service, and a job pod in a monitored namespace is admitted (a
/// server-side dry run, which admission webhooks see too).
fn nothing_left_that_matches_a_pod(t: &Target) {
    for kind in [
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
    ] {
        let all = t.json(&[kind]).unwrap();
        let ours: Vec<String> = all["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                c["webhooks"].as_array().into_iter().flatten().any(|w| {
                    w["name"]
                        .as_str()
                        .is_some_and(|n| n.ends_with(".quarks.cloudfoundry.org"))
                        || w["clientConfig"]["service"]["namespace"] == OPERATOR_NS
                })
            })
            .map(|c| c["metadata"]["name"].to_string())
            .collect();
        assert!(ours.is_empty(), "left after the uninstall: {kind} {ours:?}");
    }
    let name = format!("e2e-left-{}", support::unique());
    t.kubectl(&["create", "namespace", &name]).unwrap();
    t.kubectl(&[
        "label",
        "namespace",
        &name,
        &format!("quarks.cloudfoundry.org/monitored={}", t.monitored_id),
    ])
    .unwrap();
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "job-pod", "namespace": name,
            "labels": {"quarks.cloudfoundry.org/qjob-name": "left"}},
        "spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]},
    });
    let file = support::manifests::temp_yaml(&pod.to_string());
    let admitted = t.kubectl(&[
        "create",
        "--dry-run=server",
        "-f",
        file.path().to_str().unwrap(),
    ]);
    let _ = t.kubectl(&["delete", "namespace", &name, "--wait=false"]);
    admitted.unwrap_or_else(|e| panic!("a job pod is refused after the uninstall: {e}"));
    eprintln!(
        "lifecycle {}: after the uninstall no webhook configuration of the operator is left; a \
         job pod in a monitored namespace is admitted",
        setting(DEPLOY_ENV)
    );
}

/// `ca.crt` of the certificate Secret, if there is one.
fn stored_ca(t: &Target) -> Option<String> {
    t.kubectl(&[
        "get",
        "secret",
        "-n",
        OPERATOR_NS,
        "quarks-job-webhook-cert",
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ])
    .ok()
    .filter(|ca| !ca.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real pods: make e2e-cluster (make e2e-lifecycle)"]
async fn upgrade_uninstall_and_reinstall_never_refuse_a_job_pod() {
    let t = Target::get();
    let deploy_kind = setting(DEPLOY_ENV);
    let upgrade_tag = setting(UPGRADE_TAG_ENV);
    let first_tag = std::env::var("IMAGE_TAG").unwrap_or_else(|_| quarks_job::VERSION.into());

    upgrade_under_load(t, &upgrade_tag).await;
    crate::output_example("e2e-upgraded").await.delete();

    let ca_before = stored_ca(t);
    let took = deploy(t, "delete", None);
    eprintln!(
        "lifecycle {deploy_kind}: uninstall took {:.1} s",
        took.as_secs_f64()
    );
    nothing_left_that_matches_a_pod(t);
    let kept = stored_ca(t);

    let took = deploy(t, "apply", Some(&first_tag));
    let ca_after = stored_ca(t);
    eprintln!(
        "lifecycle {deploy_kind}: re-install (tag {first_tag}) ready in {:.1} s; certificate \
         Secret {}",
        took.as_secs_f64(),
        match (&kept, &ca_after) {
            (None, _) => "removed by the uninstall, made anew",
            (Some(k), Some(a)) if k == a => "kept by the uninstall and reused",
            (Some(_), _) => "kept by the uninstall and replaced",
        }
    );
    if deploy_kind == "helm" {
        // the chart keeps the Secret (helm.sh/resource-policy: keep)
        assert_eq!(kept, ca_before, "the Secret the uninstall kept");
    }
    crate::output_example("e2e-reinstalled").await.delete();
}

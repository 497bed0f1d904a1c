//! Completion against the real control plane: succeeded Jobs are deleted (pods kept and owned by
//! the QuarksJob, or deleted with `delete: pod`), failed Jobs are kept and reported, at most
//! `--job-history` of each kept per QuarksJob (oldest deleted first), and everything goes with
//! the QuarksJob.

mod reconcile_helpers;
mod support;

use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams};
use quarks_job::core::api::Strategy;
use quarks_job::reconcile::status::{FAILED, RUNNING, SUCCEEDED};
use reconcile_helpers::{World, condition, created_run, is_true, qjob};
use serde_json::json;
use support::WAIT;
use support::eventually;

#[tokio::test]
async fn succeeded_job_is_deleted_and_its_pod_kept_until_the_quarks_job_goes() {
    let w = World::new("keep").await;
    let _op = w.operator();
    // `delete` on the JobTemplate's metadata is not the pod template's: pods are kept (upstream case)
    let mut q = qjob("autoerrand-job", "once", json!({}));
    q["spec"]["template"]["metadata"] = json!({"labels": {"delete": "something-else"}});
    let created = w.create(q).await;
    let job = w.wait_jobs("autoerrand-job", 1).await.remove(0).name_any();
    let pod = w.finish_job(&job, 0).await.name_any();

    w.wait_job_gone(&job).await;
    let q = w
        .wait_qjob("autoerrand-job", "completed", |q| {
            q.status.as_ref().is_some_and(|s| s.completed)
        })
        .await;
    assert!(is_true(&q, SUCCEEDED) && !is_true(&q, RUNNING) && !is_true(&q, FAILED));
    assert_eq!(q.strategy(), Some(Strategy::Done));
    // the pod stays, owned by the QuarksJob only
    let kept = w.pods().get(&pod).await.expect("pod kept for its logs");
    let owners = kept.owner_references();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].uid.as_str()),
        ("QuarksJob", created.uid().unwrap().as_str())
    );
    for reason in ["DeletingJob", "KeepingPods", "JobSucceeded"] {
        w.wait_event("autoerrand-job", reason).await;
    }
    // it does not outlive the QuarksJob
    w.qjobs()
        .delete("autoerrand-job", &DeleteParams::background())
        .await
        .unwrap();
    eventually(
        WAIT,
        "kept pod garbage-collected with its QuarksJob",
        || async { w.pods().get_opt(&pod).await.unwrap().is_none() },
    )
    .await;
    w.cleanup().await;
}

#[tokio::test]
async fn delete_pod_label_deletes_the_pods_with_the_job() {
    let w = World::new("delpod").await;
    let _op = w.operator();
    w.create(qjob("deletes-pod-1", "once", json!({}))).await;
    let mut q = qjob("deletes-pod-2", "now", json!({}));
    q["spec"]["template"]["spec"]["template"]["metadata"] = json!({"labels": {"delete": "pod"}});
    w.create(q).await;
    let kept_job = w.wait_jobs("deletes-pod-1", 1).await.remove(0).name_any();
    let job = w.wait_jobs("deletes-pod-2", 1).await.remove(0).name_any();
    let pod = w.finish_job(&job, 0).await.name_any();
    w.wait_job_gone(&job).await;
    eventually(WAIT, "pod deleted", || async {
        w.pods().get_opt(&pod).await.unwrap().is_none()
    })
    .await;
    w.wait_qjob("deletes-pod-2", "completed", |q| {
        q.status.as_ref().is_some_and(|s| s.completed)
    })
    .await;
    w.wait_event("deletes-pod-2", "DeletingJobsPod").await;
    // the other QuarksJob's running Job is untouched
    assert!(w.jobs().get_opt(&kept_job).await.unwrap().is_some());
    w.cleanup().await;
}

#[tokio::test]
async fn failed_job_is_kept_reported_and_cleaned_up_with_its_quarks_job() {
    let w = World::new("failed").await;
    let _op = w.operator();
    let pod_extra = json!({"containers": [
        {"name": "busybox", "image": "busybox", "command": ["echo", "{}"]},
        {"name": "failing", "image": "busybox", "command": ["exit", "1"]}
    ]});
    w.create(qjob("failing", "now", pod_extra)).await;
    let job = w.wait_jobs("failing", 1).await.remove(0).name_any();
    let pod = w.pod_of(&job).await.name_any();
    support::kubelet::set_containers(
        &w.pods(),
        &pod,
        &[
            ("busybox", support::kubelet::State::Terminated(0)),
            ("failing", support::kubelet::State::Terminated(1)),
        ],
    )
    .await;

    let q = w
        .wait_qjob("failing", "failed", |q| is_true(q, FAILED))
        .await;
    let failed = condition(&q, FAILED).unwrap();
    assert_eq!(failed.reason, "BackoffLimitExceeded");
    assert!(failed.message.contains(&job), "{}", failed.message);
    assert!(!is_true(&q, RUNNING) && !is_true(&q, SUCCEEDED));
    assert!(!q.status.as_ref().unwrap().completed);
    w.wait_event("failing", "JobFailed").await;
    w.barrier("failing").await;
    assert!(
        w.jobs().get_opt(&job).await.unwrap().is_some(),
        "failed Job kept for inspection"
    );
    assert!(
        w.pods().get_opt(&pod).await.unwrap().is_some(),
        "its pod too"
    );

    // a later trigger runs a fresh Job; the failed one stays
    w.set_strategy("failing", Strategy::Now).await;
    let q = w
        .wait_qjob("failing", "second run", |q| {
            created_run(q) == 2 && is_true(q, RUNNING)
        })
        .await;
    assert!(!is_true(&q, FAILED), "the new run is not failed");
    assert_eq!(w.jobs_of("failing").await.len(), 2);

    // deleting the QuarksJob deletes its Jobs (garbage collection through the owner reference)
    w.qjobs()
        .delete("failing", &DeleteParams::background())
        .await
        .unwrap();
    eventually(
        WAIT,
        "Jobs of the deleted QuarksJob garbage-collected",
        || async {
            w.jobs()
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
        },
    )
    .await;
    w.cleanup().await;
}

#[tokio::test]
async fn describe_tells_the_story() {
    let w = World::new("describe").await;
    let _op = w.operator();
    w.create(qjob("story", "now", json!({}))).await;
    let job = w.wait_jobs("story", 1).await.remove(0).name_any();
    w.finish_job(&job, 0).await;
    w.wait_qjob("story", "succeeded", |q| is_true(q, SUCCEEDED))
        .await;
    w.wait_event("story", "DeletingJob").await;
    let out = support::kubectl(
        &support::shared().kubeconfig,
        &["describe", "qjob", "-n", &w.ns, "story"],
    )
    .unwrap();
    for needle in [
        "Succeeded",
        "JobSucceeded",
        "CreateJob",
        "DeletingJob",
        &job,
    ] {
        assert!(out.contains(needle), "describe lacks {needle}:\n{out}");
    }
    w.cleanup().await;
}

#[tokio::test]
async fn jobs_with_several_completions_are_cleaned_up_and_all_their_pods_kept() {
    let w = World::new("completions").await;
    let _op = w.operator();
    let mut q = qjob("twice", "now", json!({}));
    q["spec"]["template"]["spec"]["completions"] = json!(2);
    q["spec"]["template"]["spec"]["parallelism"] = json!(1);
    w.create(q).await;
    let job = w.wait_jobs("twice", 1).await.remove(0).name_any();
    let first = w.finish_job(&job, 0).await.name_any();
    let second = reconcile_helpers::eventually_pod_other_than(&w, &job, &first).await;
    support::kubelet::finish_pod(&w.pods(), &second, 0).await;
    w.wait_job_gone(&job).await;
    let q = w
        .wait_qjob("twice", "succeeded", |q| is_true(q, SUCCEEDED))
        .await;
    for pod in [&first, &second] {
        let p = w.pods().get(pod).await.expect("pod kept");
        assert_eq!(
            p.owner_references()[0].uid,
            q.uid().unwrap(),
            "{pod} owned by the QuarksJob"
        );
    }
    w.cleanup().await;
}

#[tokio::test]
async fn a_running_job_deleted_by_someone_else_is_reported() {
    let w = World::new("gone").await;
    let _op = w.operator();
    w.create(qjob("vanishing", "now", json!({}))).await;
    let job = w.wait_jobs("vanishing", 1).await.remove(0).name_any();
    w.wait_qjob("vanishing", "running", |q| is_true(q, RUNNING))
        .await;
    w.jobs()
        .delete(&job, &DeleteParams::background())
        .await
        .unwrap();
    let q = w
        .wait_qjob("vanishing", "not running", |q| !is_true(q, RUNNING))
        .await;
    assert_eq!(condition(&q, RUNNING).unwrap().reason, "JobNotFound");
    w.cleanup().await;
}

/// Run the QuarksJob `name` (strategy `now` already set for the first run) and finish its Job's
/// pod with `exit_code`; return the Job's name and the pod's.
async fn run_once(w: &World, name: &str, seen: &[String], exit_code: i32) -> (String, String) {
    if !seen.is_empty() {
        w.set_strategy(name, Strategy::Now).await;
    }
    let job = support::eventually_some(WAIT, &format!("a new Job of {name}"), || async {
        w.jobs_of(name)
            .await
            .into_iter()
            .map(|j| j.name_any())
            .find(|j| !seen.contains(j))
    })
    .await;
    let pod = w.finish_job(&job, exit_code).await.name_any();
    if exit_code == 0 {
        w.wait_job_gone(&job).await;
    } else {
        w.wait_qjob(name, "its last Job failed", |q| {
            is_true(q, FAILED) && condition(q, FAILED).is_some_and(|c| c.message.contains(&job))
        })
        .await;
    }
    (job, pod)
}

#[tokio::test]
async fn only_the_newest_failed_jobs_and_kept_pods_stay() {
    let w = World::new("history").await;
    let mut config = w.config();
    config.job_history = 2;
    let _op = reconcile_helpers::Operator::start(w.client.clone(), config);

    w.create(qjob("fails", "now", json!({}))).await;
    let mut failed = Vec::new();
    for _ in 0..3 {
        let (job, _) = run_once(&w, "fails", &failed, 1).await;
        failed.push(job);
    }
    eventually(WAIT, "the oldest failed Job deleted", || async {
        let mut left = support::names(&w.jobs_of("fails").await);
        left.sort();
        let mut want = failed[1..].to_vec();
        want.sort();
        left == want
    })
    .await;

    w.create(qjob("succeeds", "now", json!({}))).await;
    let (mut jobs, mut kept) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (job, pod) = run_once(&w, "succeeds", &jobs, 0).await;
        jobs.push(job);
        kept.push(pod);
    }
    eventually(WAIT, "the oldest kept pod deleted", || async {
        let pods = w
            .pods()
            .list(&ListParams::default().labels("quarks.cloudfoundry.org/qjob-name=succeeds"))
            .await
            .unwrap()
            .items;
        let mut left: Vec<String> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| p.name_any())
            .collect();
        left.sort();
        let mut want = kept[1..].to_vec();
        want.sort();
        left == want
    })
    .await;
    // the two newest failed Jobs are still there
    assert_eq!(w.jobs_of("fails").await.len(), 2);
    w.cleanup().await;
}

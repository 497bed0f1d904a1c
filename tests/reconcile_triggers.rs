//! The trigger state machine against the real control plane: now/manual/noop, once → done,
//! unmonitored namespaces, many QuarksJobs, and restarts between the steps of a run.

mod reconcile_helpers;
mod support;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use quarks_job::core::api::Strategy;
use quarks_job::core::api::labels::{LABEL_MONITORED, LABEL_QJOB_NAME, LABEL_QJOB_SERVICE_ACCOUNT};
use quarks_job::core::job_names::job_name;
use quarks_job::reconcile::job::{Owner, build_job};
use quarks_job::reconcile::status::RUNNING;
use reconcile_helpers::{World, created_run, is_true, qjob};
use serde_json::json;

#[tokio::test]
async fn now_runs_exactly_one_job_and_becomes_manual() {
    let w = World::new("now").await;
    let _op = w.operator();
    let mut q = qjob("qj-now", "now", json!({}));
    q["spec"]["template"]["metadata"] =
        json!({"labels": {"team": "blue"}, "annotations": {"note": "kept"}});
    q["spec"]["template"]["spec"]["template"]["metadata"] = json!({"labels": {"app": "errand"}});
    let created = w.create(q).await;

    let q = w
        .wait_qjob("qj-now", "one run recorded", |q| created_run(q) == 1)
        .await;
    assert_eq!(q.strategy(), Some(Strategy::Manual), "now → manual");
    let jobs = w.wait_jobs("qj-now", 1).await;
    let job = &jobs[0];
    let uid = created.uid().unwrap();
    assert_eq!(
        job.name_any(),
        job_name("qj-now", &uid, 1),
        "deterministic name"
    );
    let st = q.status.clone().unwrap();
    assert_eq!(st.last_job_name.as_deref(), Some(job.name_any().as_str()));
    assert!(st.last_reconcile.is_some());
    assert!(is_true(&q, RUNNING));

    // labels, annotations, owner
    assert_eq!(
        job.labels().get(LABEL_QJOB_NAME).map(String::as_str),
        Some("qj-now")
    );
    assert_eq!(
        job.labels().get("team").map(String::as_str),
        Some("blue"),
        "template labels kept"
    );
    assert_eq!(
        job.annotations().get("note").map(String::as_str),
        Some("kept"),
        "template annotations kept"
    );
    let pod_labels = job
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    assert_eq!(
        pod_labels.get(LABEL_QJOB_NAME).map(String::as_str),
        Some("qj-now")
    );
    assert_eq!(pod_labels.get("app").map(String::as_str), Some("errand"));
    let owner = &job.owner_references()[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str()
        ),
        (
            "quarks.cloudfoundry.org/v1alpha1",
            "QuarksJob",
            "qj-now",
            uid.as_str()
        )
    );
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
    w.wait_event("qj-now", "CreateJob").await;

    w.barrier("qj-now").await;
    assert_eq!(w.jobs_of("qj-now").await.len(), 1, "still exactly one Job");
    w.cleanup().await;
}

#[tokio::test]
async fn manual_runs_nothing_until_set_to_now() {
    let w = World::new("manual").await;
    let _op = w.operator();
    w.create(qjob("qj-noop", "manual", json!({}))).await;
    w.settled("qj-noop").await;
    assert!(w.jobs_of("qj-noop").await.is_empty());
    // an update that does not change the strategy runs nothing
    w.barrier("qj-noop").await;
    w.patch_spec("qj-noop", json!({"updateOnConfigChange": true}))
        .await;
    let q = w.settled("qj-noop").await;
    assert!(
        w.jobs_of("qj-noop").await.is_empty(),
        "editing a manual QuarksJob runs nothing"
    );
    assert_eq!(q.strategy(), Some(Strategy::Manual));

    // now it runs, once (triggered as upstream's README says)
    let patch = r#"{"spec": {"trigger": {"strategy": "now"}}}"#;
    support::kubectl(
        &support::shared().kubeconfig,
        &[
            "patch",
            "qjob",
            "-n",
            &w.ns,
            "qj-noop",
            "--type=merge",
            "-p",
            patch,
        ],
    )
    .unwrap();
    let q = w
        .wait_qjob("qj-noop", "ran", |q| {
            created_run(q) == 1 && q.strategy() == Some(Strategy::Manual)
        })
        .await;
    let jobs = w.wait_jobs("qj-noop", 1).await;
    assert_eq!(jobs[0].owner_references()[0].uid, q.uid().unwrap());
    // and again: a second trigger is a second run with a new Job
    w.set_strategy("qj-noop", Strategy::Now).await;
    w.wait_qjob("qj-noop", "ran twice", |q| created_run(q) == 2)
        .await;
    let jobs = w.wait_jobs("qj-noop", 2).await;
    assert_ne!(jobs[0].name_any(), jobs[1].name_any());
    w.barrier("qj-noop").await;
    assert_eq!(w.jobs_of("qj-noop").await.len(), 2);
    w.cleanup().await;
}

#[tokio::test]
async fn once_runs_and_becomes_done() {
    let w = World::new("once").await;
    let _op = w.operator();
    w.create(qjob("autoerrand-job", "once", json!({}))).await;
    let q = w
        .wait_qjob("autoerrand-job", "done", |q| {
            q.strategy() == Some(Strategy::Done) && created_run(q) == 1
        })
        .await;
    assert_eq!(q.status.unwrap().requested_run, 1);
    w.wait_jobs("autoerrand-job", 1).await;
    w.barrier("autoerrand-job").await;
    assert_eq!(
        w.jobs_of("autoerrand-job").await.len(),
        1,
        "done never runs by itself"
    );
    w.cleanup().await;
}

#[tokio::test]
async fn unmonitored_namespaces_are_left_alone_until_labelled() {
    let w = World::new("gate").await;
    let _op = w.operator();
    let other_id = support::test_namespace(
        &w.client,
        "gate-other",
        &[
            (LABEL_MONITORED, "someone-else"),
            (LABEL_QJOB_SERVICE_ACCOUNT, "default"),
        ],
    )
    .await;
    let no_sa = support::test_namespace(&w.client, "gate-nosa", &[(LABEL_MONITORED, &w.id)]).await;
    for ns in [&other_id, &no_sa] {
        let qjobs: Api<quarks_job::core::api::QuarksJob> = Api::namespaced(w.client.clone(), ns);
        let mut q = qjob("ignored", "now", json!({}));
        q["apiVersion"] = json!("quarks.cloudfoundry.org/v1alpha1");
        q["kind"] = json!("QuarksJob");
        qjobs
            .create(&PostParams::default(), &serde_json::from_value(q).unwrap())
            .await
            .unwrap();
    }
    // a QuarksJob in the monitored namespace shows the operator is working
    w.create(qjob("control", "now", json!({}))).await;
    w.wait_jobs("control", 1).await;
    w.barrier("control").await;
    for ns in [&other_id, &no_sa] {
        let qjobs: Api<quarks_job::core::api::QuarksJob> = Api::namespaced(w.client.clone(), ns);
        let q = qjobs.get("ignored").await.unwrap();
        assert_eq!(q.strategy(), Some(Strategy::Now), "{ns}: untouched");
        assert!(
            q.status
                .as_ref()
                .is_none_or(|s| s.created_run == 0 && s.conditions.is_empty()),
            "{ns}: no status"
        );
        let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(w.client.clone(), ns);
        assert!(
            jobs.list(&Default::default())
                .await
                .unwrap()
                .items
                .is_empty(),
            "{ns}: no Job"
        );
    }

    // labelling the namespace later picks up its QuarksJobs
    let namespaces: Api<Namespace> = Api::all(w.client.clone());
    let patch = json!({"metadata": {"labels": {LABEL_QJOB_SERVICE_ACCOUNT: "default"}}});
    namespaces
        .patch(&no_sa, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let qjobs: Api<quarks_job::core::api::QuarksJob> = Api::namespaced(w.client.clone(), &no_sa);
    support::eventually(
        support::WAIT,
        "QuarksJob of the newly monitored namespace ran",
        || async {
            qjobs
                .get("ignored")
                .await
                .ok()
                .is_some_and(|q| created_run(&q) == 1 && q.strategy() == Some(Strategy::Manual))
        },
    )
    .await;
    for ns in [other_id, no_sa] {
        support::delete_namespace(&w.client, &ns).await;
    }
    w.cleanup().await;
}

#[tokio::test]
async fn many_quarks_jobs_get_one_job_each() {
    let w = World::new("many").await;
    const N: usize = 24;
    for i in 0..N {
        let strategy = if i % 2 == 0 { "now" } else { "once" };
        w.create(qjob(&format!("q{i}"), strategy, json!({}))).await;
    }
    let _op = w.operator();
    for i in 0..N {
        let q = w
            .wait_qjob(&format!("q{i}"), "ran", |q| created_run(q) == 1)
            .await;
        assert!(matches!(
            q.strategy(),
            Some(Strategy::Manual | Strategy::Done)
        ));
    }
    for i in 0..N {
        w.barrier(&format!("q{i}")).await;
    }
    let all = w.jobs().list(&Default::default()).await.unwrap().items;
    assert_eq!(all.len(), N, "one Job per QuarksJob");
    for i in 0..N {
        assert_eq!(w.jobs_of(&format!("q{i}")).await.len(), 1, "q{i}");
    }
    w.cleanup().await;
}

/// Create, without any operator, the state a crash of an earlier version leaves behind: run 1
/// allocated in the status, optionally the Job of run 1 created, and the strategy as given.
async fn crashed_state(w: &World, name: &str, strategy: &str, job_created: bool) -> String {
    crashed(w, name, strategy, true, job_created).await
}

/// Create, without any operator, the state a crash leaves behind: run 1 allocated in the status
/// (earlier versions) or not, optionally the Job of run 1 created, and the strategy as given.
async fn crashed(
    w: &World,
    name: &str,
    strategy: &str,
    allocated: bool,
    job_created: bool,
) -> String {
    let q = w.create(qjob(name, strategy, json!({}))).await;
    let uid = q.uid().unwrap();
    if allocated {
        w.qjobs()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": {"requestedRun": 1}})),
            )
            .await
            .unwrap();
    }
    let job = job_name(name, &uid, 1);
    if job_created {
        let raw: Api<DynamicObject> = Api::namespaced_with(
            w.client.clone(),
            &w.ns,
            &ApiResource::erase::<quarks_job::core::api::QuarksJob>(&()),
        );
        let template = raw.get(name).await.unwrap().data["spec"]["template"].clone();
        let owner = Owner {
            name,
            namespace: &w.ns,
            uid: &uid,
        };
        let obj: DynamicObject =
            serde_json::from_value(build_job(&owner, &template, &job)).unwrap();
        let jobs: Api<DynamicObject> = Api::namespaced_with(
            w.client.clone(),
            &w.ns,
            &ApiResource::erase::<k8s_openapi::api::batch::v1::Job>(&()),
        );
        jobs.create(&PostParams::default(), &obj).await.unwrap();
    }
    job
}

#[tokio::test]
async fn restart_after_job_creation_before_strategy_update_makes_no_second_job() {
    let w = World::new("crash1").await;
    // crash after step 3 (Job created) before the strategy patch and the record
    let job_now = crashed_state(&w, "after-create", "now", true).await;
    let job_once = crashed_state(&w, "after-create-once", "once", true).await;
    // crash after step 2 (strategy consumed) before the Job was created
    let job_manual = crashed_state(&w, "after-flip", "manual", false).await;

    let _op = w.operator();
    let q = w
        .wait_qjob("after-create", "recorded", |q| created_run(q) == 1)
        .await;
    assert_eq!(q.strategy(), Some(Strategy::Manual));
    let q = w
        .wait_qjob("after-create-once", "recorded", |q| created_run(q) == 1)
        .await;
    assert_eq!(q.strategy(), Some(Strategy::Done));
    let q = w
        .wait_qjob("after-flip", "recorded", |q| created_run(q) == 1)
        .await;
    assert_eq!(q.strategy(), Some(Strategy::Manual));
    for (name, job) in [
        ("after-create", &job_now),
        ("after-create-once", &job_once),
        ("after-flip", &job_manual),
    ] {
        w.barrier(name).await;
        let jobs = w.jobs_of(name).await;
        assert_eq!(jobs.len(), 1, "{name}: exactly one Job");
        assert_eq!(&jobs[0].name_any(), job, "{name}: the Job of run 1");
    }
    w.wait_event("after-create", "AlreadyRunning").await;
    w.cleanup().await;
}

#[tokio::test]
async fn restart_between_the_job_and_its_bookkeeping_records_the_run_once() {
    let w = World::new("crash2").await;
    // crash right after the create (step 1): the trigger still there, nothing recorded
    let job_now = crashed(&w, "created-now", "now", false, true).await;
    let job_once = crashed(&w, "created-once", "once", false, true).await;
    // crash after the trigger was consumed (step 2), before the record (step 3)
    let job_consumed = crashed(&w, "created-consumed", "manual", false, true).await;

    let _op = w.operator();
    for (name, job, strategy) in [
        ("created-now", &job_now, Strategy::Manual),
        ("created-once", &job_once, Strategy::Done),
        ("created-consumed", &job_consumed, Strategy::Manual),
    ] {
        let q = w.wait_qjob(name, "recorded", |q| created_run(q) == 1).await;
        assert_eq!(q.strategy(), Some(strategy), "{name}: the trigger consumed");
        w.barrier(name).await;
        let q = w.get(name).await;
        let st = q.status.clone().unwrap_or_default();
        assert_eq!(
            (st.created_run, st.requested_run),
            (1, 1),
            "{name}: one run"
        );
        assert_eq!(st.last_job_name.as_deref(), Some(job.as_str()), "{name}");
        let records: Vec<i64> = st.runs.iter().map(|r| r.run).collect();
        assert_eq!(records, [1], "{name}: the run recorded once");
        let jobs = w.jobs_of(name).await;
        assert_eq!(jobs.len(), 1, "{name}: no second Job");
        assert_eq!(&jobs[0].name_any(), job, "{name}: the Job of run 1");
    }
    w.wait_event("created-now", "AlreadyRunning").await;
    w.cleanup().await;
}

#[tokio::test]
async fn killing_and_restarting_the_operator_keeps_one_job_per_trigger() {
    let w = World::new("restart").await;
    let op = w.operator();
    for i in 0..6 {
        w.create(qjob(&format!("r{i}"), "now", json!({}))).await;
    }
    // kill it as soon as the first Job exists, likely in the middle of other runs
    w.wait_jobs("r0", 1).await;
    op.kill().await;
    let op = w.operator();
    for i in 0..6 {
        w.wait_qjob(&format!("r{i}"), "ran", |q| created_run(q) == 1)
            .await;
        w.barrier(&format!("r{i}")).await;
        assert_eq!(w.jobs_of(&format!("r{i}")).await.len(), 1, "r{i}");
    }
    op.stop().await;
    w.cleanup().await;
}

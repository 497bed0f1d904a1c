//! Helpers shared by the `reconcile_*` integration tests: an in-process operator per test (with
//! its own monitored id, so parallel tests do not act on each other's namespaces), QuarksJob
//! builders and queries.
#![allow(dead_code)] // each test binary uses a different part

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::{Client, ResourceExt};
use quarks_job::core::api::labels::{LABEL_MONITORED, LABEL_QJOB_NAME, LABEL_QJOB_SERVICE_ACCOUNT};
use quarks_job::core::api::{QuarksJob, QuarksJobStatus, Strategy};
use quarks_job::reconcile::{self, status};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::process::Running;
use crate::support::{self, WAIT, eventually, eventually_some};

pub mod end_to_end;

/// An operator running in-process.
pub struct Operator {
    task: Option<JoinHandle<()>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Operator {
    /// Start the reconciler for `config`.
    pub fn start(client: Client, config: reconcile::Config) -> Operator {
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let task = tokio::spawn(reconcile::run_controller(client, config, shutdown));
        Operator {
            task: Some(task),
            stop: Some(tx),
        }
    }

    /// Graceful shutdown: reconciles in flight finish, then the future returns.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("operator stops")
                .expect("operator task");
        }
    }

    /// Kill it where it stands (a crash).
    pub async fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A test's world: client, a monitored namespace, and the monitored id.
pub struct World {
    pub client: Client,
    pub ns: String,
    pub id: String,
}

impl World {
    /// A fresh monitored namespace with its own monitored id (the CRD applied).
    pub async fn new(prefix: &str) -> World {
        init_logging();
        let client = support::admin_client().await;
        support::ensure_crd(&client).await;
        let id = format!("{prefix}-{}", support::unique());
        let ns = support::test_namespace(
            &client,
            prefix,
            &[
                (LABEL_MONITORED, &id),
                (LABEL_QJOB_SERVICE_ACCOUNT, "default"),
            ],
        )
        .await;
        World { client, ns, id }
    }

    /// The reconciler settings for this world (meltdown 0 unless changed).
    pub fn config(&self) -> reconcile::Config {
        let mut c = reconcile::Config::new(&self.id);
        c.max_workers = 4;
        c.ctx_timeout = Duration::from_secs(30);
        c.meltdown = Duration::ZERO;
        c
    }

    /// Start an operator for this world.
    pub fn operator(&self) -> Operator {
        Operator::start(self.client.clone(), self.config())
    }

    pub fn qjobs(&self) -> Api<QuarksJob> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Create a QuarksJob from JSON (`metadata.name` and `spec`).
    pub async fn create(&self, qjob: Value) -> QuarksJob {
        let mut qjob = qjob;
        qjob["apiVersion"] = json!("quarks.cloudfoundry.org/v1alpha1");
        qjob["kind"] = json!("QuarksJob");
        let q: QuarksJob = serde_json::from_value(qjob).unwrap();
        self.qjobs()
            .create(&PostParams::default(), &q)
            .await
            .expect("create QuarksJob")
    }

    pub async fn get(&self, name: &str) -> QuarksJob {
        self.qjobs().get(name).await.expect("get QuarksJob")
    }

    /// Merge-patch the QuarksJob's spec.
    pub async fn patch_spec(&self, name: &str, spec: Value) -> QuarksJob {
        self.qjobs()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": spec})),
            )
            .await
            .expect("patch QuarksJob")
    }

    pub async fn set_strategy(&self, name: &str, strategy: Strategy) -> QuarksJob {
        self.patch_spec(name, json!({"trigger": {"strategy": strategy}}))
            .await
    }

    /// The Jobs labelled for the QuarksJob `name`.
    pub async fn jobs_of(&self, name: &str) -> Vec<Job> {
        self.jobs()
            .list(&ListParams::default().labels(&format!("{LABEL_QJOB_NAME}={name}")))
            .await
            .expect("list jobs")
            .items
    }

    /// Wait until the QuarksJob `name` has `n` Jobs; return them.
    pub async fn wait_jobs(&self, name: &str, n: usize) -> Vec<Job> {
        eventually_some(WAIT, &format!("{n} Job(s) of QuarksJob {name}"), || async {
            let jobs = self.jobs_of(name).await;
            (jobs.len() == n).then_some(jobs)
        })
        .await
    }

    /// Wait until `check` holds for the QuarksJob `name`; return it.
    pub async fn wait_qjob(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&QuarksJob) -> bool,
    ) -> QuarksJob {
        eventually_some(WAIT, &format!("QuarksJob {name}: {what}"), || async {
            let q = self.qjobs().get_opt(name).await.ok().flatten()?;
            check(&q).then_some(q)
        })
        .await
    }

    /// Wait until the reconciler has seen the current generation of `name` and has no run
    /// pending; return the QuarksJob.
    pub async fn settled(&self, name: &str) -> QuarksJob {
        self.wait_qjob(name, "status caught up with the spec", |q| {
            let st = q.status.clone().unwrap_or_default();
            st.observed_generation == q.metadata.generation && st.requested_run == st.created_run
        })
        .await
    }

    /// Change the spec without changing what runs (bumps the generation), then wait until the
    /// reconciler has processed it: a barrier after which "nothing else happened" can be checked.
    pub async fn barrier(&self, name: &str) -> QuarksJob {
        let q = self.get(name).await;
        let flip = !q
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .is_some_and(|a| a.contains_key("barrier"));
        let ann = if flip {
            json!({"barrier": support::unique()})
        } else {
            json!({"barrier": null})
        };
        self.patch_spec(
            name,
            json!({"template": {"metadata": {"annotations": ann}}}),
        )
        .await;
        self.settled(name).await
    }

    /// The only pod of the Job `job`.
    pub async fn pod_of(&self, job: &str) -> Pod {
        eventually_some(WAIT, &format!("a pod of job {job}"), || async {
            support::pods_of_job(&self.pods(), job)
                .await
                .into_iter()
                .next()
        })
        .await
    }

    /// Let the kubelet stand-in finish the Job's pod with `exit_code`.
    pub async fn finish_job(&self, job: &str, exit_code: i32) -> Pod {
        let pod = self.pod_of(job).await;
        support::kubelet::finish_pod(&self.pods(), &pod.name_any(), exit_code).await
    }

    /// Wait until the Job `job` is gone.
    pub async fn wait_job_gone(&self, job: &str) {
        eventually(WAIT, &format!("job {job} deleted"), || async {
            self.jobs().get_opt(job).await.unwrap().is_none()
        })
        .await;
    }

    /// Reasons of the events recorded about the QuarksJob `name`.
    pub async fn event_reasons(&self, name: &str) -> Vec<String> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let list = events
            .list(&ListParams::default())
            .await
            .expect("list events");
        list.items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .filter_map(|e| e.reason)
            .collect()
    }

    /// Wait for an event with `reason` about `name`.
    pub async fn wait_event(&self, name: &str, reason: &str) {
        eventually(WAIT, &format!("event {reason} on {name}"), || async {
            self.event_reasons(name).await.iter().any(|r| r == reason)
        })
        .await;
    }

    pub async fn cleanup(self) {
        support::delete_namespace(&self.client, &self.ns).await;
    }

    /// Wait until the QuarksJob `name` (read raw: also one the Rust types cannot read) has
    /// condition `Reconciled` with `status`; panic with the log of `op` after [`WAIT`].
    pub async fn wait_reconciled(&self, op: &Running, name: &str, status: &str) -> Condition {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let raw = raw_qjobs(&self.client, &self.ns).get(name).await.unwrap();
            let st: QuarksJobStatus =
                serde_json::from_value(raw.data["status"].clone()).unwrap_or_default();
            if let Some(c) =
                status::get(&st.conditions, status::RECONCILED).filter(|c| c.status == status)
            {
                return c.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: no Reconciled={status} in {st:?}:\n{}",
                op.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// QuarksJobs of `ns` as raw JSON (unchecked by the Rust types).
pub fn raw_qjobs(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<QuarksJob>(&()))
}

/// Create the QuarksJob `object` (`metadata` and `spec`) in `ns` as raw JSON, as
/// `kubectl create --raw` would.
pub async fn create_raw(client: &Client, ns: &str, object: Value) -> Result<(), kube::Error> {
    let mut object = object;
    object["apiVersion"] = json!("quarks.cloudfoundry.org/v1alpha1");
    object["kind"] = json!("QuarksJob");
    raw_qjobs(client, ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(object).unwrap(),
        )
        .await
        .map(drop)
}

/// A QuarksJob with `strategy` and a one-container pod (extra pod spec fields merged in).
pub fn qjob(name: &str, strategy: &str, pod_extra: Value) -> Value {
    let mut pod = json!({
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "busybox", "image": "busybox", "command": ["sleep", "1"]}]
    });
    merge(&mut pod, pod_extra);
    json!({
        "metadata": {"name": name},
        "spec": {"trigger": {"strategy": strategy}, "template": {"spec": {"backoffLimit": 0, "template": {"spec": pod}}}}
    })
}

/// JSON merge (objects merged recursively, everything else replaced).
pub fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The condition `type_` of a QuarksJob.
pub fn condition(
    q: &QuarksJob,
    type_: &str,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    status::get(&q.status.clone().unwrap_or_default().conditions, type_).cloned()
}

/// Whether the condition `type_` is True.
pub fn is_true(q: &QuarksJob, type_: &str) -> bool {
    condition(q, type_).is_some_and(|c| c.status == "True")
}

/// `status.createdRun`.
pub fn created_run(q: &QuarksJob) -> i64 {
    q.status.as_ref().map(|s| s.created_run).unwrap_or(0)
}

/// Operator logs in the test output when `RUST_LOG` is set.
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A pod of the Job `job` other than `not`.
pub async fn eventually_pod_other_than(w: &World, job: &str, not: &str) -> String {
    eventually_some(WAIT, &format!("another pod of job {job}"), || async {
        support::pods_of_job(&w.pods(), job)
            .await
            .into_iter()
            .map(|p| p.name_any())
            .find(|n| n != not)
    })
    .await
}

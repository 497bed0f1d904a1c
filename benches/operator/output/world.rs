//! The world of the output section: its namespace, the QuarksJob, pod and Secret each run uses,
//! the kubelet's status writes, the Secret watch that times every sample, and the bare watcher.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use quarks_job::core::api::QuarksJob;
use quarks_job::core::api::labels::{LABEL_CONTAINER_NAME, LABEL_QJOB_NAME};
use serde_json::{Value, json};

use crate::cluster::{AbortOnDrop, until};

/// The namespace of the section (not monitored by the operator).
pub const OUT_NS: &str = "bench-output";
/// The container with output.
pub const CONTAINER: &str = "busybox";
/// Its output file.
pub const FILE: &str = "output.json";
/// What persist-output logs once its pod watch has listed the pod (`src/persist/wait.rs`).
pub const WATCHING: &str = "its containers' states are known";
/// Pause between a watcher being ready and t0, the same for both watchers, so that t0 does not
/// race the start of the watch request that follows the list.
pub const SETTLE: Duration = Duration::from_millis(200);
/// The longest wait for any one step; past it the sample counts as this.
pub const LIMIT: Duration = Duration::from_secs(60);

/// The output: 8 keys of 128-character values (about 1 KiB).
pub fn output() -> BTreeMap<String, String> {
    (0..8)
        .map(|k| (format!("key{k}"), format!("{k:0>128}")))
        .collect()
}

/// When each Secret of the namespace was first seen with the expected data.
#[derive(Clone, Default)]
pub struct Readable(Arc<Mutex<HashMap<String, Instant>>>);

impl Readable {
    pub fn at(&self, name: &str) -> Option<Instant> {
        self.0.lock().unwrap().get(name).copied()
    }

    /// Watch the namespace's Secrets; resolves once the watch has listed them.
    pub async fn watch(&self, client: &Client, expected: BTreeMap<String, String>) -> AbortOnDrop {
        let seen = self.clone();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), OUT_NS);
        let (ready, listed) = tokio::sync::oneshot::channel();
        let mut ready = Some(ready);
        let task = tokio::spawn(watcher(secrets, watcher::Config::default()).for_each(
            move |event| {
                match event {
                    Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s))
                        if data(&s) == expected =>
                    {
                        seen.0
                            .lock()
                            .unwrap()
                            .entry(s.name_any())
                            .or_insert_with(Instant::now);
                    }
                    Ok(watcher::Event::InitDone) => {
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                    }
                    _ => {}
                }
                futures::future::ready(())
            },
        ));
        listed.await.expect("the Secret watch listed");
        AbortOnDrop(task)
    }

    /// From `t0` until the Secret `name` is seen.
    pub async fn since(&self, t0: Instant, name: &str) -> Duration {
        let at = until(&format!("the Secret {name}"), LIMIT, || {
            self.at(name).is_some()
        })
        .await;
        self.at(name).unwrap_or(at) - t0
    }
}

fn data(s: &Secret) -> BTreeMap<String, String> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// The QuarksJob of run `name`: its container's file becomes the Secret `<name>-q`.
pub fn qjob(name: &str) -> QuarksJob {
    serde_json::from_value(json!({
        "apiVersion": "quarks.cloudfoundry.org/v1alpha1",
        "kind": "QuarksJob",
        "metadata": {"name": name, "namespace": OUT_NS},
        "spec": {
            "trigger": {"strategy": "manual"},
            "output": {"outputMap": {CONTAINER: {FILE: {"name": format!("{name}-q")}}}},
            "template": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": CONTAINER, "image": "busybox"}]
            }}}}
        }
    }))
    .unwrap()
}

/// A job pod of QuarksJob `qjob`: the container plus `output-persist`.
pub fn pod(name: &str, qjob: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {LABEL_QJOB_NAME: qjob}},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": CONTAINER, "image": "busybox"},
            {"name": "output-persist", "image": "quarks-job", "args": ["persist-output"]}
        ]}
    }))
    .unwrap()
}

/// The status a kubelet writes: `output-persist` running, the container running or exited 0.
pub fn status(terminated: bool) -> Value {
    let now = jiff::Timestamp::now().to_string();
    let state = |done: bool| {
        if done {
            json!({"terminated": {"exitCode": 0, "reason": "Completed",
                "startedAt": now, "finishedAt": now}})
        } else {
            json!({"running": {"startedAt": now}})
        }
    };
    let container = |name: &str, image: &str, done: bool| {
        json!({"name": name, "image": image, "imageID": "", "ready": !done,
            "restartCount": 0, "started": !done, "state": state(done)})
    };
    json!({"status": {
        "phase": "Running", "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "startTime": now,
        "containerStatuses": [
            container(CONTAINER, "busybox", terminated),
            container("output-persist", "quarks-job", false),
        ],
    }})
}

pub async fn set_status(pods: &Api<Pod>, name: &str, terminated: bool) {
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(status(terminated)),
    )
    .await
    .expect("patch pod status");
}

/// The Secret persist-output writes for `qjob` (uid `uid`), under another name.
pub fn equivalent_secret(
    name: &str,
    qjob: &str,
    uid: &str,
    data: &BTreeMap<String, String>,
) -> Secret {
    serde_json::from_value::<Secret>(json!({
        "metadata": {
            "name": name,
            "labels": {LABEL_CONTAINER_NAME: CONTAINER, LABEL_QJOB_NAME: qjob},
            "annotations": {},
            "ownerReferences": [{
                "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
                "name": qjob, "uid": uid, "controller": false, "blockOwnerDeletion": false
            }]
        },
        "type": "Opaque",
    }))
    .map(|mut s| {
        s.data = Some(
            data.iter()
                .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        );
        s
    })
    .unwrap()
}

/// The bare analogue of persist-output: watch the pod until the container has terminated, then
/// read and parse its file and create `secret` with that data.
pub async fn watch_and_write(
    client: Client,
    pod_name: String,
    dir: PathBuf,
    mut secret: Secret,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), OUT_NS);
    let config = watcher::Config::default().fields(&format!("metadata.name={pod_name}"));
    let mut events = watcher(pods, config).boxed();
    let mut ready = Some(ready);
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::InitDone) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
            }
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))
                if exited(&pod) == Some(0) =>
            {
                let text = tokio::fs::read_to_string(dir.join(CONTAINER).join(FILE))
                    .await
                    .expect("read the output file");
                let parsed: BTreeMap<String, String> =
                    serde_json::from_str(&text).expect("a flat JSON object");
                secret.data = Some(
                    parsed
                        .into_iter()
                        .map(|(k, v)| (k, ByteString(v.into_bytes())))
                        .collect(),
                );
                Api::<Secret>::namespaced(client, OUT_NS)
                    .create(&PostParams::default(), &secret)
                    .await
                    .expect("bare: create Secret");
                return;
            }
            _ => {}
        }
    }
}

fn exited(pod: &Pod) -> Option<i32> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let status = statuses.iter().find(|s| s.name == CONTAINER)?;
    Some(status.state.as_ref()?.terminated.as_ref()?.exit_code)
}

pub async fn setup(client: &Client) {
    crate::cluster::namespace(client, OUT_NS, json!({})).await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), OUT_NS);
    let deadline = Instant::now() + LIMIT;
    while sas.get_opt("default").await.ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "no default ServiceAccount");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! The test world of the persist-output tests: a namespace with the persist-output
//! ServiceAccount bound to the shipped ClusterRole, pods and QuarksJobs, output files, and the
//! real binary run as that ServiceAccount.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;

use crate::support::WAIT;
use crate::support::kubelet::{self, State};
use crate::support::{
    admin_client, ensure_crd, kubectl, service_account_token, shared, test_namespace,
};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use quarks_job::core::api::QuarksJob;
use serde_json::{Value, json};

pub use quarks_job::core::api::labels::{
    LABEL_QJOB_NAME as LABEL_QJOB, LABEL_SECRET_VERSION as LABEL_VERSION,
};

/// One test's world: a namespace, the persist-output ServiceAccount's kubeconfig, an output dir.
pub struct World {
    pub client: Client,
    pub ns: String,
    pub sa_kubeconfig: PathBuf,
    /// The persist-output ServiceAccount's token (for kubeconfigs through a proxy).
    pub token: String,
    pub out: tempfile::TempDir,
}

fn apply_cluster_role() {
    static APPLIED: Mutex<bool> = Mutex::new(false);
    let mut applied = APPLIED.lock().unwrap();
    if !*applied {
        let file = crate::support::repo_root().join("manifests/persist-output-clusterrole.yaml");
        kubectl(
            &shared().kubeconfig,
            &["apply", "-f", file.to_str().unwrap()],
        )
        .expect("apply the ClusterRole");
        *applied = true;
    }
}

pub async fn world(prefix: &str) -> World {
    let client = admin_client().await;
    ensure_crd(&client).await;
    apply_cluster_role();
    let ns = test_namespace(&client, prefix, &[]).await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "persist-output"}})).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "persist-output"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "qjob-persist-output"},
        "subjects": [{"kind": "ServiceAccount", "name": "persist-output", "namespace": ns}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    // Kubernetes 1.20: the token controller puts the token into a Secret listed in `.secrets`.
    let token = service_account_token(&client, &ns, "persist-output").await;
    let sa_kubeconfig = shared().kubeconfig_for_token(&format!("{ns}-persist-output"), &token);
    World {
        client,
        ns,
        sa_kubeconfig,
        token,
        out: tempfile::tempdir().unwrap(),
    }
}

impl World {
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub async fn qjob(&self, name: &str, output: Option<Value>) -> QuarksJob {
        let mut spec = json!({"trigger": {"strategy": "manual"}, "template": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "busybox", "image": "busybox"}]}}}}});
        if let Some(output) = output {
            spec["output"] = output;
        }
        let q: QuarksJob = serde_json::from_value(json!({
            "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap();
        Api::<QuarksJob>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &q)
            .await
            .unwrap()
    }

    /// A pod of QuarksJob `qjob` with these containers (each `(name, env)`) plus `output-persist`.
    pub async fn pod(&self, name: &str, qjob: &str, containers: &[(&str, Value)]) {
        let mut list: Vec<Value> = containers
            .iter()
            .map(|(c, env)| json!({"name": c, "image": "busybox", "env": env}))
            .collect();
        list.push(
            json!({"name": "output-persist", "image": "quarks-job", "args": ["persist-output"]}),
        );
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {LABEL_QJOB: qjob}},
            "spec": {"restartPolicy": "Never", "containers": list},
        }))
        .unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
    }

    pub fn out_dir(&self, sub: &str) -> PathBuf {
        self.out.path().join(sub)
    }

    /// What a container writes to `/mnt/quarks/<file>`; the sidecar sees `<dir>/<container>/<file>`.
    pub fn write(&self, dir: &Path, container: &str, file: &str, content: &[u8]) {
        std::fs::create_dir_all(dir.join(container)).unwrap();
        std::fs::write(dir.join(container).join(file), content).unwrap();
    }

    pub fn command(&self, pod: &str, dir: &Path, extra: &[&str]) -> tokio::process::Command {
        self.command_with(&self.sa_kubeconfig, pod, dir, extra)
    }

    /// [`World::command`] with another kubeconfig (e.g. through a faulty proxy).
    pub fn command_with(
        &self,
        kubeconfig: &Path,
        pod: &str,
        dir: &Path,
        extra: &[&str],
    ) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_quarks-job"));
        cmd.args(["persist-output", "--output-dir", dir.to_str().unwrap()]);
        if !extra.contains(&"--timeout") {
            cmd.args(["--timeout", "120"]); // a safety net only
        }
        cmd.args(extra)
            .env("POD_NAME", pod)
            .env("NAMESPACE", &self.ns)
            .env("KUBECONFIG", kubeconfig)
            .env("LOG_LEVEL", "info")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    pub async fn run(&self, pod: &str, dir: &Path, extra: &[&str]) -> Output {
        self.run_with(&self.sa_kubeconfig, pod, dir, extra).await
    }

    /// [`World::run`] with another kubeconfig (e.g. through a faulty proxy).
    pub async fn run_with(
        &self,
        kubeconfig: &Path,
        pod: &str,
        dir: &Path,
        extra: &[&str],
    ) -> Output {
        let cmd = self.command_with(kubeconfig, pod, dir, extra).output();
        let out = tokio::time::timeout(WAIT * 2, cmd)
            .await
            .expect("persist-output ended")
            .expect("persist-output ran");
        eprintln!(
            "--- persist-output {pod}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub async fn secret(&self, name: &str) -> Option<Secret> {
        self.secrets().get_opt(name).await.unwrap()
    }

    /// Names of the Secrets persist-output wrote (not the ServiceAccount tokens).
    pub async fn output_secrets(&self) -> BTreeSet<String> {
        let list = self.secrets().list(&ListParams::default()).await.unwrap();
        list.items
            .into_iter()
            .filter(|s| s.type_.as_deref() == Some("Opaque"))
            .map(|s| s.name_any())
            .collect()
    }

    /// The Warning events recorded about the QuarksJob `qjob`, as `(reason, note)`.
    pub async fn warnings(&self, qjob: &str) -> Vec<(String, String)> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(qjob)
                    && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("QuarksJob")
            })
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    pub async fn finish(&self, pod: &str, states: &[(&str, State)]) {
        kubelet::set_containers(&self.pods(), pod, states).await;
    }
}

pub fn data(s: &Secret) -> BTreeMap<String, String> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.0.clone()).unwrap()))
        .collect()
}

pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "persist-output failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "persist-output should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub const HELLO: &[u8] = br#"{"hello": "world"}"#;

//! Integration-test support: one real control plane per test binary, a kube client per test,
//! a namespace per test (so tests run in parallel), and a kubelet stand-in.
#![allow(dead_code, unused_imports)] // each test binary uses a different part of this module

pub mod controlplane;
pub mod deployment;
pub mod faulty_proxy;
pub mod helm;
pub mod hostile;
pub mod kubelet;
pub mod manifests;
pub mod node;
pub mod process;
pub mod tls;
pub mod yaml;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};

pub use controlplane::{ControlPlane, kubectl, unique};

/// How long a test waits for something that must happen: a safety net, never a measurement
/// (no test asserts speed). One value for every test binary.
pub const WAIT: Duration = Duration::from_secs(90);

/// The control plane shared by all tests of this binary, started on first use.
pub fn shared() -> &'static ControlPlane {
    static CP: OnceLock<ControlPlane> = OnceLock::new();
    CP.get_or_init(|| {
        quarks_job::install_crypto_provider();
        ControlPlane::start().unwrap_or_else(|e| panic!("cannot start the test control plane: {e}"))
    })
}

/// A client for a kubeconfig file (a new one per test: a client belongs to the runtime that
/// made it, and each `#[tokio::test]` has its own).
pub async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// An admin client on the shared control plane.
pub async fn admin_client() -> Client {
    client_for(&shared().kubeconfig).await
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh namespace for one test, with the given labels; its `default` ServiceAccount has its
/// token when this returns, so pods can be created at once (Kubernetes 1.20 admission needs it).
pub async fn test_namespace(client: &Client, prefix: &str, labels: &[(&str, &str)]) -> String {
    let name = format!("{prefix}-{}", unique());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": labels.iter().copied().collect::<std::collections::BTreeMap<_, _>>()}
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    service_account_token(client, &name, "default").await;
    name
}

/// A fresh monitored namespace onboarded in one step, as users do it: the onboarding manifest
/// ([`manifests::onboarding`]: labels for monitored id `id`, the output ServiceAccount
/// `qjob-persist-output` with its token Secret and RoleBinding, and the RoleBinding of the
/// operator's account in `operator_ns`) applied with kubectl; returns once pods can be created.
pub async fn monitored_namespace(
    client: &Client,
    prefix: &str,
    id: &str,
    operator_ns: &str,
) -> String {
    let name = format!("{prefix}-{}", unique());
    manifests::apply(
        &shared().kubeconfig,
        &manifests::onboarding(&name, id, operator_ns),
    );
    service_account_token(client, &name, "default").await;
    name
}

/// The token of the ServiceAccount `name` in `namespace`, once Kubernetes 1.20's token controller
/// has put it into a Secret listed in the account's `.secrets`.
pub async fn service_account_token(client: &Client, namespace: &str, name: &str) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), namespace);
    eventually_some(
        Duration::from_secs(60),
        &format!("a token for ServiceAccount {namespace}/{name}"),
        || async {
            let secret_name = sas
                .get_opt(name)
                .await
                .ok()??
                .secrets?
                .into_iter()
                .next()?
                .name?;
            let secret = secrets.get_opt(&secret_name).await.ok()??;
            String::from_utf8(secret.data?.get("token")?.0.clone()).ok()
        },
    )
    .await
}

/// Delete a test namespace (the namespace controller removes what is inside).
pub async fn delete_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::background())
        .await;
}

/// The pods the job controller made for the Job `job` (its `job-name` label); none when the
/// list fails, so that a caller polling for them simply tries again.
pub async fn pods_of_job(pods: &Api<Pod>, job: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .map(|list| list.items)
        .unwrap_or_default()
}

/// Poll `check` every 100 ms until it is true; panic naming `what` after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll `get` until it returns `Some`, and return that.
pub async fn eventually_some<T, F, Fut>(timeout: Duration, what: &str, mut get: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = get().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Apply the QuarksJob CRD with the operator's own code (once per control plane is enough, but
/// it is idempotent).
pub async fn ensure_crd(client: &Client) {
    quarks_job::operator::apply_crd(client.clone(), Duration::from_secs(60))
        .await
        .expect("apply CRD");
}

/// A free port on 127.0.0.1, as a flag value (for the operator's webhook and health ports).
pub fn free_port() -> String {
    controlplane::free_port().expect("a free port").to_string()
}

/// Names of the objects of a list.
pub fn names<K: ResourceExt>(items: &[K]) -> Vec<String> {
    items.iter().map(|o| o.name_any()).collect()
}

/// The value of the sample `series` (a metric name with its labels, exactly as exposed, e.g.
/// `quarks_job_jobs_created_total` or `x_total{webhook="mutate-pods"}`) in a text exposition.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

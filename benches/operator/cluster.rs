//! The measurements on the control plane: the operator's release binary started once, a watch
//! that notes when each Job appears, and the bare kube-rs controller the operator is compared
//! with (a ConfigMap watch that creates a Job for each new ConfigMap).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use kube::{Client, Config, ResourceExt};
use quarks_job::core::api::labels::{LABEL_MONITORED, LABEL_QJOB_NAME, LABEL_QJOB_SERVICE_ACCOUNT};
use serde_json::json;

use crate::{Row, wants};

/// The monitored namespace everything is measured in.
pub const NS: &str = "bench";
const OPERATOR_NS: &str = "quarks-bench";
/// The label of the bare controller's ConfigMaps, and of its Jobs (naming the ConfigMap).
pub const BARE_LABEL: &str = "bench.quarks/bare";

pub async fn client(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

fn free_port() -> u16 {
    crate::controlplane::free_port().expect("a free port")
}

/// `VmRSS` and `VmHWM` of a process, in bytes.
pub fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn ready(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = "GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response.starts_with("HTTP/1.1 200")
}

/// Create the namespace `name` with `labels`.
pub async fn namespace(client: &Client, name: &str, labels: serde_json::Value) {
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels}
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
}

/// When each Job appeared: `q/<QuarksJob>` for the operator's, `b/<ConfigMap>` for the bare
/// controller's.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<HashMap<String, Instant>>>);

impl Seen {
    /// When the Job of `key` was first seen.
    pub fn at(&self, key: &str) -> Option<Instant> {
        self.0.lock().unwrap().get(key).copied()
    }

    /// How many of `keys` were seen.
    pub fn count<'a>(&self, keys: impl IntoIterator<Item = &'a String>) -> usize {
        let seen = self.0.lock().unwrap();
        keys.into_iter().filter(|k| seen.contains_key(*k)).count()
    }

    fn watch(&self, client: &Client) -> tokio::task::JoinHandle<()> {
        let seen = self.clone();
        let jobs: Api<PartialObjectMeta<Job>> = Api::namespaced(client.clone(), NS);
        tokio::spawn(
            watcher(jobs, watcher::Config::default()).for_each(move |event| {
                if let Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) = event {
                    let key = job
                        .labels()
                        .get(LABEL_QJOB_NAME)
                        .map(|q| format!("q/{q}"))
                        .or_else(|| job.labels().get(BARE_LABEL).map(|b| format!("b/{b}")));
                    if let Some(key) = key {
                        seen.0
                            .lock()
                            .unwrap()
                            .entry(key)
                            .or_insert_with(Instant::now);
                    }
                }
                futures::future::ready(())
            }),
        )
    }
}

/// The bare controller: a ConfigMap watch (label [`BARE_LABEL`]) that creates one Job per new
/// ConfigMap, each create in its own task (no queue, no limit).
fn bare_controller(client: &Client) -> tokio::task::JoinHandle<()> {
    let cms: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client.clone(), NS);
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let mut done = std::collections::HashSet::new();
    tokio::spawn(
        watcher(cms, watcher::Config::default().labels(BARE_LABEL)).for_each(move |event| {
            // (a ConfigMap created while the watch was re-listing comes as `InitApply`)
            if let Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) = event
                && done.insert(cm.name_any())
            {
                let (jobs, name) = (jobs.clone(), cm.name_any());
                tokio::spawn(async move {
                    let job: Job = serde_json::from_value(json!({
                        "metadata": {"name": format!("bare-{name}"), "labels": {BARE_LABEL: name}},
                        "spec": {"backoffLimit": 0, "template": {"spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "work", "image": "busybox", "command": ["true"]}]
                        }}}
                    }))
                    .unwrap();
                    // (retried like a controller would: a lost create would stall the burst)
                    for attempt in 1.. {
                        match jobs.create(&PostParams::default(), &job).await {
                            Ok(_) => break,
                            Err(kube::Error::Api(e)) if e.is_already_exists() => break,
                            Err(e) if attempt < 10 => {
                                eprintln!("bench: bare create of a Job failed ({e}), retrying");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            Err(e) => panic!("bare: create Job: {e}"),
                        }
                    }
                });
            }
            futures::future::ready(())
        }),
    )
}

/// Wait until `check` holds, polling every millisecond, for at most `limit`; past it, say so
/// and go on (the sample is then a lower bound: one stuck measurement must not lose the others).
pub async fn until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Instant {
    let deadline = Instant::now() + limit;
    while !check() {
        if Instant::now() >= deadline {
            eprintln!("bench: timed out after {limit:?} waiting for {what}; counted as {limit:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Instant::now()
}

/// The operator process (killed when dropped).
pub struct Operator {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// Its webhook port on 127.0.0.1.
    pub webhook: u16,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_operator(kubeconfig: &Path) -> (Operator, Duration) {
    let health = free_port();
    let webhook = free_port();
    let started = Instant::now();
    // (`QUARKS_BENCH_BIN`: another build of the operator, e.g. the one before a change)
    let binary = std::env::var("QUARKS_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_quarks-job").into());
    let mut command = Command::new(binary);
    command
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .args([
            "--operator-namespace",
            OPERATOR_NS,
            "--monitored-id",
            "bench",
        ])
        .args(["--webhook-server-host", "127.0.0.1"])
        .args(["--webhook-server-port", &webhook.to_string()])
        .args(["--health-port", &health.to_string()])
        .args(["--log-level", "warn"]);
    if let Ok(workers) = std::env::var("QUARKS_BENCH_WORKERS") {
        command.args(["--max-workers", &workers]);
    }
    let child = command
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the operator");
    let operator = Operator {
        pid: child.id(),
        child,
        webhook,
    };
    let deadline = started + Duration::from_secs(120);
    while !ready(health).await {
        assert!(
            Instant::now() < deadline,
            "the operator did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (operator, started.elapsed())
}

/// The sections selected by `BENCH` that run on the control plane.
pub async fn sections(kubeconfig: &Path, runs: usize) -> Vec<(&'static str, Vec<Row>)> {
    let client = client(kubeconfig).await;
    namespace(&client, OPERATOR_NS, json!({})).await;
    namespace(
        &client,
        NS,
        json!({ LABEL_MONITORED: "bench", LABEL_QJOB_SERVICE_ACCOUNT: "default" }),
    )
    .await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sas.get_opt("default").await.ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "no default ServiceAccount");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (operator, start) = start_operator(kubeconfig).await;
    let (idle, _) = memory(operator.pid);
    let seen = Seen::default();
    let _watch = AbortOnDrop(seen.watch(&client));
    let _bare = AbortOnDrop(bare_controller(&client));
    let mut out = Vec::new();
    if wants("trigger") {
        let mut rows = vec![
            Row::time(
                "operator start → ready (CRD applied, certificates made, webhook registered, caches filled)",
                start,
                Duration::from_secs(5),
            ),
            Row::bytes("operator memory when idle (VmRSS)", idle, 50 << 20),
        ];
        rows.extend(crate::trigger::latency(&client, &seen, runs).await);
        out.push(("trigger", rows));
    }
    if wants("burst") {
        let mut rows = crate::trigger::burst(&client, &seen).await;
        let (rss, peak) = memory(operator.pid);
        rows.push(Row::bytes(
            "operator memory after the burst (VmRSS)",
            rss,
            50 << 20,
        ));
        rows.push(Row::bytes(
            "operator peak memory so far (VmHWM)",
            peak,
            64 << 20,
        ));
        out.push(("burst", rows));
    }
    if wants("webhook") {
        out.push((
            "webhook",
            crate::load::rows(&client, OPERATOR_NS, &operator).await,
        ));
    }
    if wants("hostile") {
        out.push((
            "hostile",
            crate::hostile_rows::rows(
                &client,
                OPERATOR_NS,
                NS,
                operator.webhook,
                operator.pid,
                runs,
            )
            .await,
        ));
    }
    if wants("output") {
        out.push((
            "output",
            crate::output::rows(&client, kubeconfig, crate::samples("output")).await,
        ));
    }
    if wants("scale") {
        out.push((
            "scale",
            crate::scale::rows(&client, OPERATOR_NS, &operator, &seen, runs).await,
        ));
    }
    drop(operator);
    out
}

/// Aborts a task when dropped.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

//! Measurements against the real control plane with the operator's release binary.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, Config, ResourceExt};
use quarks_job::core::api::QuarksJob;
use quarks_job::core::api::labels::{LABEL_MONITORED, LABEL_QJOB_NAME, LABEL_QJOB_SERVICE_ACCOUNT};
use serde_json::json;

use crate::{Row, Stats, fmt_duration};

const NS: &str = "bench";
const OPERATOR_NS: &str = "quarks-bench";
const QUARKS_JOBS_IN_CACHE: usize = 500;

async fn client(kubeconfig: &Path) -> Client {
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
fn memory(pid: u32) -> (u64, u64) {
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

async fn namespace(client: &Client, name: &str, labels: serde_json::Value) {
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels}
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
}

fn qjob(name: &str, strategy: &str) -> QuarksJob {
    serde_json::from_value(json!({
        "apiVersion": "quarks.cloudfoundry.org/v1alpha1",
        "kind": "QuarksJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "trigger": {"strategy": strategy},
            "template": {"spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "work", "image": "busybox", "command": ["true"]}]
            }}}}
        }
    }))
    .unwrap()
}

fn pod(name: &str, labelled: bool) -> Pod {
    let labels = if labelled {
        json!({ LABEL_QJOB_NAME: "t0" })
    } else {
        json!({})
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"containers": [{"name": "work", "image": "busybox"}]}
    }))
    .unwrap()
}

/// Wait until `check` holds, polling every millisecond, for at most 60 s.
async fn until(what: &str, mut check: impl FnMut() -> bool) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "bench: timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Instant::now()
}

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Rows for the measurements on the control plane.
pub async fn rows(kubeconfig: &Path, runs: usize) -> Vec<Row> {
    let client = client(kubeconfig).await;
    let mut rows = Vec::new();
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

    let health = free_port();
    let webhook = free_port();
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_quarks-job"))
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
        .args(["--log-level", "warn"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the operator");
    let operator = Operator(child);
    let pid = operator.0.id();
    let deadline = started + Duration::from_secs(120);
    while !ready(health).await {
        assert!(
            Instant::now() < deadline,
            "the operator did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rows.push(Row::time(
        "operator start → ready (CRD applied, certificates made, webhook registered, caches filled)",
        started.elapsed(),
        Duration::from_secs(5),
    ));
    let (idle, _) = memory(pid);
    rows.push(Row::bytes(
        "operator memory when idle (VmRSS)",
        idle,
        64 << 20,
    ));

    // trigger → Job, seen by a watch
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let watch = tokio::spawn({
        let seen = seen.clone();
        watcher(jobs, watcher::Config::default()).for_each(move |event| {
            if let Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) = event
                && let Some(owner) = job.labels().get(LABEL_QJOB_NAME)
            {
                seen.lock()
                    .unwrap()
                    .entry(owner.clone())
                    .or_insert_with(Instant::now);
            }
            futures::future::ready(())
        })
    });
    let qjobs: Api<QuarksJob> = Api::namespaced(client.clone(), NS);
    let mut samples = Vec::new();
    for i in 0..runs {
        let name = format!("t{i}");
        let start = Instant::now();
        qjobs
            .create(&PostParams::default(), &qjob(&name, "now"))
            .await
            .expect("create QuarksJob");
        let at = until(&format!("the Job of {name}"), || {
            seen.lock().unwrap().contains_key(&name)
        })
        .await;
        samples.push(at - start);
    }
    watch.abort();
    let trigger = Stats::of(samples);
    rows.push(Row::time(
        "trigger → Job, p50",
        trigger.p50,
        Duration::from_secs(1),
    ));
    rows.push(Row::time(
        "trigger → Job, p95",
        trigger.p95,
        Duration::from_secs(2),
    ));

    // pod admission through the webhook, against a pod it is not called for
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..runs.max(20) {
        for (labelled, samples) in [(true, &mut with), (false, &mut without)] {
            let start = Instant::now();
            let created = pods
                .create(&dry, &pod(&format!("p{i}"), labelled))
                .await
                .expect("pod create (dry run)");
            samples.push(start.elapsed());
            if labelled {
                let mutated = created
                    .spec
                    .and_then(|s| s.volumes)
                    .is_some_and(|v| v.iter().any(|v| v.name == "output-work"));
                assert!(mutated, "the webhook did not add the output volume");
            }
        }
    }
    let (with, without) = (Stats::of(with), Stats::of(without));
    rows.push(Row::time(
        format!(
            "pod admission with the mutating webhook, p50 (without: {})",
            fmt_duration(without.p50)
        ),
        with.p50,
        without.p50 + Duration::from_millis(10),
    ));
    rows.push(Row::time(
        "pod admission with the mutating webhook, max",
        with.max,
        Duration::from_millis(100),
    ));

    // memory with many QuarksJobs in the caches
    for i in 0..QUARKS_JOBS_IN_CACHE {
        qjobs
            .create(&PostParams::default(), &qjob(&format!("m{i}"), "manual"))
            .await
            .expect("create QuarksJob");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss, peak) = memory(pid);
    rows.push(Row::bytes(
        format!("operator memory with {QUARKS_JOBS_IN_CACHE} QuarksJobs (VmRSS)"),
        rss,
        96 << 20,
    ));
    rows.push(Row::bytes("operator peak memory (VmHWM)", peak, 128 << 20));
    // (last: the adversarial bodies raise the peak memory measured above)
    rows.extend(
        crate::hostile_rows::rows(&client, OPERATOR_NS, NS, webhook, pid, runs, without.p50).await,
    );
    drop(operator);
    let size = std::fs::metadata(env!("CARGO_BIN_EXE_quarks-job"))
        .map(|m| m.len())
        .unwrap_or(0);
    rows.push(Row::bytes("release binary size", size, 64 << 20));
    rows
}

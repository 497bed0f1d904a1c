//! Output path (issue 12 goal 5): a container terminates → its output is a readable Secret.
//!
//! No kubelet runs on the bench's control plane, so the bench plays it, as the persist-output
//! tests do: it creates the pod, writes the container's output file into a temp dir standing in
//! for `/mnt/quarks`, and marks the container terminated through `pods/status`. Per run, in a
//! rotating order:
//! - quarks-job: the release binary's `persist-output` as a process (as in production, with its
//!   default log level), started while the container still runs; once it logs that its pod watch
//!   has listed the pod, t0 is the status patch and the sample ends when a Secret watch sees the
//!   Secret with the expected data;
//! - the bare watcher, the same work without quarks-job: a kube-rs watch on the pod that, seeing
//!   the container terminated, reads and parses the file and creates the Secret; same t0, same end;
//! - the floor: the apiserver's own write, a bare create of an equivalent Secret (same data,
//!   labels and owner reference) until the same Secret watch sees it.
//!
//! Everything lives in a namespace the operator does not monitor, so the running operator does
//! not take part.

mod world;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use quarks_job::core::api::QuarksJob;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::{Row, Stats, fmt_duration};
use world::{
    CONTAINER, FILE, LIMIT, OUT_NS, Readable, SETTLE, WATCHING, equivalent_secret, output, pod,
    qjob, set_status, setup, watch_and_write,
};

/// What one run shares.
struct Run<'a> {
    client: &'a Client,
    /// The bare watcher's own client (persist-output has its own connection too).
    bare: &'a Client,
    kubeconfig: &'a Path,
    readable: &'a Readable,
    out: &'a Path,
    name: String,
    uid: String,
}

impl Run<'_> {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), OUT_NS)
    }

    /// A running pod `pod` whose container has written its file; returns the output dir.
    async fn running_pod(&self, pod_name: &str) -> PathBuf {
        let pods = self.pods();
        pods.create(&PostParams::default(), &pod(pod_name, &self.name))
            .await
            .expect("create pod");
        set_status(&pods, pod_name, false).await;
        let dir = self.out.join(pod_name);
        std::fs::create_dir_all(dir.join(CONTAINER)).expect("output dir");
        let text = serde_json::to_string(&output()).unwrap();
        std::fs::write(dir.join(CONTAINER).join(FILE), text).expect("output file");
        dir
    }

    /// t0 (the status patch) → the Secret `secret` is readable; and the patch alone.
    async fn terminate(&self, pod_name: &str, secret: &str) -> (Duration, Duration) {
        let t0 = Instant::now();
        set_status(&self.pods(), pod_name, true).await;
        let patched = t0.elapsed();
        (self.readable.since(t0, secret).await, patched)
    }

    /// The floor: create an equivalent Secret → readable.
    async fn floor(&self) -> Duration {
        let secret = format!("{}-f", self.name);
        let body = equivalent_secret(&secret, &self.name, &self.uid, &output());
        let api: Api<Secret> = Api::namespaced(self.bare.clone(), OUT_NS);
        let t0 = Instant::now();
        api.create(&PostParams::default(), &body)
            .await
            .expect("create Secret");
        self.readable.since(t0, &secret).await
    }

    /// quarks-job: (container terminated → Secret readable, the patch alone, process start →
    /// watching).
    async fn persist(&self) -> (Duration, Duration, Duration) {
        let pod_name = format!("{}-q", self.name);
        let dir = self.running_pod(&pod_name).await;
        let binary = std::env::var("QUARKS_BENCH_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_quarks-job").into());
        let started = Instant::now();
        let mut child = tokio::process::Command::new(binary)
            .args(["persist-output", "--output-dir", dir.to_str().unwrap()])
            .args(["--timeout", "120"]) // a safety net only
            .env("POD_NAME", &pod_name)
            .env("NAMESPACE", OUT_NS)
            .env("KUBECONFIG", self.kubeconfig)
            .env_remove("RUST_LOG")
            .env_remove("LOG_LEVEL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start persist-output");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = Vec::new();
        let watching = tokio::time::timeout(LIMIT, async {
            while let Some(line) = lines.next_line().await.expect("persist-output's stderr") {
                let ready = line.contains(WATCHING);
                log.push(line);
                if ready {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            watching == Ok(true),
            "persist-output did not start watching its pod:\n{}",
            log.join("\n")
        );
        let startup = started.elapsed();
        let drain = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                log.push(line);
            }
            log
        });
        tokio::time::sleep(SETTLE).await;
        let secret = format!("{}-q", self.name);
        let (latency, patched) = self.terminate(&pod_name, &secret).await;
        let ended = tokio::time::timeout(LIMIT, child.wait())
            .await
            .expect("persist-output ended")
            .expect("persist-output ran");
        let mut summary = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut summary)
            .await
            .expect("persist-output's stdout");
        let log = drain.await.unwrap_or_default();
        assert!(
            ended.success() && summary.contains(&format!("'{secret}' created")),
            "persist-output: {ended}, {summary}\n{}",
            log.join("\n")
        );
        (latency, patched, startup)
    }

    /// The bare watcher: (container terminated → Secret readable, the patch alone).
    async fn bare_watcher(&self) -> (Duration, Duration) {
        let pod_name = format!("{}-b", self.name);
        let dir = self.running_pod(&pod_name).await;
        let secret = format!("{}-b", self.name);
        let body = equivalent_secret(&secret, &self.name, &self.uid, &BTreeMap::new());
        let (ready, listed) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(watch_and_write(
            self.bare.clone(),
            pod_name.clone(),
            dir,
            body,
            ready,
        ));
        tokio::time::timeout(LIMIT, listed)
            .await
            .expect("the bare watcher listed its pod")
            .expect("the bare watcher runs");
        tokio::time::sleep(SETTLE).await;
        let measured = self.terminate(&pod_name, &secret).await;
        tokio::time::timeout(LIMIT, task)
            .await
            .expect("the bare watcher ended")
            .expect("the bare watcher");
        measured
    }
}

fn p50_p95(s: &Stats) -> String {
    format!("{} / {}", fmt_duration(s.p50), fmt_duration(s.p95))
}

/// The rows of the section: `runs` runs, each of the three in a rotating order.
pub async fn rows(client: &Client, kubeconfig: &Path, runs: usize) -> Vec<Row> {
    setup(client).await;
    let bare = crate::cluster::client(kubeconfig).await;
    let readable = Readable::default();
    let _watch = readable.watch(client, output()).await;
    let out = tempfile::tempdir().expect("temp dir");
    let qjobs: Api<QuarksJob> = Api::namespaced(client.clone(), OUT_NS);
    let (mut floor, mut quarks, mut bare_watch) = (Vec::new(), Vec::new(), Vec::new());
    let (mut patches, mut startup) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let name = format!("out-{i}");
        let created = qjobs
            .create(&PostParams::default(), &qjob(&name))
            .await
            .expect("create QuarksJob");
        let run = Run {
            client,
            bare: &bare,
            kubeconfig,
            readable: &readable,
            out: out.path(),
            uid: created.uid().expect("uid"),
            name,
        };
        for step in 0..3 {
            match (i + step) % 3 {
                0 => floor.push(run.floor().await),
                1 => {
                    let (latency, patched, started) = run.persist().await;
                    quarks.push(latency);
                    patches.push(patched);
                    startup.push(started);
                }
                _ => {
                    let (latency, patched) = run.bare_watcher().await;
                    bare_watch.push(latency);
                    patches.push(patched);
                }
            }
        }
    }
    // the namespace goes with its pods, Secrets and QuarksJobs (not awaited)
    let _ = Api::<Namespace>::all(client.clone())
        .delete(OUT_NS, &DeleteParams::default())
        .await;
    let (floor, quarks, bare_watch) = (Stats::of(floor), Stats::of(quarks), Stats::of(bare_watch));
    let mut against_watcher = Row::slower(
        format!(
            "container terminated → Secret readable, p50 (n={runs}); bare: a pod watch that reads \
             the file and creates the Secret"
        ),
        bare_watch.p50,
        quarks.p50,
        2.0,
    );
    against_watcher.target = "≤ 2× (proposed; the issue gives no ratio)".into();
    vec![
        Row::compared(
            format!(
                "container terminated → Secret readable, p50 (n={runs}); bare: the apiserver's \
                 write (create an equal Secret → readable)"
            ),
            floor.p50,
            quarks.p50,
            "no goal beyond the floor",
        ),
        Row::compared(
            format!("same, p95 (n={runs})"),
            floor.p95,
            quarks.p95,
            "no goal beyond the floor",
        ),
        against_watcher,
        Row::compared(
            format!("same, p95 (n={runs}), against the bare watcher"),
            bare_watch.p95,
            quarks.p95,
            "—",
        ),
        Row::info(
            "of which the pod-status patch itself (t0 of both watchers), p50 / p95",
            p50_p95(&Stats::of(patches)),
        ),
        Row::info(
            "persist-output process start → watching its pod (connect, get pod and QuarksJob, \
             list), p50 / p95; before t0, not in the rows above",
            p50_p95(&Stats::of(startup)),
        ),
    ]
}

//! The operator binary runs the reconciler and shuts down gracefully on SIGTERM.

mod reconcile_helpers;
mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use quarks_job::api::Strategy;
use reconcile_helpers::{World, created_run, qjob};
use serde_json::json;

/// A plain HTTP/1.1 GET over a TCP socket (the health port has no TLS).
async fn reqwest_free_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn the_binary_reconciles_until_sigterm() {
    let w = World::new("binary").await;
    let kubeconfig = support::shared().kubeconfig.clone();
    let (webhook_port, health_port) = (support::free_port(), support::free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_quarks-job"))
        .args([
            "--webhook-server-host",
            "127.0.0.1",
            "--webhook-server-port",
            &webhook_port,
            "--health-port",
            &health_port,
            "--operator-namespace",
            &w.ns,
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--monitored-id",
            &w.id,
            "--log-level",
            "info",
            "--max-workers",
            "2",
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start quarks-job");
    w.create(qjob("via-binary", "now", json!({}))).await;
    let q = w
        .wait_qjob("via-binary", "ran", |q| created_run(q) == 1)
        .await;
    assert_eq!(q.strategy(), Some(Strategy::Manual));
    let job = w.wait_jobs("via-binary", 1).await.remove(0);
    let shown = support::kubectl(
        &kubeconfig,
        &[
            "get",
            "qjob",
            "-n",
            &w.ns,
            "via-binary",
            "-o",
            "jsonpath={.status.lastJobName}",
        ],
    )
    .unwrap();
    assert_eq!(shown, kube::ResourceExt::name_any(&job));

    // the binary's webhook mutated the pod the job controller created
    let pod = w.pod_of(&kube::ResourceExt::name_any(&job)).await;
    let spec = pod.spec.unwrap();
    assert!(
        spec.volumes
            .iter()
            .flatten()
            .any(|v| v.name.starts_with("output-") && v.empty_dir.is_some()),
        "pod not mutated: {:?}",
        spec.volumes
    );
    // and the health port says ready
    let ready = reqwest_free_get(&format!("127.0.0.1:{health_port}"), "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");

    // SIGTERM: graceful shutdown, exit code 0
    let pid = child.id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                use std::io::Read;
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .unwrap();
                return (status, stderr);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "quarks-job did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    let (status, stderr) = status;
    assert!(status.success(), "exit {status:?}\n{stderr}");
    assert!(
        stderr.contains(&format!("monitoring namespaces labeled with '{}'", w.id)),
        "{stderr}"
    );
    assert!(
        stderr.contains("Received SIGTERM") && stderr.contains("reconciler stopped"),
        "{stderr}"
    );
    // Jobs are only created once the webhook serves, so their pods are always mutated
    let registered = stderr
        .find("Registered webhook configurations")
        .expect("registered");
    let started = stderr
        .find("Webhook is serving; starting the reconciler")
        .expect("reconciler started");
    assert!(registered < started, "{stderr}");
    w.cleanup().await;
}

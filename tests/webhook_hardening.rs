//! The operator binary's webhook against hostile clients, on the real control plane: the ports
//! listen only where `--webhook-server-host` says; the TLS port opens only once the webhook can
//! answer; 1,000 connections held open with partial requests do not keep real admissions (pods
//! created through the apiserver) from being answered; and the largest bodies, built to cost
//! the most memory, keep the process under the Deployment's memory limit. No timing assertions:
//! the latency with held connections is a `make bench` figure.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, PostParams};
use quarks_job::core::api::QuarksJob;
use quarks_job::core::api::labels::OUTPUT_PERSIST_CONTAINER;
use serde_json::json;
use support::WAIT;
use support::hostile::{self, adversarial_bodies, hold_slow_connections, peak_memory};
use support::process::{Operator, Running};
use support::{admin_client, eventually, shared, unique};

/// The Deployment's memory limit (manifests/deployment.yaml, the chart's `resources`).
const MEMORY_LIMIT: u64 = 256 << 20;

/// An operator binary (admin kubeconfig) with monitored id `id`, its operator namespace, and its
/// webhook's address; ready.
struct Started {
    running: Running,
    op_ns: String,
    webhook: SocketAddr,
}

async fn operator(id: &str, extra: &[&str]) -> Started {
    let client = admin_client().await;
    let op_ns = support::test_namespace(&client, "hard-op", &[]).await;
    let mut op = Operator::out_of_cluster(&shared().kubeconfig, &op_ns, id);
    op.cmd.arg("--leader-election=false").args(extra);
    let webhook = op.webhook().parse().unwrap();
    let running = op.start();
    Started {
        running,
        op_ns,
        webhook,
    }
}

/// The webhook's CA (PEM), from its certificate Secret.
async fn ca(op_ns: &str) -> String {
    let secrets: Api<Secret> = Api::namespaced(admin_client().await, op_ns);
    let secret = secrets.get("quarks-job-webhook-cert").await.unwrap();
    String::from_utf8(secret.data.unwrap()["ca.crt"].0.clone()).unwrap()
}

fn refused(addr: &str) -> bool {
    matches!(
        std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(5)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ports_listen_only_on_the_webhook_server_host() {
    let id = format!("bind-{}", unique());
    let op_ns = support::test_namespace(&admin_client().await, "hard-bind", &[]).await;
    // (out_of_cluster passes --webhook-server-host 127.0.0.1)
    let mut op = Operator::out_of_cluster(&shared().kubeconfig, &op_ns, &id);
    op.cmd.arg("--leader-election=false");
    let addresses = [op.webhook().to_string(), op.health().to_string()];
    let running = op.start();
    // 127.0.0.2 is loopback too: a port bound to 0.0.0.0 would answer there
    for address in &addresses {
        assert!(std::net::TcpStream::connect(address).is_ok(), "{address}");
        let other = address.replace("127.0.0.1", "127.0.0.2");
        assert!(refused(&other), "{other} answered");
    }
    let _ = running.terminate();
    // asked for explicitly: every address
    let mut op = Operator::out_of_cluster(&shared().kubeconfig, &op_ns, &id);
    op.cmd
        .args(["--leader-election=false", "--bind-address", "0.0.0.0"]);
    let addresses = [op.webhook().to_string(), op.health().to_string()];
    let running = op.start();
    for address in &addresses {
        let other = address.replace("127.0.0.1", "127.0.0.2");
        assert!(std::net::TcpStream::connect(&other).is_ok(), "{other}");
    }
    let _ = running.terminate();
}

/// Until its caches are filled the webhook cannot answer, so its port must refuse connections
/// (the apiserver then fails at once) rather than accept them and stay silent (the apiserver then
/// waits its full timeout). The operator runs with an account that may register the webhook but
/// not list what the caches need, so they never fill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_port_refuses_connections_until_the_webhook_can_answer() {
    let admin = admin_client().await;
    let kc = shared().kubeconfig.clone();
    let op_ns = support::test_namespace(&admin, "hard-nocache", &[]).await;
    let account = "registers-only";
    support::manifests::apply(
        &kc,
        &format!(
            r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {account}, namespace: {op_ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {op_ns}-{account}}}
rules:
  - apiGroups: ["admissionregistration.k8s.io"]
    resources: ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"]
    verbs: ["create", "patch", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {op_ns}-{account}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {op_ns}-{account}}}
subjects: [{{kind: ServiceAccount, name: {account}, namespace: {op_ns}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {account}, namespace: {op_ns}}}
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get", "create", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {account}, namespace: {op_ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {account}}}
subjects: [{{kind: ServiceAccount, name: {account}, namespace: {op_ns}}}]
"#
        ),
    );
    let token = support::service_account_token(&admin, &op_ns, account).await;
    let op_kc = shared().kubeconfig_for_token(&format!("{op_ns}-{account}"), &token);
    let mut op = Operator::out_of_cluster(&op_kc, &op_ns, &format!("nocache-{}", unique()));
    op.cmd
        .args(["--leader-election=false", "--apply-crd=false"]);
    let (webhook, health) = (op.webhook().to_string(), op.health().to_string());
    let mut running = Running::start(op.cmd);
    running.wait_for_log("Registered webhook configurations", WAIT);
    for _ in 0..20 {
        assert!(
            refused(&webhook),
            "the webhook port accepted a connection before the webhook could answer:\n{}",
            running.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let readyz = support::process::http_get(&health, "/readyz").unwrap_or_default();
    assert!(
        readyz.starts_with("HTTP/1.1 503") && readyz.contains("webhook caches"),
        "{readyz}"
    );
    let _ = running.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admissions_are_answered_while_1000_connections_hang() {
    // the held connections and this test's own: above the default soft limit of 1024
    raise_open_files_limit();
    let admin = admin_client().await;
    let id = format!("slow-{}", unique());
    let started = operator(&id, &[]).await;
    let ns = support::monitored_namespace(&admin, "hard-slow", &id, &started.op_ns).await;
    // a QuarksJob with output, in the webhook's cache
    let qjob: QuarksJob = serde_json::from_value(json!({
        "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
        "metadata": {"name": "q"},
        "spec": {"trigger": {"strategy": "manual"},
                 "output": {"outputMap": {"c": {"o.json": {"name": "out"}}}},
                 "template": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "busybox"}]}}}}}
    }))
    .unwrap();
    Api::<QuarksJob>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &qjob)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"generateName": "p-", "labels": {"quarks.cloudfoundry.org/qjob-name": "q"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    let mutated = |p: &Pod| {
        p.spec.as_ref().is_some_and(|s| {
            s.containers
                .iter()
                .any(|c| c.name == OUTPUT_PERSIST_CONTAINER)
        })
    };
    // (the QuarksJob reached the cache)
    eventually(WAIT, "a first mutated pod", || async {
        pods.create(&dry, &pod).await.is_ok_and(|p| mutated(&p))
    })
    .await;

    let tls = hostile::connector(&ca(&started.op_ns).await);
    let mut held = hold_slow_connections(started.webhook, 1000, &tls).await;
    assert_eq!(held.len(), 1000);
    for i in 0..20 {
        let created = pods
            .create(&dry, &pod)
            .await
            .unwrap_or_else(|e| panic!("admission {i} with 1000 connections held: {e}"));
        assert!(mutated(&created), "admission {i}: not mutated");
    }
    // the held connections time out (TLS handshake, request headers: 10 s each)
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut closed = 0;
    while closed < 1000 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        closed = held.closed_by_the_server().await;
    }
    assert_eq!(closed, 1000);
    let (_, log) = started.running.stop();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_adversarial_bodies_stay_under_the_memory_limit() {
    let id = format!("mem-{}", unique());
    let started = operator(&id, &[]).await;
    let tls = hostile::connector(&ca(&started.op_ns).await);
    let pid = started.running.pid();
    let before = peak_memory(pid);
    // each body 4 times at once, more than the body budget lets in at a time
    for (name, body) in adversarial_bodies("ns") {
        let sends: Vec<_> = (0..4)
            .map(|_| {
                let (tls, body) = (tls.clone(), body.clone());
                tokio::spawn(async move {
                    hostile::post(started.webhook, &tls, "/mutate-pods", body).await
                })
            })
            .collect();
        for send in sends {
            let status = send
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                [200, 400, 413].contains(&status),
                "{name}: answered {status}"
            );
        }
        let peak = peak_memory(pid);
        eprintln!("--- {name}: peak resident memory {} MiB", peak >> 20);
        assert!(
            peak < MEMORY_LIMIT,
            "{name}: peak resident memory {} MiB (before: {} MiB), over the limit of {} MiB",
            peak >> 20,
            before >> 20,
            MEMORY_LIMIT >> 20
        );
    }
    let _ = started.running.terminate();
}

fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < 4096 {
            limit.rlim_cur = limit.rlim_max.min(8192);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

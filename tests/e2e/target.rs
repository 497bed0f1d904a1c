//! Where the end-to-end suite runs — the one seam between the two ways of running it:
//!
//! * **local** (default, CI): the test's own control plane (`support::shared()`), the shipped
//!   manifests applied with `kubectl apply -k manifests/`, the operator binary started as a
//!   separate process with the token of its ServiceAccount `quarks-job/quarks-job` (bound to the
//!   shipped RBAC, not an admin), its webhook registered by URL on 127.0.0.1; no kubelet runs, so
//!   the tests play it ([`super::kubelet`]).
//! * **an existing cluster** (`QUARKS_E2E_KUBECONFIG=<file>`, e.g. `make e2e-kind`): nothing is
//!   started or installed; the operator must already be deployed there (`make deploy`), and real
//!   kubelets run the pods. `QUARKS_E2E_MONITORED_ID` names the monitored id of that
//!   deployment (default `default`).
//!
//! Everything else — applying the examples, every assertion — is the same in both and goes
//! through `kubectl`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::OnceCell;

use crate::support::manifests::{find, manifests_dir, onboarding, rendered};
use crate::support::process::{Operator, Running};
use crate::support::{self, kubectl};

/// The environment variable that points the suite at an existing cluster.
pub const KUBECONFIG_ENV: &str = "QUARKS_E2E_KUBECONFIG";
/// The monitored id of the operator deployed there.
pub const MONITORED_ID_ENV: &str = "QUARKS_E2E_MONITORED_ID";
/// The operator's namespace in `manifests/`.
const OPERATOR_NS: &str = "quarks-job";

/// The cluster the suite drives.
pub struct Target {
    /// What `kubectl` uses (the local control plane's admin, or the given kubeconfig).
    pub kubeconfig: PathBuf,
    /// The monitored id to label test namespaces with.
    pub monitored_id: String,
    /// Safety net of every wait (no assertion is about speed). Real pods pull images and sleep,
    /// and the deployed operator keeps the default 60 s `--meltdown-duration`.
    pub wait: Duration,
    /// The operator process, when the suite started it (local only).
    operator: Option<Mutex<Running>>,
}

impl Target {
    /// The target of this test binary, set up on first use.
    pub async fn get() -> &'static Target {
        static TARGET: OnceCell<Target> = OnceCell::const_new();
        TARGET
            .get_or_init(|| async {
                match std::env::var_os(KUBECONFIG_ENV) {
                    Some(kc) => Target::existing(PathBuf::from(kc)),
                    None => Target::local().await,
                }
            })
            .await
    }

    /// True when the tests must play the kubelet.
    pub fn plays_kubelet(&self) -> bool {
        self.operator.is_some()
    }

    /// The operator's log so far (local only), for failure messages.
    pub fn operator_log(&self) -> String {
        match &self.operator {
            Some(op) => op.lock().unwrap().stderr(),
            None => {
                "(the operator runs in the cluster: kubectl logs -n quarks-job deploy/quarks-job)"
                    .into()
            }
        }
    }

    fn existing(kubeconfig: PathBuf) -> Target {
        kubectl(&kubeconfig, &["version", "--request-timeout=10s"])
            .unwrap_or_else(|e| panic!("{KUBECONFIG_ENV}={}: {e}", kubeconfig.display()));
        Target {
            kubeconfig,
            monitored_id: std::env::var(MONITORED_ID_ENV).unwrap_or_else(|_| "default".into()),
            wait: Duration::from_secs(300),
            operator: None,
        }
    }

    async fn local() -> Target {
        let cp = support::shared();
        let admin = cp.kubeconfig.clone();
        // kubectl needs the CRD established before it can map the objects of the same apply
        // that use it: there are none in manifests/, so one apply is enough
        kubectl(&admin, &["apply", "-k", manifests_dir().to_str().unwrap()])
            .unwrap_or_else(|e| panic!("kubectl apply -k manifests/: {e}"));
        let client = support::admin_client().await;
        let token = support::service_account_token(&client, OPERATOR_NS, "quarks-job").await;
        let op_kc = cp.kubeconfig_for_token("e2e-operator", &token);
        let denied = kubectl(&op_kc, &["get", "nodes"]).unwrap_err();
        assert!(
            denied.contains("forbidden"),
            "not the restricted account: {denied}"
        );

        // the Deployment's settings, as a user gets them; then what running it outside the
        // cluster needs (webhook by URL on 127.0.0.1, free ports, the token's kubeconfig)
        let env = deployment_env(&rendered());
        let monitored_id = env
            .iter()
            .find(|(k, _)| k == "MONITORED_ID")
            .map(|(_, v)| v.clone())
            .expect("MONITORED_ID in the Deployment");
        let mut op = Operator::out_of_cluster(&op_kc, OPERATOR_NS, &monitored_id);
        op.cmd.envs(env);
        // a short re-run window instead of the default 60 s, to keep CI short (a documented flag)
        op.cmd
            .args(["--meltdown-duration", "3", "--log-level", "debug"]);
        let running = op.start();
        Target {
            kubeconfig: admin,
            monitored_id,
            wait: Duration::from_secs(120),
            operator: Some(Mutex::new(running)),
        }
    }

    /// A fresh monitored namespace, onboarded as users do it: `manifests/staging-namespace.yaml`
    /// with another name (and this target's monitored id), so it has the output ServiceAccount
    /// with its token Secret and RoleBinding, and the operator's RoleBinding, exactly like
    /// `staging`.
    pub fn namespace(&'static self, prefix: &str) -> Ns {
        let name = format!("{prefix}-{}", support::unique());
        let yaml = onboarding(&name, &self.monitored_id, OPERATOR_NS);
        crate::support::manifests::apply(&self.kubeconfig, &yaml);
        let ns = Ns { target: self, name };
        // pods can only be created once the namespace's `default` ServiceAccount exists
        let start = std::time::Instant::now();
        while let Err(e) = ns.kubectl(&["get", "serviceaccount", "default", "-o", "name"]) {
            assert!(
                start.elapsed() < self.wait,
                "no default ServiceAccount in {}: {e}",
                ns.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        ns
    }
}

/// The literal environment of the Deployment's container (`valueFrom` entries are what running
/// outside the cluster replaces: the operator namespace is passed as a flag).
pub fn deployment_env(objects: &[Value]) -> Vec<(String, String)> {
    let deployment = find(objects, "Deployment", "quarks-job");
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env of the Deployment")
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// One test's namespace, driven with `kubectl`.
pub struct Ns {
    pub target: &'static Target,
    pub name: String,
}

impl Ns {
    /// `kubectl -n <ns> <args>`: Ok(stdout), or Err(stderr).
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        kubectl(&self.target.kubeconfig, &all)
    }

    /// `kubectl apply -f <file>`; panics on failure and on any warning (the webhook warns about
    /// fields Kubernetes ignores).
    pub fn apply(&self, file: &Path) {
        let out = std::process::Command::new("kubectl")
            .arg(format!("--kubeconfig={}", self.target.kubeconfig.display()))
            .args(["-n", &self.name, "apply", "-f"])
            .arg(file)
            .output()
            .expect("run kubectl");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "kubectl apply -f {}: {stderr}",
            file.display()
        );
        assert!(
            stderr.trim().is_empty(),
            "kubectl apply -f {} warned: {stderr}",
            file.display()
        );
    }

    /// `kubectl get <kind> <name> -o jsonpath=<path>`; None when the object does not exist.
    pub fn get(&self, kind: &str, name: &str, jsonpath: &str) -> Option<String> {
        match self.kubectl(&["get", kind, name, "-o", &format!("jsonpath={jsonpath}")]) {
            Ok(out) => Some(out),
            Err(e) if e.contains("NotFound") => None,
            Err(e) => panic!("kubectl get {kind} {name}: {e}"),
        }
    }

    /// Names of the objects of `kind` with the label selector `selector`.
    pub fn names(&self, kind: &str, selector: &str) -> Vec<String> {
        self.kubectl(&[
            "get",
            kind,
            "-l",
            selector,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .unwrap_or_else(|e| panic!("kubectl get {kind} -l {selector}: {e}"))
        .split_whitespace()
        .map(String::from)
        .collect()
    }

    /// Wait until `check` holds; panic naming `what`, with the operator's log, otherwise.
    pub async fn wait(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + self.target.wait;
        while !check() {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out after {:?} in namespace {} waiting for: {what}\n--- operator log:\n{}",
                    self.target.wait,
                    self.name,
                    self.target.operator_log()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Delete the namespace (the namespace controller removes what is inside).
    pub fn delete(self) {
        let _ = kubectl(
            &self.target.kubeconfig,
            &["delete", "namespace", &self.name, "--wait=false"],
        );
    }
}

//! The cluster the end-to-end suite drives: always a real one, with real pods.
//!
//! `QUARKS_E2E_KUBECONFIG=<file>` names it; the operator must already be deployed there
//! (`make deploy`), and `QUARKS_E2E_MONITORED_ID` names that deployment's monitored id (default
//! `default`). `make e2e-cluster` (the node of `hack/cluster.sh`) and `make e2e-kind` set both;
//! nothing else differs between them. Without the variable the suite's cluster cases fail with
//! what to run: there is no stand-in to fall back to.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::manifests::onboarding;
use crate::support::{self, kubectl, node};

/// The environment variable that points the suite at a cluster.
pub const KUBECONFIG_ENV: &str = "QUARKS_E2E_KUBECONFIG";
/// The monitored id of the operator deployed there.
pub const MONITORED_ID_ENV: &str = "QUARKS_E2E_MONITORED_ID";
/// The operator's namespace, with `make deploy` (kustomize and Helm alike).
pub const OPERATOR_NS: &str = "quarks-job";
/// The label of the operator's pods, with `make deploy` (kustomize and Helm alike).
pub const OPERATOR_SELECTOR: &str = "app.kubernetes.io/name=quarks-job";

/// The cluster the suite drives.
pub struct Target {
    pub kubeconfig: PathBuf,
    /// The monitored id to label test namespaces with.
    pub monitored_id: String,
    /// Safety net of every wait (no assertion is about speed): real pods pull images and run
    /// the examples' `sleep`s, and the deployed operator keeps the default 60 s
    /// `--meltdown-duration`.
    pub wait: Duration,
}

impl Target {
    /// The target of this test binary, checked on first use.
    pub fn get() -> &'static Target {
        static TARGET: std::sync::OnceLock<Target> = std::sync::OnceLock::new();
        TARGET.get_or_init(|| {
            let Some(kubeconfig) = std::env::var_os(KUBECONFIG_ENV).map(PathBuf::from) else {
                let hint = match node::kubeconfig() {
                    Ok(kc) => format!(
                        "the local node runs: make deploy DEPLOY_KUBECONFIG={0}, then \
                         {KUBECONFIG_ENV}={0} cargo test --test e2e -- --ignored",
                        kc.display()
                    ),
                    Err(_) => "run make e2e-cluster (a local node, no Docker) or make e2e-kind"
                        .to_string(),
                };
                panic!(
                    "the end-to-end suite runs on real pods and {KUBECONFIG_ENV} names no \
                     cluster: {hint}"
                );
            };
            kubectl(&kubeconfig, &["version", "--request-timeout=10s"])
                .unwrap_or_else(|e| panic!("{KUBECONFIG_ENV}={}: {e}", kubeconfig.display()));
            Target {
                kubeconfig,
                monitored_id: std::env::var(MONITORED_ID_ENV).unwrap_or_else(|_| "default".into()),
                wait: Duration::from_secs(300),
            }
        })
    }

    /// `kubectl <args>` against the target: Ok(stdout), or Err(stderr).
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        kubectl(&self.kubeconfig, args)
    }

    /// `kubectl get <args> -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> Result<Value, String> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl(&all)?;
        serde_json::from_str(&out).map_err(|e| format!("kubectl {}: {e}", all.join(" ")))
    }

    /// The deployed operator's recent log lines, for failure messages.
    pub fn operator_log(&self) -> String {
        self.kubectl(&[
            "logs",
            "-n",
            OPERATOR_NS,
            "-l",
            OPERATOR_SELECTOR,
            "--prefix",
            "--tail=40",
        ])
        .unwrap_or_else(|e| e)
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
        self.target.kubectl(&all)
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

    /// `kubectl get <kind> <name> -o json`; None when the object does not exist.
    pub fn json(&self, kind: &str, name: &str) -> Option<Value> {
        match self.target.json(&["-n", &self.name, kind, name]) {
            Ok(v) => Some(v),
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
        let _ = self
            .target
            .kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

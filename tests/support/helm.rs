//! The `helm` binary for the chart's tests: `$HELM`, else `helm` on PATH, else (outside CI)
//! fetched once by `hack/helm.sh`. In CI (`CI` set) a missing helm fails the tests: `.ci/run`
//! provides it and exports `HELM`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    super::repo_root().join("deploy/helm/quarks-job")
}

/// The helm binary (resolved once per test binary).
pub fn binary() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(helm) = std::env::var_os("HELM").filter(|h| !h.is_empty()) {
            return PathBuf::from(helm);
        }
        let on_path = Command::new("sh")
            .args(["-c", "command -v helm"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        if let Some(helm) = on_path {
            return helm;
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "no helm in CI: .ci/run must run hack/helm.sh and export HELM"
        );
        let out = Command::new("bash")
            .arg(super::repo_root().join("hack/helm.sh"))
            .arg("path")
            .output()
            .expect("run hack/helm.sh");
        assert!(
            out.status.success(),
            "hack/helm.sh could not provide helm:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// Run helm with `args` (and `--kubeconfig` if given), its state kept out of the user's home;
/// Ok(stdout) on success, Err(stderr) otherwise.
pub fn helm(kubeconfig: Option<&Path>, args: &[&str]) -> Result<String, String> {
    let home = std::env::temp_dir().join("quarks-job-helm-test");
    let mut cmd = Command::new(binary());
    cmd.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .args(args);
    if let Some(kc) = kubeconfig {
        cmd.arg(format!("--kubeconfig={}", kc.display()));
    }
    let out = cmd.output().expect("run helm");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `helm template <release> <chart> -n <namespace> --include-crds <extra>`: the objects.
pub fn template(release: &str, namespace: &str, extra: &[&str]) -> Vec<Value> {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        release,
        chart.to_str().unwrap(),
        "--namespace",
        namespace,
        "--include-crds",
    ];
    args.extend_from_slice(extra);
    let text = helm(None, &args).unwrap_or_else(|e| panic!("helm {args:?}: {e}"));
    super::yaml::documents(&text)
}

//! The local one-node cluster of `hack/cluster.sh` (real pods: `make cluster-up`), for tests and
//! tools that drive it: where its kubeconfig is.

use std::path::PathBuf;
use std::process::Command;

use super::repo_root;

/// The kubeconfig of the running node (`hack/cluster.sh kubeconfig`); Err says why there is
/// none (e.g. the node is down).
pub fn kubeconfig() -> Result<PathBuf, String> {
    let out = Command::new("bash")
        .arg(repo_root().join("hack/cluster.sh"))
        .arg("kubeconfig")
        .output()
        .map_err(|e| format!("run hack/cluster.sh: {e}"))?;
    if out.status.success() {
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

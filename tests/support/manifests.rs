//! The shipped manifests (`manifests/`) as the tests read and apply them.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{kubectl, repo_root};

/// `manifests/` of the repository.
pub fn manifests_dir() -> PathBuf {
    repo_root().join("manifests")
}

/// One file of `manifests/`.
pub fn read_manifest(file: &str) -> String {
    std::fs::read_to_string(manifests_dir().join(file)).expect("read manifest")
}

/// The objects `kubectl kustomize manifests/` renders.
pub fn rendered() -> Vec<Value> {
    let out = std::process::Command::new("kubectl")
        .args(["kustomize"])
        .arg(manifests_dir())
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    documents(&String::from_utf8(out.stdout).unwrap())
}

/// The documents of a multi-document YAML text.
pub fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("yaml"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The rendered object of this kind and name.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in manifests/"))
}

/// Write `text` to a file for `kubectl apply -f`.
pub fn temp_yaml(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    f
}

/// `kubectl apply -f` of YAML text.
pub fn apply(kubeconfig: &Path, text: &str) {
    let file = temp_yaml(text);
    kubectl(kubeconfig, &["apply", "-f", file.path().to_str().unwrap()])
        .unwrap_or_else(|e| panic!("kubectl apply: {e}\n{text}"));
}

//! Rendered manifests (kustomize, Helm) as JSON values, and applying YAML with kubectl.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::kubectl;

/// The objects of a multi-document YAML text (empty documents left out).
pub fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("yaml: {e}\n{text}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// The objects `kubectl kustomize <dir>` renders.
pub fn kustomize(dir: &Path) -> Vec<Value> {
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    documents(&String::from_utf8(out.stdout).unwrap())
}

/// The object of `kind` named `name`; panics naming both if there is none.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} among the rendered objects"))
}

/// The object of `kind` named `name` in namespace `namespace` (`None`: cluster-scoped); panics
/// naming them if there is none.
pub fn find_in<'a>(
    objects: &'a [Value],
    kind: &str,
    name: &str,
    namespace: Option<&str>,
) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"] == name
                && o["metadata"]["namespace"].as_str() == namespace
        })
        .unwrap_or_else(|| panic!("no {kind} {name} in {namespace:?} among the rendered objects"))
}

/// Write `text` to a file for `kubectl apply -f`.
pub fn temp_yaml(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    f
}

/// `kubectl apply -f` of `text`; panics with kubectl's message.
pub fn apply(kubeconfig: &Path, text: &str) {
    let file = temp_yaml(text);
    kubectl(kubeconfig, &["apply", "-f", file.path().to_str().unwrap()])
        .unwrap_or_else(|e| panic!("kubectl apply: {e}\n{text}"));
}

/// `kubectl apply --dry-run=server` of `objects`, after creating the namespaces they use:
/// panics with the apiserver's message if any is rejected, and checks every object was dry-run.
pub fn server_dry_run(kubeconfig: &Path, objects: &[Value]) {
    let namespaces: std::collections::BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| match o["kind"].as_str() {
            Some("Namespace") => o["metadata"]["name"].as_str(),
            _ => o["metadata"]["namespace"].as_str(),
        })
        .collect();
    for ns in namespaces {
        // an existing namespace is fine (AlreadyExists)
        let _ = kubectl(kubeconfig, &["create", "namespace", ns]);
    }
    let text: Vec<String> = objects
        .iter()
        .map(|o| serde_yaml::to_string(o).unwrap())
        .collect();
    let file = temp_yaml(&text.join("\n---\n"));
    let args = [
        "apply",
        "--dry-run=server",
        "-f",
        file.path().to_str().unwrap(),
    ];
    // Other tests of the same binary may create one of these cluster-scoped objects (e.g. the
    // ClusterRole) or change one (the CRD) between kubectl's lookup and its dry-run write:
    // AlreadyExists or Conflict then only say the cluster changed underneath, and the next
    // attempt applies over it.
    let mut attempt = 0;
    let out = loop {
        attempt += 1;
        match kubectl(kubeconfig, &args) {
            Ok(out) => break out,
            Err(e)
                if attempt < 3 && (e.contains("(AlreadyExists)") || e.contains("(Conflict)")) =>
            {
                continue;
            }
            Err(e) => panic!("server-side dry run rejected: {e}"),
        }
    };
    let accepted = out
        .lines()
        .filter(|l| l.contains("(server dry run)"))
        .count();
    assert_eq!(accepted, objects.len(), "{out}");
}

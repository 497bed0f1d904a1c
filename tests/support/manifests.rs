//! The shipped manifests (`manifests/`) as the tests read and apply them.

use std::path::PathBuf;

use serde_json::Value;

pub use super::yaml::{apply, documents, find, temp_yaml};

/// `manifests/` of the repository.
pub fn manifests_dir() -> PathBuf {
    super::repo_root().join("manifests")
}

/// One file of `manifests/`.
pub fn read_manifest(file: &str) -> String {
    std::fs::read_to_string(manifests_dir().join(file)).expect("read manifest")
}

/// The objects `kubectl kustomize manifests/` renders.
pub fn rendered() -> Vec<Value> {
    super::yaml::kustomize(&manifests_dir())
}

/// Replace `from` by `to` in `text`, insisting that `from` occurs (a renamed manifest must not
/// silently keep its old names).
fn rewrite(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in:\n{text}");
    text.replace(from, to)
}

/// `manifests/operator-rbac.yaml` for an operator in namespace `operator_ns` with monitored id
/// `id` (the webhook configurations it may write are named after the id).
pub fn operator_rbac(operator_ns: &str, id: &str) -> String {
    let text = rewrite(
        &read_manifest("operator-rbac.yaml"),
        "namespace: quarks-job",
        &format!("namespace: {operator_ns}"),
    );
    let registration = quarks_job::certs::Registration::name_for(id);
    rewrite(
        &text,
        r#"resourceNames: ["quarks-job-default"]"#,
        &format!(r#"resourceNames: ["{registration}"]"#),
    )
}

/// The onboarding of a monitored namespace as users do it: `manifests/staging-namespace.yaml`
/// for namespace `name`, monitored id `id`, and the operator's ServiceAccount in `operator_ns`.
pub fn onboarding(name: &str, id: &str, operator_ns: &str) -> String {
    let text = read_manifest("staging-namespace.yaml");
    let text = rewrite(&text, "name: staging", &format!("name: {name}"));
    let text = rewrite(&text, "namespace: staging", &format!("namespace: {name}"));
    let text = rewrite(
        &text,
        "quarks.cloudfoundry.org/monitored: default",
        &format!("quarks.cloudfoundry.org/monitored: {id}"),
    );
    rewrite(
        &text,
        "namespace: quarks-job",
        &format!("namespace: {operator_ns}"),
    )
}

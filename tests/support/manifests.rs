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

/// `manifests/webhook-configurations.yaml` for an operator in namespace `operator_ns` (its
/// Service `quarks-job-webhook` there) with monitored id `id`.
pub fn webhook_configurations(operator_ns: &str, id: &str) -> String {
    let text = read_manifest("webhook-configurations.yaml");
    let text = rewrite(
        &text,
        "name: quarks-job-default",
        &format!("name: {}", quarks_job::certs::Registration::name_for(id)),
    );
    let text = rewrite(
        &text,
        "quarks.cloudfoundry.org/monitored: default",
        &format!("quarks.cloudfoundry.org/monitored: \"{id}\""),
    );
    let text = rewrite(
        &text,
        "quarks.cloudfoundry.org/webhook-probe: default",
        &format!("quarks.cloudfoundry.org/webhook-probe: \"{id}\""),
    );
    let text = rewrite(
        &text,
        "namespace: quarks-job",
        &format!("namespace: {operator_ns}"),
    );
    rewrite(
        &text,
        r#"values: ["quarks-job"]"#,
        &format!(r#"values: ["{operator_ns}"]"#),
    )
}

/// The two webhook configurations `src/certs/registration.rs` builds for an operator reached
/// through Service `service` (and its `port`) in `operator_ns` with monitored id `id`, without
/// a `caBundle`: what the shipped YAML must hold (as JSON, kind and apiVersion included).
pub fn registered_configurations(
    operator_ns: &str,
    service: &str,
    port: i32,
    id: &str,
) -> Vec<Value> {
    use quarks_job::certs::{Registration, WebhookAddress};
    let registration = Registration {
        name: Registration::name_for(id),
        monitored_id: id.into(),
        operator_namespace: operator_ns.into(),
        address: WebhookAddress::Service {
            namespace: operator_ns.into(),
            name: service.into(),
            port,
        },
    };
    let mut mutating = serde_json::to_value(registration.mutating(b"")).unwrap();
    let mut validating = serde_json::to_value(registration.validating(b"")).unwrap();
    for (config, kind) in [
        (&mut mutating, "MutatingWebhookConfiguration"),
        (&mut validating, "ValidatingWebhookConfiguration"),
    ] {
        config["apiVersion"] = "admissionregistration.k8s.io/v1".into();
        config["kind"] = kind.into();
        for hook in config["webhooks"].as_array_mut().unwrap() {
            hook["clientConfig"]
                .as_object_mut()
                .unwrap()
                .remove("caBundle");
        }
    }
    vec![mutating, validating]
}

/// Check that `shipped` (the YAML of the chart or of `manifests/`, parsed) are exactly the
/// configurations the operator's code builds (`expected`), but for their labels: the rules
/// live in one place, src/certs/registration.rs.
pub fn assert_same_configurations(shipped: &[&Value], expected: &[Value]) {
    assert_eq!(shipped.len(), expected.len(), "{shipped:?}");
    for (shipped, expected) in shipped.iter().zip(expected) {
        let mut shipped = (*shipped).clone();
        let mut expected = expected.clone();
        for config in [&mut shipped, &mut expected] {
            config["metadata"].as_object_mut().unwrap().remove("labels");
        }
        assert_eq!(
            shipped, expected,
            "the shipped {} differs from src/certs/registration.rs",
            expected["kind"]
        );
    }
}

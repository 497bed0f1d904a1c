//! `make deploy` (hack/deploy.sh, kustomize): the overlay it writes installs `manifests/` with
//! only the image, pull policy and monitored id changed (the webhook configurations named and
//! selecting after the id), and the operator injects the very image it runs. Rendering needs no cluster; applying it to kind is `make deploy` (docs/e2e.md).

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;
use support::manifests::{
    assert_same_configurations, documents, find, registered_configurations, rendered,
};

/// `hack/deploy.sh render` with these environment variables (and nothing else of ours).
fn render(env: &[(&str, &str)]) -> Vec<Value> {
    let overlay = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(support::repo_root().join("hack/deploy.sh"))
        .arg("render")
        .env("OVERLAY_DIR", overlay.path());
    for var in [
        "DEPLOY",
        "IMAGE_ORG",
        "IMAGE_REPOSITORY",
        "IMAGE_TAG",
        "PULL_POLICY",
        "MONITORED_ID",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run hack/deploy.sh");
    assert!(
        out.status.success(),
        "hack/deploy.sh render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    documents(&String::from_utf8(out.stdout).unwrap())
}

/// Objects keyed by kind/namespace/name, with the container env sorted by name (a strategic
/// merge patch reorders it; order has no meaning there).
fn by_key(objects: Vec<Value>) -> BTreeMap<String, Value> {
    objects
        .into_iter()
        .map(|mut o| {
            if let Some(env) = o
                .pointer_mut("/spec/template/spec/containers/0/env")
                .and_then(Value::as_array_mut)
            {
                env.sort_by_key(|e| e["name"].as_str().unwrap_or_default().to_string());
            }
            let key = format!(
                "{}/{}/{}",
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            );
            (key, o)
        })
        .collect()
}

/// The literal value of env var `name` of the Deployment's first container.
fn env_value(deployment: &Value, name: &str) -> String {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    support::deployment::env_value(container, name).unwrap_or_else(|| panic!("no env {name}"))
}

#[test]
fn default_deploy_installs_the_manifests_unchanged() {
    assert_eq!(by_key(render(&[])), by_key(rendered()));
}

#[test]
fn deploy_sets_the_image_it_runs_and_injects_and_the_monitored_id() {
    let objects = render(&[
        ("IMAGE_ORG", "localhost:5000/me"),
        ("IMAGE_REPOSITORY", "qj"),
        ("IMAGE_TAG", "dev"),
        ("PULL_POLICY", "Never"),
        ("MONITORED_ID", "e2e"),
    ]);
    let deployment = find(&objects, "Deployment", "quarks-job");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "localhost:5000/me/qj:dev");
    assert_eq!(container["imagePullPolicy"], "Never");
    // the operator's --docker-image-* settings: it injects the image it runs itself
    let injected = format!(
        "{}/{}:{}",
        env_value(deployment, "DOCKER_IMAGE_ORG"),
        env_value(deployment, "DOCKER_IMAGE_REPOSITORY"),
        env_value(deployment, "DOCKER_IMAGE_TAG")
    );
    assert_eq!(container["image"].as_str().unwrap(), injected);
    assert_eq!(env_value(deployment, "DOCKER_IMAGE_PULL_POLICY"), "Never");
    assert_eq!(env_value(deployment, "MONITORED_ID"), "e2e");
    let staging = find(&objects, "Namespace", "staging");
    assert_eq!(
        staging["metadata"]["labels"]["quarks.cloudfoundry.org/monitored"],
        "e2e"
    );

    // the operator may write the webhook configurations it registers for that id, no others
    let role = find(&objects, "ClusterRole", "quarks-job");
    let named: Vec<&Value> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["apiGroups"][0] == "admissionregistration.k8s.io")
        .collect();
    assert_eq!(named.len(), 1, "{role}");
    assert_eq!(
        named[0]["resourceNames"],
        serde_json::json!([quarks_job::certs::Registration::name_for("e2e")])
    );

    // the webhook configurations are the operator's for that id
    let name = quarks_job::certs::Registration::name_for("e2e");
    assert_same_configurations(
        &[
            find(&objects, "MutatingWebhookConfiguration", &name),
            find(&objects, "ValidatingWebhookConfiguration", &name),
        ],
        &registered_configurations("quarks-job", "quarks-job-webhook", 443, "e2e"),
    );

    // nothing else differs from manifests/
    let mut ours = by_key(objects);
    let mut base = by_key(rendered());
    for key in [
        "Deployment/quarks-job/quarks-job",
        "Namespace//staging",
        "ClusterRole//quarks-job",
        "MutatingWebhookConfiguration//quarks-job-e2e",
        "ValidatingWebhookConfiguration//quarks-job-e2e",
    ] {
        ours.remove(key);
    }
    for key in [
        "Deployment/quarks-job/quarks-job",
        "Namespace//staging",
        "ClusterRole//quarks-job",
        "MutatingWebhookConfiguration//quarks-job-default",
        "ValidatingWebhookConfiguration//quarks-job-default",
    ] {
        assert!(base.remove(key).is_some(), "{key}");
    }
    assert_eq!(ours, base);
}

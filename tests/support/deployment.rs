//! What every shipped operator Deployment (kustomize manifests, Helm chart) must satisfy.

use serde_json::Value;

use super::yaml::find;

/// The container's env as (name, entry) pairs.
pub fn env(container: &Value) -> Vec<(String, Value)> {
    container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

/// The literal value of env var `name`, if the container sets one.
pub fn env_value(container: &Value, name: &str) -> Option<String> {
    env(container)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, e)| {
            e["value"]
                .as_str()
                .unwrap_or_else(|| panic!("env {name} has no literal value: {e}"))
                .to_string()
        })
}

/// The port named `name` of a container.
fn port(container: &Value, name: &str) -> Value {
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no port {name}"))["containerPort"]
        .clone()
}

/// The operator Deployment `name` among `objects` runs the image it injects into job pods, as a
/// hardened non-root container with probes on its health port, sets only env vars of the
/// binary's CLI, and its webhook Service reaches its webhook port. Returns its container.
pub fn assert_operator_deployment<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    let deployment = find(objects, "Deployment", name);
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let value = |name: &str| env_value(c, name).unwrap_or_else(|| panic!("no env {name}"));
    for (name, _) in env(c) {
        assert!(
            quarks_job::cli::ENV_VARS.contains(&name.as_str()),
            "env {name} is not a setting of the binary"
        );
    }
    // the operator injects org/repository:tag into job pods: it must be this very image
    assert_eq!(
        c["image"].as_str().unwrap(),
        format!(
            "{}/{}:{}",
            value("DOCKER_IMAGE_ORG"),
            value("DOCKER_IMAGE_REPOSITORY"),
            value("DOCKER_IMAGE_TAG")
        )
    );
    assert_eq!(
        value("DOCKER_IMAGE_PULL_POLICY"),
        c["imagePullPolicy"].as_str().unwrap()
    );
    let ns_env = &env(c)
        .into_iter()
        .find(|(n, _)| n == "OPERATOR_NAMESPACE")
        .expect("OPERATOR_NAMESPACE")
        .1;
    assert_eq!(
        ns_env["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    // the binary is the entrypoint: no command/args override (the output container passes
    // `persist-output` as args to the same entrypoint)
    assert!(c.get("command").is_none() && c.get("args").is_none(), "{c}");
    let dockerfile = std::fs::read_to_string(super::repo_root().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/quarks-job"]"#),
        "{dockerfile}"
    );
    // non-root, read-only root filesystem, probes on the health port, resources
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "health");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "health");
    let setting = |env: &str, default: &str| env_value(c, env).unwrap_or(default.into());
    assert_eq!(
        port(c, "health").to_string(),
        setting("HEALTH_PORT", "8081")
    );
    // metrics are scraped from the health port
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(
        annotations["prometheus.io/port"]
            .as_str()
            .unwrap_or_default(),
        setting("HEALTH_PORT", "8081")
    );
    // several replicas: the leader reconciles, a rolling update keeps the webhook served
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    assert!(
        setting("LEADER_ELECTION", "true") == "false"
            || env(c).iter().any(|(n, e)| n == "POD_NAME"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"),
        "leader election without the pod name as identity"
    );
    assert!(c["resources"]["requests"].is_object() && c["resources"]["limits"].is_object());
    // the webhook Service reaches the webhook port
    assert_eq!(
        port(c, "webhook").to_string(),
        setting("WEBHOOK_SERVER_PORT", "2999")
    );
    let service = find(
        objects,
        "Service",
        &setting("WEBHOOK_SERVICE_NAME", "quarks-job-webhook"),
    );
    assert_eq!(
        service["metadata"]["namespace"],
        deployment["metadata"]["namespace"]
    );
    assert_eq!(
        service["spec"]["ports"][0]["port"].to_string(),
        setting("WEBHOOK_SERVICE_PORT", "443")
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "webhook");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in service["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(
            &pod_labels[k], v,
            "the Service selects {k}={v}: {pod_labels}"
        );
    }
    assert_settings_parse(c);
    c
}

/// The container's env, as the binary's flags (`APPLY_CRD` is `--apply-crd`), is accepted by the
/// binary's command line parser.
pub fn assert_settings_parse(container: &Value) {
    use clap::Parser;
    let mut args = vec!["quarks-job".to_string()];
    for (name, entry) in env(container) {
        let value = entry["value"].as_str().unwrap_or("from-the-downward-api");
        args.push(format!(
            "--{}={value}",
            name.to_lowercase().replace('_', "-")
        ));
    }
    if let Err(e) = quarks_job::cli::Cli::try_parse_from(&args) {
        panic!("the binary rejects {args:?}:\n{e}");
    }
}

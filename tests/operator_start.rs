//! The operator binary against its own fresh control plane (no CRD installed yet): it checks the
//! kubeconfig, announces its monitored id, applies the CRD when asked and waits until it is
//! Established (without it, `/readyz` says why the webhook caches cannot be filled), and shuts
//! down cleanly on SIGTERM.

mod support;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use quarks_job::core::api::CRD_NAME;
use support::WAIT;
use support::process::{Running, http_get, quarks_job};

/// The binary with free ports for the webhook and the health endpoints.
fn operator() -> std::process::Command {
    operator_with_health().0
}

/// [`operator`], and the address of its health port.
fn operator_with_health() -> (std::process::Command, String) {
    let mut cmd = quarks_job();
    let health = support::free_port();
    cmd.args([
        "--webhook-server-port",
        &support::free_port(),
        "--health-port",
        &health,
    ]);
    (cmd, format!("127.0.0.1:{health}"))
}

fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

#[tokio::test]
async fn operator_applies_the_crd_only_when_asked_and_stops_on_sigterm() {
    let cp = support::shared();
    let client = support::admin_client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    assert!(
        crds.get_opt(CRD_NAME).await.unwrap().is_none(),
        "a fresh control plane has no QuarksJob CRD"
    );

    // Reached through a Service (no --webhook-server-host), the operator patches the webhook
    // configurations an install creates and never creates them: apply them as the install would.
    for id in ["env-test", "switch-test", "default"] {
        support::yaml::apply(
            &cp.kubeconfig,
            &support::manifests::webhook_configurations("default", id),
        );
    }

    // APPLY_CRD=false and MONITORED_ID from the environment
    let (mut cmd, health) = operator_with_health();
    cmd.arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .env("APPLY_CRD", "false")
        .env("MONITORED_ID", "env-test");
    let mut op = Running::start(cmd);
    op.wait_for_log("Registering Components", WAIT);
    let log = op.stderr();
    assert!(
        log.contains(&format!(
            "Starting quarks-job {}, monitoring namespaces labeled with 'env-test'",
            quarks_job::VERSION
        )),
        "{log}"
    );
    assert!(
        log.contains("quarks-job docker image: cfcontainerization/quarks-job:"),
        "{log}"
    );
    assert!(!log.contains("Applying CRDs..."), "{log}");
    // without the CRD the reconciler waits for it instead of failing
    op.wait_for_log("Cannot list QuarksJobs yet", WAIT);
    // and /readyz says which cache cannot be filled, and why
    support::eventually(WAIT, "/readyz naming the QuarksJob cache", || async {
        http_get(&health, "/readyz").is_some_and(|r| {
            r.starts_with("HTTP/1.1 503")
                && r.contains("webhook caches (QuarksJobs: failed to perform initial object list")
        })
    })
    .await;
    assert!(
        crds.get_opt(CRD_NAME).await.unwrap().is_none(),
        "--apply-crd=false must not apply the CRD"
    );
    let status = op.terminate();
    assert!(status.success(), "SIGTERM is a clean shutdown: {status}");

    // the default applies the CRD and returns only once it is Established
    let mut cmd = operator();
    cmd.arg("--kubeconfig").arg(&cp.kubeconfig).args([
        "--monitored-id",
        "switch-test",
        "--log-format",
        "json",
    ]);
    let mut op = Running::start(cmd);
    op.wait_for_log("Waiting for Quarks job resources", WAIT);
    let log = op.stderr();
    // registered through the Service `quarks-job-webhook`, which does not exist here: the
    // apiserver cannot call the webhook, and the operator says what to check before it goes on
    assert!(
        log.contains("The apiserver did not call the webhook within 30s")
            && log.contains("check that the webhook Service has ready endpoints"),
        "{log}"
    );
    let crd = crds
        .get(CRD_NAME)
        .await
        .expect("CRD applied by the operator");
    assert!(
        established(&crd),
        "established before the operator goes on: {:?}",
        crd.status
    );
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(log.contains("Applying CRDs..."), "{log}");
    assert!(
        log.contains("monitoring namespaces labeled with 'switch-test'"),
        "{log}"
    );
    assert!(op.terminate().success());

    // a second start finds the CRD in place and applies it again without trouble
    let mut cmd = operator();
    cmd.env("KUBECONFIG", &cp.kubeconfig);
    let mut op = Running::start(cmd);
    op.wait_for_log("is established", WAIT);
    assert!(op.stderr().contains("labeled with 'default'"));
    assert!(op.terminate().success());
    let generation = crds.get(CRD_NAME).await.unwrap().metadata.generation;
    assert_eq!(
        generation,
        Some(1),
        "re-applying an unchanged CRD changes nothing"
    );
}

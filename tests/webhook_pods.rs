//! The webhook against the real control plane: registered by URL on 127.0.0.1, it mutates the
//! pods that kube-controller-manager creates for Jobs of QuarksJobs, fails closed when stopped,
//! and rejects bad QuarksJobs at `kubectl apply`. The webhook and the reconciler run in-process,
//! exactly as the operator binary runs them (see `operator::run_operator`).

mod support;
#[path = "webhook_pods/world.rs"]
mod webhook_world;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::ResourceExt;
use kube::api::{ListParams, PostParams};
use quarks_job::core::api::labels::OUTPUT_PERSIST_CONTAINER;
use quarks_job::webhook::mutate::{TOKEN_MOUNT_PATH, token_secret_name};
use serde_json::json;
use support::WAIT;
use support::{eventually, eventually_some, kubectl, shared};
use webhook_world::{OUTPUT_SA, errand, trigger, world};

// multi-threaded: the webhook runs in this process and must answer while a test waits on kubectl
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_pods_are_stored_mutated_and_pick_up_new_versions() {
    let w = world("whpods").await;
    w.versioned_secret("creds", 1).await;
    w.versioned_secret("creds", 2).await;
    let qjobs = w.api::<quarks_job::core::api::QuarksJob>();
    qjobs
        .create(
            &PostParams::default(),
            &serde_json::from_value(errand("errand", "now")).unwrap(),
        )
        .await
        .unwrap();

    let pod = w.pods("errand", 1).await.remove(0);
    let spec = pod.spec.clone().unwrap();
    // output volume mounted into the user container
    let jsonout = spec
        .containers
        .iter()
        .find(|c| c.name == "jsonout")
        .unwrap();
    assert!(
        jsonout
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "output-jsonout" && m.mount_path == "/mnt/quarks")
    );
    // the output container, with the output account's token mounted into it only
    let persist = spec
        .containers
        .iter()
        .find(|c| c.name == OUTPUT_PERSIST_CONTAINER)
        .expect("output-persist added");
    assert_eq!(
        persist.args.as_deref(),
        Some(&["persist-output".to_string()][..])
    );
    // stored as the apiserver accepted it: Pod Security "restricted" settings of its own, and
    // requests and limits (namespaces with a ResourceQuota)
    let sc = persist
        .security_context
        .as_ref()
        .expect("a security context");
    assert_eq!(
        (
            sc.run_as_non_root,
            sc.run_as_user,
            sc.allow_privilege_escalation,
            sc.read_only_root_filesystem
        ),
        (Some(true), Some(65532), Some(false), Some(true))
    );
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    assert_eq!(
        sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );
    let resources = persist.resources.as_ref().expect("resources");
    assert_eq!(resources.requests.as_ref().unwrap()["memory"].0, "32Mi");
    assert_eq!(resources.limits.as_ref().unwrap()["cpu"].0, "250m");
    // with the operator image's pull secret (upstream §15.19)
    let pull: Vec<&str> = spec
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(pull, ["registry-creds"]);
    let token_mount = persist
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == TOKEN_MOUNT_PATH)
        .unwrap();
    let token_volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == token_mount.name)
        .unwrap();
    assert_eq!(
        token_volume.secret.as_ref().unwrap().secret_name.as_deref(),
        Some(token_secret_name(OUTPUT_SA).as_str())
    );
    assert!(
        persist
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "output-jsonout" && m.mount_path == "/mnt/quarks/jsonout")
    );
    // the onboarding created that token Secret, and Kubernetes filled it for the account
    let token = eventually_some(WAIT, "the output account's token", || async {
        let s = w
            .api::<Secret>()
            .get_opt(&token_secret_name(OUTPUT_SA))
            .await
            .ok()??;
        s.data.as_ref()?.get("token").is_some().then_some(s)
    })
    .await;
    assert_eq!(
        token
            .annotations()
            .get("kubernetes.io/service-account.name")
            .map(String::as_str),
        Some(OUTPUT_SA)
    );
    // the newest version, in init and regular containers alike
    let init_ref = spec.init_containers.as_ref().unwrap()[0]
        .env
        .as_ref()
        .unwrap()[0]
        .value_from
        .clone()
        .unwrap();
    assert_eq!(init_ref.secret_key_ref.unwrap().name, "creds-v2");
    assert_eq!(
        jsonout.env_from.as_ref().unwrap()[0]
            .secret_ref
            .as_ref()
            .unwrap()
            .name,
        "creds-v2"
    );

    // a version created between two runs is picked up by the second pod
    let job = pod.labels()["job-name"].clone();
    support::kubelet::finish_pod(&w.api::<Pod>(), &pod.name_any(), 0).await;
    eventually(WAIT, "the first Job to be cleaned up", || async {
        w.api::<Job>().get_opt(&job).await.unwrap().is_none()
    })
    .await;
    w.versioned_secret("creds", 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // let the watch deliver it
    trigger(&w, "errand").await;
    let second = w
        .pods("errand", 2)
        .await
        .into_iter()
        .find(|p| p.labels()["job-name"] != job)
        .unwrap();
    let spec = second.spec.unwrap();
    let jsonout = spec
        .containers
        .iter()
        .find(|c| c.name == "jsonout")
        .unwrap();
    assert_eq!(
        jsonout.env_from.as_ref().unwrap()[0]
            .secret_ref
            .as_ref()
            .unwrap()
            .name,
        "creds-v3"
    );
    w.stop().await;
}

// multi-threaded: the webhook runs in this process and must answer while a test waits on kubectl
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_webhook_stopped_job_pods_are_refused_with_an_event() {
    let w = world("whdown").await;
    w.versioned_secret("creds", 1).await;
    // stop the webhook only; the reconciler goes on creating Jobs
    let _ = w.stop_webhook.send(true);
    let qjobs = w.api::<quarks_job::core::api::QuarksJob>();
    qjobs
        .create(
            &PostParams::default(),
            &serde_json::from_value(errand("refused", "now")).unwrap(),
        )
        .await
        .unwrap();
    let events = w.api::<Event>();
    let event = eventually_some(WAIT, "a FailedCreate event on the Job", || async {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("FailedCreate")
                    && e.involved_object.kind.as_deref() == Some("Job")
            })
    })
    .await;
    let message = event.message.unwrap_or_default();
    assert!(
        message.contains("mutate-pods.quarks.cloudfoundry.org"),
        "{message}"
    );
    assert!(
        w.api::<Pod>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "no unmutated pod slipped through"
    );
    w.stop().await;
}

// multi-threaded: the webhook runs in this process and must answer while a test waits on kubectl
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_of_a_bad_quarksjob_is_rejected_with_the_reason() {
    let w = world("whval").await;
    let mut bad = errand("bad", "manual");
    bad["spec"]["output"]["outputMap"] = json!({"jsonot": {"output.json": {"name": "foo-json"}}});
    let err = apply_refused(&w.ns, &bad);
    assert!(
        err.contains("validate-quarksjobs.quarks.cloudfoundry.org"),
        "{err}"
    );
    assert!(
        err.contains("spec.output.outputMap.jsonot: no container of that name"),
        "{err}"
    );

    // upstream's manifests apply, with a warning about the misplaced backoffLimit
    let example = support::repo_root().join("tests/fixtures/upstream-examples/qjob_errand.yaml");
    let out = std::process::Command::new("kubectl")
        .arg(format!("--kubeconfig={}", shared().kubeconfig.display()))
        .args(["apply", "-n", &w.ns, "-f", example.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("Warning: spec.template.backoffLimit is ignored by Kubernetes"),
        "{warning}"
    );
    w.stop().await;
}

// multi-threaded: the webhook runs in this process and must answer while a test waits on kubectl
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_labels_that_would_forge_a_version_are_rejected_at_apply() {
    let w = world("whforge").await;
    let mut forge = errand("forge", "manual");
    forge["spec"]["output"]["outputMap"] = json!({"jsonout": {"output.json": {"name": "creds-v99",
        "secretLabels": {"quarks.cloudfoundry.org/secret-kind": "versionedSecret",
                         "quarks.cloudfoundry.org/secret-version": "99"}}}});
    let err = apply_refused(&w.ns, &forge);
    assert!(
        err.contains("key \"quarks.cloudfoundry.org/secret-kind\" is reserved"),
        "{err}"
    );
    assert!(
        err.contains("key \"quarks.cloudfoundry.org/secret-version\" is reserved"),
        "{err}"
    );
    assert!(
        w.api::<quarks_job::core::api::QuarksJob>()
            .get_opt("forge")
            .await
            .unwrap()
            .is_none()
    );
    w.stop().await;
}

/// The reconciler's config digest and the webhook's mount resolve a versioned reference by one
/// rule: with `creds-v1` labelled as version 5 (label and name disagree) and `creds-v2`, both
/// pick `creds-v2` (the webhook read the label and mounted `creds-v1`, while the digest
/// covered `creds-v2`).
// multi-threaded: the webhook runs in this process and must answer while a test waits on kubectl
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mounted_version_is_the_one_the_config_digest_covers() {
    use quarks_job::core::podrefs::RefKind;
    use quarks_job::reconcile::digest::{Resolved, config_digest};
    let w = world("whdigest").await;
    for (name, label) in [("creds-v1", "5"), ("creds-v2", "2")] {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {
                "quarks.cloudfoundry.org/secret-kind": "versionedSecret",
                "quarks.cloudfoundry.org/secret-version": label}},
            "stringData": {"password": format!("pw-{name}")}
        }))
        .unwrap();
        w.api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // let the webhook's watch deliver them
    let mut qjob = errand("digest", "once");
    qjob["spec"]["updateOnConfigChange"] = json!(true);
    w.api::<quarks_job::core::api::QuarksJob>()
        .create(
            &PostParams::default(),
            &serde_json::from_value(qjob).unwrap(),
        )
        .await
        .unwrap();

    let pod = w.pods("digest", 1).await.remove(0);
    let mounted = pod.spec.unwrap().containers[0].env_from.as_ref().unwrap()[0]
        .secret_ref
        .as_ref()
        .unwrap()
        .name
        .clone();
    assert_eq!(mounted, "creds-v2", "the newest version by name");
    let data = w.api::<Secret>().get(&mounted).await.unwrap().data.unwrap();
    let expected = config_digest(&[Resolved {
        kind: RefKind::Secret,
        reference: "creds-v1".into(),
        resolved: mounted.clone(),
        optional: false,
        data: Some(data.into_iter().map(|(k, v)| (k, v.0)).collect()),
    }]);
    let qjobs = w.api::<quarks_job::core::api::QuarksJob>();
    let digest = eventually_some(WAIT, "the recorded config digest", || async {
        qjobs.get("digest").await.ok()?.status?.config_digest
    })
    .await;
    assert_eq!(digest, expected, "the digest covers the mounted Secret");
    w.stop().await;
}

/// `kubectl apply` of `qjob` in `ns`, which must fail; its error output.
fn apply_refused(ns: &str, qjob: &serde_json::Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("qjob.yaml");
    std::fs::write(&file, serde_json::to_string(qjob).unwrap()).unwrap();
    kubectl(
        &shared().kubeconfig,
        &["apply", "-n", ns, "-f", file.to_str().unwrap()],
    )
    .unwrap_err()
}

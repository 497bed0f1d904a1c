//! Least privilege, asked of the real apiserver: `kubectl auth can-i --as=<the operator's
//! ServiceAccount>` after `kubectl apply -k manifests/`, for what it must not do (create Secrets,
//! touch pods outside monitored namespaces, write other webhook configurations or CRDs) and for
//! everything its code does (docs/security.md has the table). That the "yes" list is enough is
//! proven by running the binary with this account's token (tests/manifests.rs, tests/e2e.rs).

mod reconcile_helpers;
mod support;

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::Api;
use quarks_job::certs::Registration;
use quarks_job::core::api::CRD_NAME;
use quarks_job::core::api::labels::{LABEL_MONITORED, LABEL_QJOB_SERVICE_ACCOUNT};
use reconcile_helpers::World;
use serde_json::json;
use support::WAIT;
use support::manifests::manifests_dir;
use support::{kubectl, shared};

/// The operator's ServiceAccount in `manifests/`.
const OPERATOR: &str = "system:serviceaccount:quarks-job:quarks-job";

/// `kubectl auth can-i <verb> <resource> [-n <ns>]` as the operator: true for yes. A
/// `<resource>` of `kind/name` asks about that name; `kind#sub` about the subresource `sub`.
fn can(verb: &str, resource: &str, namespace: Option<&str>) -> bool {
    let mut args = vec!["auth", "can-i", verb, "--as", OPERATOR];
    match resource.split_once('#') {
        Some((kind, sub)) => args.extend([kind, "--subresource", sub]),
        None => args.push(resource),
    }
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    match kubectl(&shared().kubeconfig, &args) {
        Ok(out) => out.trim() == "yes",
        // `no` exits 1 with "no" on stdout; anything else is a broken question
        Err(e) => {
            assert!(
                e.trim().is_empty() || e.contains("no"),
                "can-i {args:?}: {e}"
            );
            false
        }
    }
}

/// Check every (verb, resource, namespace) against `expected`; report all mismatches at once.
fn expect(expected: bool, questions: &[(&str, &str, Option<&str>)]) -> Vec<String> {
    questions
        .iter()
        .filter(|(verb, resource, ns)| can(verb, resource, *ns) != expected)
        .map(|(verb, resource, ns)| {
            format!(
                "can-i {verb} {resource} -n {}: expected {}",
                ns.unwrap_or("(cluster)"),
                if expected { "yes" } else { "no" }
            )
        })
        .collect()
}

#[tokio::test]
async fn the_operator_may_do_what_its_code_does_and_nothing_that_escalates() {
    let admin = support::admin_client().await;
    installed().await;
    // a second namespace onboarded like `staging`, one only labelled as monitored (not
    // onboarded), and one nobody told the operator about
    let onboarded = support::monitored_namespace(&admin, "team", "default", "quarks-job").await;
    let labelled = support::test_namespace(
        &admin,
        "labelled",
        &[("quarks.cloudfoundry.org/monitored", "default")],
    )
    .await;
    let other = support::test_namespace(&admin, "other", &[]).await;
    let op = Some("quarks-job");
    let ours = Registration::name_for("default");
    let crd = format!("customresourcedefinitions/{CRD_NAME}");
    let mutating = format!("mutatingwebhookconfigurations/{ours}");
    let validating = format!("validatingwebhookconfigurations/{ours}");

    let mut wrong = Vec::new();
    for ns in ["staging", onboarded.as_str()] {
        let ns = Some(ns);
        wrong.extend(expect(
            true,
            &[
                // src/reconcile: Jobs, the pods of succeeded Jobs, referenced configuration
                ("create", "jobs.batch", ns),
                ("delete", "jobs.batch", ns),
                ("list", "pods", ns),
                ("patch", "pods", ns),
                ("delete", "pods", ns),
                ("get", "configmaps", ns),
                ("get", "secrets", ns),
            ],
        ));
        // the operator creates no Secret and runs nothing itself there
        wrong.extend(expect(
            false,
            &[
                ("create", "secrets", ns),
                ("update", "secrets", ns),
                ("delete", "secrets", ns),
                ("create", "pods", ns),
                ("create", "serviceaccounts#token", ns),
                ("create", "rolebindings.rbac.authorization.k8s.io", ns),
            ],
        ));
    }
    for ns in [
        "kube-system",
        "default",
        "kube-public",
        labelled.as_str(),
        other.as_str(),
    ] {
        let ns = Some(ns);
        wrong.extend(expect(
            false,
            &[
                ("create", "secrets", ns),
                ("update", "secrets", ns),
                ("create", "serviceaccounts#token", ns),
                ("create", "pods", ns),
                ("patch", "pods", ns),
                ("delete", "pods", ns),
                ("create", "jobs.batch", ns),
                ("delete", "jobs.batch", ns),
                ("patch", "deployments.apps", ns),
                ("create", "rolebindings.rbac.authorization.k8s.io", ns),
            ],
        ));
    }
    // cluster-scoped writes: its own CRD and patches of its webhook configurations, by name;
    // the install owns those, so the operator cannot create them (nor re-create them during an
    // uninstall)
    wrong.extend(expect(
        true,
        &[
            ("create", &crd, None),
            ("patch", &crd, None),
            ("watch", &crd, None),
            ("patch", &mutating, None),
            ("watch", &mutating, None),
            ("patch", &validating, None),
            ("watch", &validating, None),
        ],
    ));
    wrong.extend(expect(
        false,
        &[
            ("create", "customresourcedefinitions", None),
            ("patch", "customresourcedefinitions/other.example.com", None),
            ("delete", &crd, None),
            ("update", &crd, None),
            ("create", "mutatingwebhookconfigurations", None),
            ("create", "validatingwebhookconfigurations", None),
            ("patch", "mutatingwebhookconfigurations/someone-elses", None),
            (
                "patch",
                "validatingwebhookconfigurations/someone-elses",
                None,
            ),
            ("create", &mutating, None),
            ("create", &validating, None),
            ("update", &mutating, None),
            ("delete", &mutating, None),
            ("delete", &validating, None),
            ("list", "mutatingwebhookconfigurations", None),
            (
                "create",
                "clusterrolebindings.rbac.authorization.k8s.io",
                None,
            ),
            ("escalate", "clusterroles.rbac.authorization.k8s.io", None),
            ("bind", "clusterroles.rbac.authorization.k8s.io", None),
            ("impersonate", "serviceaccounts", None),
            (
                "create",
                "certificatesigningrequests.certificates.k8s.io",
                None,
            ),
            ("patch", "namespaces", None),
            ("patch", "nodes", None),
        ],
    ));
    // cluster-wide: watches, its own kind, events
    wrong.extend(expect(
        true,
        &[
            ("watch", "quarksjobs.quarks.cloudfoundry.org", None),
            ("patch", "quarksjobs.quarks.cloudfoundry.org", None),
            ("patch", "quarksjobs.quarks.cloudfoundry.org#status", None),
            (
                "update",
                "quarksjobs.quarks.cloudfoundry.org#finalizers",
                None,
            ),
            ("watch", "jobs.batch", None),
            ("watch", "namespaces", None),
            ("watch", "serviceaccounts", None),
            ("watch", "configmaps", None),
            ("watch", "secrets", None),
            ("create", "events.events.k8s.io", None),
            ("patch", "events.events.k8s.io", None),
        ],
    ));
    // its own namespace: the certificate Secret by name, the Lease, the dry-run probe pod
    wrong.extend(expect(
        true,
        &[
            ("get", "secrets/quarks-job-webhook-cert", op),
            ("update", "secrets/quarks-job-webhook-cert", op),
            ("create", "leases.coordination.k8s.io", op),
            ("get", "leases.coordination.k8s.io/quarks-job-default", op),
            (
                "update",
                "leases.coordination.k8s.io/quarks-job-default",
                op,
            ),
            ("create", "pods", op),
        ],
    ));
    wrong.extend(expect(
        false,
        &[
            ("create", "secrets", op),
            ("update", "secrets/quarks-job-token", op),
            ("get", "secrets/quarks-job-token", op),
            ("delete", "secrets/quarks-job-webhook-cert", op),
            ("patch", "pods", op),
            ("create", "serviceaccounts#token", op),
        ],
    ));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The operator may not create Secrets, so a deleted certificate Secret stops it at start with a
/// message saying how to get it back, rather than a bare `forbidden`.
#[tokio::test]
async fn without_its_certificate_secret_the_operator_says_how_to_restore_it() {
    let admin = support::admin_client().await;
    installed().await;
    let _alone = OPERATOR_RUNS.lock().await;
    // (the permission test of this binary does not need the Secret; it is restored below)
    kubectl(
        &shared().kubeconfig,
        &[
            "delete",
            "secret",
            "-n",
            "quarks-job",
            "quarks-job-webhook-cert",
        ],
    )
    .unwrap();
    let token = support::service_account_token(&admin, "quarks-job", "quarks-job").await;
    let op_kc = shared().kubeconfig_for_token("rbac-operator", &token);
    let op = support::process::Operator::out_of_cluster(&op_kc, "quarks-job", "default");
    let (status, log) = support::process::Running::start(op.cmd).wait_exit(Duration::from_secs(60));
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(
            "certificate secret 'quarks-job/quarks-job-webhook-cert' does not exist and the \
             operator may not create Secrets"
        ),
        "{log}"
    );
    support::manifests::apply(
        &shared().kubeconfig,
        &support::manifests::read_manifest("webhook-cert-secret.yaml"),
    );
}

/// A namespace that carries the monitored label but was not onboarded (no RoleBinding for the
/// operator): its QuarksJob gets no Job, and the reason shows on the QuarksJob, not only in a
/// log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_labelled_namespace_that_was_not_onboarded_gets_a_visible_refusal() {
    let admin = support::admin_client().await;
    installed().await;
    let _alone = OPERATOR_RUNS.lock().await;
    let ns = support::test_namespace(
        &admin,
        "labelled",
        &[
            (LABEL_MONITORED, "default"),
            (LABEL_QJOB_SERVICE_ACCOUNT, "default"),
        ],
    )
    .await;
    let token = support::service_account_token(&admin, "quarks-job", "quarks-job").await;
    let op_kc = shared().kubeconfig_for_token("rbac-operator", &token);
    let operator =
        support::process::Operator::out_of_cluster(&op_kc, "quarks-job", "default").start();
    let w = World {
        client: admin,
        ns,
        id: "default".into(),
    };
    w.create(reconcile_helpers::qjob("denied", "now", json!({})))
        .await;
    let events: Api<Event> = Api::namespaced(w.client.clone(), &w.ns);
    let note = support::eventually_some(WAIT, "a CreateJobError event", || async {
        events
            .list(&Default::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("CreateJobError"))?
            .note
    })
    .await;
    assert!(
        note.contains("forbidden") && note.contains("cannot create resource \"jobs\""),
        "{note}"
    );
    assert!(w.jobs_of("denied").await.is_empty());
    operator.terminate();
    w.cleanup().await;
}

/// The tests that run the operator take turns (one Lease, one certificate Secret).
static OPERATOR_RUNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `kubectl apply -k manifests/`, once per test binary.
async fn installed() {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            kubectl(
                &shared().kubeconfig,
                &["apply", "-k", manifests_dir().to_str().unwrap()],
            )
            .unwrap_or_else(|e| panic!("kubectl apply -k manifests/: {e}"));
        })
        .await;
}

//! The Helm chart (`deploy/helm/quarks-job`): upstream's values, `helm lint`, rendered objects
//! accepted by the real apiserver, and the same RBAC as the kustomize manifests. The real
//! `helm install` is in tests/helm_install.rs.

mod support;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use support::deployment::{assert_operator_deployment, env_value};
use support::helm::{chart_dir, helm, template};
use support::yaml::{self, find, find_in};

fn chart_file(file: &str) -> Value {
    let text = std::fs::read_to_string(chart_dir().join(file)).expect("chart file");
    serde_yaml::from_str(&text).expect("yaml")
}

/// Notable non-default values: bring-your-own certificate, registry credentials, no CRD
/// management, an existing service account, scheduling, retention, JSON logs.
const NOTABLE: &[&str] = &[
    "--set",
    "applyCRD=false,logFormat=json,logLevel=info,maxWorkers=4,versionedSecretHistory=3,jobHistory=7,runHistory=9",
    "--set",
    "serviceAccount.create=false,serviceAccount.name=my-operator",
    "--set",
    "webhook.existingSecret=my-cert,webhook.port=9443,webhook.servicePort=8443,healthPort=9090",
    "--set",
    "global.image.credentials.servername=registry.example.com,global.image.credentials.username=u,global.image.credentials.password=p",
    "--set",
    "global.monitoredID=blue,global.image.pullPolicy=Always,image.tag=1.2.3",
    "--set",
    "nodeSelector.disk=ssd,podLabels.team=a,imagePullSecrets[0].name=other",
    "--set",
    "jobImagePullSecrets={regcred,mirror}",
    "--set",
    "outputPersist.resources.limits.cpu=,outputPersist.resources.requests.memory=64Mi",
];

#[test]
fn chart_follows_the_crate_and_ships_the_generated_crd() {
    let chart = chart_file("Chart.yaml");
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["version"], quarks_job::VERSION);
    assert_eq!(chart["appVersion"], quarks_job::VERSION);
    let crd = |path: &std::path::Path| std::fs::read_to_string(path).expect("CRD file");
    assert_eq!(
        crd(&chart_dir().join("crds/quarksjobs.yaml")),
        crd(&support::repo_root().join("manifests/crd.yaml")),
        "the chart's CRD differs from manifests/crd.yaml: run 'make crd'"
    );
}

/// Upstream chart's keys keep upstream's defaults (reference §9.1), except `image.tag`, whose
/// upstream default was a placeholder rewritten at publish time, and `maxWorkers`, which
/// follows the operator's measured default (`--max-workers`, docs/benchmarks.md).
#[test]
fn values_keep_upstream_keys_and_defaults() {
    let values = chart_file("values.yaml");
    let upstream = json!({
        "applyCRD": true,
        "fullnameOverride": "",
        "nameOverride": "",
        "image": {"org": "cfcontainerization", "repository": "quarks-job"},
        "logLevel": "debug",
        "maxWorkers": quarks_job::reconcile::DEFAULT_MAX_WORKERS,
        "serviceAccount": {"create": true, "name": null},
        "persistOutputClusterRole": {"create": true, "name": "qjob-persist-output"},
        "singleNamespace": {"createNamespace": true, "createAccount": true},
        "global": {
            "contextTimeout": 30,
            "meltdownDuration": 60,
            "meltdownRequeueAfter": 30,
            "image": {"pullPolicy": "IfNotPresent", "credentials": null},
            "monitoredID": null,
            "rbac": {"create": true},
            "singleNamespace": {"create": true, "name": "staging"}
        }
    });
    fn check(path: &str, want: &Value, got: &Value) {
        match want {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, v)| check(&format!("{path}.{k}"), v, &got[k])),
            _ => assert_eq!(got, want, "values.yaml {path}"),
        }
    }
    check("", &upstream, &values);
    assert_eq!(values["image"]["tag"], "", "empty: the chart's appVersion");
}

#[test]
fn lint_passes_strictly_with_default_and_notable_values() {
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    helm(None, &["lint", "--strict", chart]).unwrap_or_else(|e| panic!("helm lint: {e}"));
    let mut args = vec!["lint", "--strict", chart];
    args.extend_from_slice(NOTABLE);
    helm(None, &args).unwrap_or_else(|e| panic!("helm lint {args:?}: {e}"));
}

#[test]
fn bad_values_are_rejected_naming_the_value() {
    let chart = chart_dir();
    let render = |set: &str| {
        helm(
            None,
            &["template", "x", chart.to_str().unwrap(), "--set", set],
        )
        .expect_err(set)
    };
    assert!(render("logLevel=verbose").contains("logLevel"));
    assert!(render("maxWorkers=0").contains("maxWorkers"));
    assert!(render("jobHistory=-1").contains("jobHistory"));
    assert!(render("runHistory=21").contains("runHistory"));
    assert!(render("global.image.pullPolicy=Sometimes").contains("pullPolicy"));
    assert!(render("outputPersist.resources.limits.memory=128MB").contains("memory"));
    let e = render("global.image.credentials.username=u,global.image.credentials.servername=r");
    assert!(e.contains("global.image.credentials.password"), "{e}");
}

#[test]
fn default_values_render_a_consistent_operator_with_upstream_names() {
    let objects = template("quarks-job", "quarks-job", &[]);
    let c = assert_operator_deployment(&objects, "quarks-job");
    assert_eq!(
        env_value(c, "DOCKER_IMAGE_TAG").as_deref(),
        Some(quarks_job::VERSION)
    );
    // upstream: the monitored id defaults to the full name
    assert_eq!(env_value(c, "MONITORED_ID").as_deref(), Some("quarks-job"));
    assert_eq!(env_value(c, "APPLY_CRD").as_deref(), Some("true"));
    assert_eq!(env_value(c, "CTX_TIMEOUT").as_deref(), Some("30"));
    // the binary's default history
    assert_eq!(
        env_value(c, "JOB_HISTORY"),
        Some(quarks_job::reconcile::DEFAULT_JOB_HISTORY.to_string())
    );
    assert_eq!(
        env_value(c, "RUN_HISTORY"),
        Some(quarks_job::reconcile::DEFAULT_RUN_HISTORY.to_string())
    );
    // the output container's resources are the binary's defaults
    let defaults = quarks_job::webhook::resources::OutputResources::DEFAULTS;
    for (var, default) in [
        ("OUTPUT_PERSIST_CPU_REQUEST", defaults.cpu_request),
        ("OUTPUT_PERSIST_MEMORY_REQUEST", defaults.memory_request),
        ("OUTPUT_PERSIST_CPU_LIMIT", defaults.cpu_limit),
        ("OUTPUT_PERSIST_MEMORY_LIMIT", defaults.memory_limit),
    ] {
        assert_eq!(env_value(c, var).as_deref(), default, "{var}");
    }
    assert_eq!(
        env_value(c, "WEBHOOK_CERT_SECRET").as_deref(),
        Some("quarks-job-webhook-cert")
    );
    let staging = find(&objects, "Namespace", "staging");
    assert_eq!(
        staging["metadata"]["labels"]["quarks.cloudfoundry.org/monitored"],
        "quarks-job"
    );
    assert!(
        objects
            .iter()
            .any(|o| o["kind"] == "CustomResourceDefinition")
    );

    // another release gets its own names
    let objects = template("blue", "operators", &[]);
    assert_operator_deployment(&objects, "blue-quarks-job");
    find(&objects, "ClusterRole", "blue-quarks-job");
    find(&objects, "Service", "blue-quarks-job-webhook");
}

/// The release owns the webhook configurations (so `helm uninstall` removes them): exactly those
/// the operator's code builds for the release's Service and monitored id (src/certs/
/// registration.rs is the one source of their rules), without a `caBundle`, which the operator
/// injects, for the default and for notable values.
#[test]
fn webhook_configurations_are_the_operators() {
    use support::manifests::{assert_same_configurations, registered_configurations};
    // release, namespace, values; the Service, its port and the monitored id they make
    type Case<'a> = (&'a str, &'a str, &'a [&'a str], &'a str, i32, &'a str);
    let cases: [Case; 3] = [
        (
            "quarks-job",
            "quarks-job",
            &[],
            "quarks-job-webhook",
            443,
            "quarks-job",
        ),
        (
            "blue",
            "operators",
            &[],
            "blue-quarks-job-webhook",
            443,
            "blue-quarks-job",
        ),
        (
            "quarks-job",
            "ops",
            NOTABLE,
            "quarks-job-webhook",
            8443,
            "blue",
        ),
    ];
    for (release, ns, values, service, port, id) in cases {
        let objects = template(release, ns, values);
        let name = quarks_job::certs::Registration::name_for(id);
        let shipped = [
            find(&objects, "MutatingWebhookConfiguration", &name),
            find(&objects, "ValidatingWebhookConfiguration", &name),
        ];
        assert_same_configurations(&shipped, &registered_configurations(ns, service, port, id));
    }
}

/// A PodDisruptionBudget keeps a replica serving the webhook through node drains; with one
/// replica there is none (it would block every drain).
#[test]
fn a_disruption_budget_keeps_one_replica_serving() {
    let objects = template("quarks-job", "quarks-job", &[]);
    let pdb = find(&objects, "PodDisruptionBudget", "quarks-job");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let deployment = find(&objects, "Deployment", "quarks-job");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    // policy/v1beta1 before Kubernetes 1.21 (the version `helm install` reads from the cluster)
    assert_eq!(pdb["apiVersion"], "policy/v1");
    let old = template("quarks-job", "quarks-job", &["--kube-version", "1.20.2"]);
    let old_pdb = find(&old, "PodDisruptionBudget", "quarks-job");
    assert_eq!(old_pdb["apiVersion"], "policy/v1beta1");
    let single = template("quarks-job", "quarks-job", &["--set", "replicaCount=1"]);
    assert!(!single.iter().any(|o| o["kind"] == "PodDisruptionBudget"));
}

/// The default monitored id is upstream's, so namespaces labelled for an upstream installation
/// stay monitored: the release namespace if it contains the chart name, else
/// `<release>-quarks-job` (or fullnameOverride).
#[test]
fn default_monitored_id_is_upstreams() {
    for (release, namespace, extra, id) in [
        ("quarks-job", "quarks-job", "", "quarks-job"),
        ("qjob", "quarks", "", "qjob-quarks-job"),
        ("quarks-job", "quarks", "", "quarks-job-quarks-job"),
        ("blue", "my-quarks-job", "", "my-quarks-job"),
        ("blue", "quarks", "fullnameOverride=qj", "qj"),
        ("blue", "quarks", "global.monitoredID=staging", "staging"),
    ] {
        let set: Vec<&str> = if extra.is_empty() {
            vec![]
        } else {
            vec!["--set", extra]
        };
        let objects = template(release, namespace, &set);
        let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        let c = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            env_value(c, "MONITORED_ID").as_deref(),
            Some(id),
            "release {release} in {namespace} {extra}"
        );
        let single = objects.iter().find(|o| o["kind"] == "Namespace").unwrap();
        assert_eq!(
            single["metadata"]["labels"]["quarks.cloudfoundry.org/monitored"],
            id
        );
    }
}

#[test]
fn notable_values_reach_the_operator() {
    let objects = template("quarks-job", "quarks-job", NOTABLE);
    let c = assert_operator_deployment(&objects, "quarks-job");
    let env = |name: &str| env_value(c, name);
    assert_eq!(env("APPLY_CRD").as_deref(), Some("false"));
    assert_eq!(env("LOG_FORMAT").as_deref(), Some("json"));
    assert_eq!(env("MAX_WORKERS").as_deref(), Some("4"));
    assert_eq!(env("VERSIONED_SECRET_HISTORY").as_deref(), Some("3"));
    assert_eq!(env("JOB_HISTORY").as_deref(), Some("7"));
    assert_eq!(env("RUN_HISTORY").as_deref(), Some("9"));
    assert_eq!(env("MONITORED_ID").as_deref(), Some("blue"));
    // the output container's resources: one changed, one removed, the others the defaults
    assert_eq!(
        env("OUTPUT_PERSIST_MEMORY_REQUEST").as_deref(),
        Some("64Mi")
    );
    assert_eq!(env("OUTPUT_PERSIST_CPU_LIMIT").as_deref(), Some(""));
    assert_eq!(env("OUTPUT_PERSIST_CPU_REQUEST").as_deref(), Some("10m"));
    assert_eq!(env("OUTPUT_PERSIST_MEMORY_LIMIT").as_deref(), Some("128Mi"));
    assert_eq!(env("DOCKER_IMAGE_TAG").as_deref(), Some("1.2.3"));
    assert_eq!(
        env("DOCKER_IMAGE_PULL_SECRETS").as_deref(),
        Some("regcred,mirror")
    );
    // a certificate of one's own: mounted and served, no self-managed Secret (nor a Role rule
    // for it: the Role keeps the leader election Lease and the webhook probe's dry-run pod)
    assert_eq!(env("WEBHOOK_CERT_SECRET"), None);
    let dir = env("WEBHOOK_CERT_DIR").expect("WEBHOOK_CERT_DIR");
    assert_eq!(c["volumeMounts"][0]["mountPath"], dir.as_str());
    let pod = &find(&objects, "Deployment", "quarks-job")["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "my-cert");
    let role = find(&objects, "Role", "quarks-job");
    let resources: Vec<&Value> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["resources"].as_array().unwrap())
        .collect();
    assert_eq!(resources, [&json!("leases"), &json!("pods")], "{role}");
    // an existing account: none created, the pod runs as it
    assert_eq!(pod["serviceAccountName"], "my-operator");
    assert!(
        !objects
            .iter()
            .any(|o| o["kind"] == "ServiceAccount" && o["metadata"]["name"] == "my-operator")
    );
    // registry credentials: a dockerconfigjson Secret the pod pulls with, besides `other`
    let secret = find(&objects, "Secret", "my-operator-pull-secret");
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(
        pod["imagePullSecrets"],
        json!([{"name": "my-operator-pull-secret"}, {"name": "other"}])
    );
    assert_eq!(pod["nodeSelector"]["disk"], "ssd");
}

/// A rule set compared regardless of the order of rules and of their lists.
fn rules(role: &Value) -> BTreeSet<String> {
    role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|rule| {
            let mut sorted = serde_json::Map::new();
            for (k, v) in rule.as_object().unwrap() {
                let mut items: Vec<String> = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_str().unwrap().to_string())
                    .collect();
                items.sort();
                sorted.insert(k.clone(), json!(items));
            }
            Value::Object(sorted).to_string()
        })
        .collect()
}

/// The chart grants exactly what the kustomize manifests grant (tests/manifests.rs proves those
/// rules are enough by running the binary with them), so the two never drift apart.
#[test]
fn rbac_equals_the_kustomize_manifests() {
    let chart = template(
        "quarks-job",
        "quarks-job",
        &["--set", "global.monitoredID=default"],
    );
    let kustomize = yaml::kustomize(&support::repo_root().join("manifests"));
    for (kind, name) in [
        ("ClusterRole", "quarks-job"),
        ("ClusterRole", "quarks-job-monitored"),
        ("Role", "quarks-job"),
        ("ClusterRole", "qjob-persist-output"),
    ] {
        assert_eq!(
            rules(find(&chart, kind, name)),
            rules(find(&kustomize, kind, name)),
            "{kind} {name}"
        );
    }
    // the bindings, and the onboarding of the single namespace (the operator's RoleBinding,
    // the output account's token Secret), are the same objects
    for (kind, name, ns) in [
        ("ClusterRoleBinding", "quarks-job", None),
        ("RoleBinding", "quarks-job", Some("quarks-job")),
        ("RoleBinding", "quarks-job", Some("staging")),
        ("RoleBinding", "qjob-persist-output", Some("staging")),
    ] {
        let (c, k) = (
            find_in(&chart, kind, name, ns),
            find_in(&kustomize, kind, name, ns),
        );
        assert_eq!(c["roleRef"], k["roleRef"], "{kind} {name}");
        assert_eq!(c["subjects"], k["subjects"], "{kind} {name}");
    }
    let token = "qjob-persist-output-qjob-token";
    let (c, k) = (
        find_in(&chart, "Secret", token, Some("staging")),
        find_in(&kustomize, "Secret", token, Some("staging")),
    );
    assert_eq!(c["type"], k["type"]);
    assert_eq!(c["metadata"]["annotations"], k["metadata"]["annotations"]);
    assert_eq!(
        token,
        quarks_job::webhook::mutate::token_secret_name("qjob-persist-output")
    );
    // the certificate Secret, created empty (the operator may not create Secrets)
    let (c, k) = (
        find_in(
            &chart,
            "Secret",
            "quarks-job-webhook-cert",
            Some("quarks-job"),
        ),
        find_in(
            &kustomize,
            "Secret",
            "quarks-job-webhook-cert",
            Some("quarks-job"),
        ),
    );
    for cert in [c, k] {
        assert!(
            cert.get("data").is_none() && cert.get("type").is_none(),
            "{cert}"
        );
    }
    // the single namespace is the manifests' example namespace `staging`
    let labels = &find(&chart, "Namespace", "staging")["metadata"]["labels"];
    for (k, v) in find(&kustomize, "Namespace", "staging")["metadata"]["labels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&labels[k], v, "label {k}");
    }

    // the webhook configurations it may write are the ones the binary registers for its id
    let blue = template(
        "quarks-job",
        "quarks-job",
        &["--set", "global.monitoredID=Blue_Team.1"],
    );
    let granted = rules(find(&blue, "ClusterRole", "quarks-job"));
    let name = quarks_job::certs::Registration::name_for("Blue_Team.1");
    assert_eq!(name, "quarks-job-blue-team.1");
    assert!(
        granted
            .iter()
            .any(|r| r.contains("webhookconfigurations") && r.contains(&format!("\"{name}\""))),
        "{granted:?}"
    );

    // without CRD management the operator gets no permission on CRDs, and nothing else changes
    let no_crd = template(
        "quarks-job",
        "quarks-job",
        &["--set", "applyCRD=false,global.monitoredID=default"],
    );
    let mut expected = rules(find(&kustomize, "ClusterRole", "quarks-job"));
    expected.retain(|r| !r.contains("customresourcedefinitions"));
    assert_eq!(rules(find(&no_crd, "ClusterRole", "quarks-job")), expected);

    // global.rbac.create=false: no RBAC at all
    let no_rbac = template(
        "quarks-job",
        "quarks-job",
        &["--set", "global.rbac.create=false"],
    );
    let kinds: BTreeSet<&str> = no_rbac.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert!(
        !kinds.contains("ClusterRole") && !kinds.contains("Role"),
        "{kinds:?}"
    );
}

/// `helm template … | kubectl apply --dry-run=server` against the real apiserver, for the
/// default values and for notable variations (unique namespaces per case).
#[tokio::test]
async fn rendered_objects_pass_a_server_side_dry_run() {
    let kubeconfig = support::shared().kubeconfig.clone();
    let cases: [&[&str]; 4] = [
        &[],
        NOTABLE,
        &[
            "--set",
            "global.rbac.create=false,global.singleNamespace.create=false",
        ],
        &[
            "--set",
            "singleNamespace.createNamespace=false,persistOutputClusterRole.create=false",
        ],
    ];
    for extra in cases {
        let ns = format!("qjob-helm-{}", support::unique());
        let single = format!("qjob-helm-staging-{}", support::unique());
        let set_single = format!("global.singleNamespace.name={single}");
        // the test control plane's version: the PodDisruptionBudget's API version follows it
        let mut args = vec!["--kube-version", "1.20.2", "--set", set_single.as_str()];
        args.extend_from_slice(extra);
        let objects = template("quarks-job", &ns, &args);
        // every object is either cluster-scoped or in the release or the monitored namespace
        for o in &objects {
            let on = o["metadata"]["namespace"].as_str();
            assert!(
                on.is_none() || on == Some(ns.as_str()) || on == Some(single.as_str()),
                "{o}"
            );
        }
        yaml::server_dry_run(&kubeconfig, &objects);
    }
}

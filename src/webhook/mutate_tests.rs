//! Unit tests of the pod mutation: mutate, apply the patch with json_patch, look at the pod.
use super::*;
use crate::core::api::{Output, QuarksJobSpec};
use serde_json::{Value, json};

fn pod(spec: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"generateName": "job-", "labels": {"quarks.cloudfoundry.org/qjob-name": "q"}},
        "spec": spec
    }))
    .unwrap()
}

fn qjob(with_output: bool) -> QuarksJob {
    let output = with_output.then(|| Output {
        output_map: [("c1".to_string(), Default::default())].into(),
        ..Default::default()
    });
    QuarksJob::new(
        "q",
        QuarksJobSpec {
            output,
            ..Default::default()
        },
    )
}

fn versioned(name: &str, version: u64) -> ObjectMeta {
    serde_json::from_value(json!({
        "name": format!("{name}-v{version}"),
        "namespace": "ns",
        "labels": {
            "quarks.cloudfoundry.org/secret-kind": "versionedSecret",
            "quarks.cloudfoundry.org/secret-version": version.to_string(),
        }
    }))
    .unwrap()
}

fn ctx<'a>(qjob: Option<&'a QuarksJob>, versions: &'a [ObjectMeta]) -> MutationContext<'a> {
    MutationContext {
        namespace: "ns",
        qjob,
        output_service_account: Some("persist-output-sa"),
        service_account_exists: true,
        image: "cfcontainerization/quarks-job:1.0",
        pull_policy: "IfNotPresent",
        versioned_secret_history: 0,
        versioned_secrets: versions,
        pull_secrets: &[],
        resources: &NO_RESOURCES,
    }
}

static NO_RESOURCES: ResourceRequirements = ResourceRequirements {
    claims: None,
    limits: None,
    requests: None,
};

/// Mutate, apply the patch to the pod's JSON, and return the result.
fn apply(pod: &Pod, ctx: &MutationContext<'_>) -> Pod {
    let patch = mutate(pod, ctx).expect("allowed");
    let mut value = serde_json::to_value(pod).unwrap();
    json_patch::patch(&mut value, &patch).unwrap();
    serde_json::from_value(value).unwrap()
}

fn container<'a>(pod: &'a Pod, name: &str) -> &'a Container {
    pod.spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .find(|c| c.name == name)
        .expect(name)
}

fn mounts(c: &Container) -> Vec<(String, String)> {
    c.volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.clone(), m.mount_path.clone()))
        .collect()
}

#[test]
fn a_pod_without_volumes_gets_output_volumes_and_the_output_container() {
    let q = qjob(true);
    let p = pod(
        json!({"containers": [{"name": "c1", "image": "busybox"}, {"name": "Side_Car", "image": "x"}]}),
    );
    let out = apply(&p, &ctx(Some(&q), &[]));
    let spec = out.spec.as_ref().unwrap();
    let volumes: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(volumes, ["output-c1", "output-side-car", TOKEN_VOLUME]);
    let token = &spec.volumes.as_ref().unwrap()[2].secret.as_ref().unwrap();
    assert_eq!(
        token.secret_name.as_deref(),
        Some("persist-output-sa-qjob-token")
    );
    assert_eq!(
        mounts(container(&out, "c1")),
        [("output-c1".into(), "/mnt/quarks".into())]
    );
    assert_eq!(
        mounts(container(&out, "Side_Car")),
        [("output-side-car".into(), "/mnt/quarks".into())]
    );

    let persist = container(&out, OUTPUT_PERSIST_CONTAINER);
    assert_eq!(
        spec.containers.last().unwrap().name,
        OUTPUT_PERSIST_CONTAINER
    );
    assert_eq!(
        persist.image.as_deref(),
        Some("cfcontainerization/quarks-job:1.0")
    );
    assert_eq!(persist.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(
        persist.args.as_deref(),
        Some(&["persist-output".to_string()][..])
    );
    assert_eq!(
        mounts(persist),
        [
            (TOKEN_VOLUME.into(), TOKEN_MOUNT_PATH.into()),
            ("output-c1".into(), "/mnt/quarks/c1".into()),
            ("output-side-car".into(), "/mnt/quarks/Side_Car".into()),
        ]
    );
    let env = persist.env.as_ref().unwrap();
    assert_eq!(
        (env[0].name.as_str(), env[0].value.as_deref()),
        ("NAMESPACE", Some("ns"))
    );
    let pod_name = env[1]
        .value_from
        .as_ref()
        .unwrap()
        .field_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (env[1].name.as_str(), pod_name.field_path.as_str()),
        ("POD_NAME", "metadata.name")
    );
    // user containers keep their own identity: the token is mounted in output-persist only
    assert!(
        !mounts(container(&out, "c1"))
            .iter()
            .any(|(_, path)| path == TOKEN_MOUNT_PATH)
    );
}

#[test]
fn existing_volumes_and_mounts_are_kept() {
    let q = qjob(true);
    let p = pod(json!({
        "volumes": [{"name": "data", "emptyDir": {}}],
        "containers": [{"name": "c1", "image": "i", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]
    }));
    let out = apply(&p, &ctx(Some(&q), &[]));
    let volumes: Vec<&str> = out
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(volumes, ["data", "output-c1", TOKEN_VOLUME]);
    assert_eq!(
        mounts(container(&out, "c1")),
        [
            ("data".into(), "/data".into()),
            ("output-c1".into(), "/mnt/quarks".into())
        ]
    );
}

#[test]
fn mutating_twice_adds_nothing() {
    let q = qjob(true);
    let versions = [versioned("creds", 1), versioned("creds", 2)];
    let p = pod(json!({
        "initContainers": [{"name": "init", "image": "i", "envFrom": [{"secretRef": {"name": "creds-v1"}}]}],
        "containers": [{"name": "c1", "image": "i"}]
    }));
    let c = ctx(Some(&q), &versions);
    let once = apply(&p, &c);
    let patch = mutate(&once, &c).unwrap();
    assert!(
        patch.0.is_empty(),
        "second invocation patched again: {patch:?}"
    );
}

#[test]
fn no_output_means_no_output_container_but_volumes_still() {
    let q = qjob(false);
    let p = pod(json!({"containers": [{"name": "c1", "image": "i"}]}));
    // no service account needed then
    let mut c = ctx(Some(&q), &[]);
    c.output_service_account = None;
    let out = apply(&p, &c);
    let spec = out.spec.as_ref().unwrap();
    assert_eq!(spec.containers.len(), 1);
    assert_eq!(spec.volumes.as_ref().unwrap().len(), 1);
}

#[test]
fn an_unknown_quarksjob_still_gets_the_output_container() {
    let p = pod(json!({"containers": [{"name": "c1", "image": "i"}]}));
    let out = apply(&p, &ctx(None, &[]));
    assert!(
        out.spec
            .unwrap()
            .containers
            .iter()
            .any(|c| c.name == OUTPUT_PERSIST_CONTAINER)
    );
}

#[test]
fn a_missing_output_service_account_is_a_denial_naming_label_and_account() {
    let q = qjob(true);
    let p = pod(json!({"containers": [{"name": "c1", "image": "i"}]}));
    let mut c = ctx(Some(&q), &[]);
    c.output_service_account = None;
    let err = mutate(&p, &c).unwrap_err();
    assert!(
        err.contains("namespace 'ns'") && err.contains(LABEL_QJOB_SERVICE_ACCOUNT),
        "{err}"
    );
    let mut c = ctx(Some(&q), &[]);
    c.service_account_exists = false;
    let err = mutate(&p, &c).unwrap_err();
    assert!(
        err.contains("'persist-output-sa'") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn every_versioned_reference_points_at_the_newest_version() {
    let versions = [
        versioned("creds", 1),
        versioned("creds", 3),
        versioned("creds", 2),
        versioned("other", 1),
    ];
    let p = pod(json!({
        "volumes": [
            {"name": "a", "secret": {"secretName": "creds-v1"}},
            {"name": "b", "projected": {"sources": [{"secret": {"name": "creds-v2"}}, {"configMap": {"name": "creds-v1"}}]}},
            {"name": "c", "secret": {"secretName": "unrelated-v1"}},
            {"name": "d", "secret": {"secretName": "other-v1"}}
        ],
        "initContainers": [{"name": "init", "image": "i",
            "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds-v1", "key": "k"}}}]}],
        "containers": [{"name": "c1", "image": "i", "envFrom": [{"secretRef": {"name": "creds-v1"}}]}]
    }));
    let q = qjob(false);
    let out = apply(&p, &ctx(Some(&q), &versions));
    let value = serde_json::to_value(&out).unwrap();
    let spec = &value["spec"];
    assert_eq!(spec["volumes"][0]["secret"]["secretName"], "creds-v3");
    assert_eq!(
        spec["volumes"][1]["projected"]["sources"][0]["secret"]["name"],
        "creds-v3"
    );
    assert_eq!(
        spec["volumes"][1]["projected"]["sources"][1]["configMap"]["name"], "creds-v1",
        "ConfigMaps are not versioned"
    );
    assert_eq!(
        spec["volumes"][2]["secret"]["secretName"], "unrelated-v1",
        "no versions of it exist"
    );
    assert_eq!(
        spec["volumes"][3]["secret"]["secretName"], "other-v1",
        "already the newest"
    );
    assert_eq!(
        spec["initContainers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"],
        "creds-v3"
    );
    assert_eq!(
        spec["containers"][0]["envFrom"][0]["secretRef"]["name"],
        "creds-v3"
    );
}

#[test]
fn prefixes_match_exactly() {
    // `cred-v1` must not pick up versions of `creds` (upstream matched substrings)
    let versions = [versioned("creds", 5)];
    let p = pod(
        json!({"volumes": [{"name": "a", "secret": {"secretName": "cred-v1"}}],
                       "containers": [{"name": "c1", "image": "i"}]}),
    );
    let q = qjob(false);
    let out = apply(&p, &ctx(Some(&q), &versions));
    assert_eq!(
        serde_json::to_value(&out).unwrap()["spec"]["volumes"][0]["secret"]["secretName"],
        "cred-v1"
    );
}

#[test]
fn history_setting_is_passed_to_persist_output() {
    let q = qjob(true);
    let p = pod(json!({"containers": [{"name": "c1", "image": "i"}]}));
    let mut c = ctx(Some(&q), &[]);
    c.versioned_secret_history = 3;
    let out = apply(&p, &c);
    let env = container(&out, OUTPUT_PERSIST_CONTAINER)
        .env
        .clone()
        .unwrap();
    assert!(
        env.iter()
            .any(|e| e.name == "VERSIONED_SECRET_HISTORY" && e.value.as_deref() == Some("3"))
    );
}

#[test]
fn names_are_dns_labels() {
    assert_eq!(output_volume_name("Json_Out"), "output-json-out");
    assert!(output_volume_name(&"x".repeat(80)).len() <= 63);
    assert_eq!(token_secret_name("persist"), "persist-qjob-token");
}

#[test]
fn the_operator_images_pull_secrets_come_with_the_output_container() {
    let q = qjob(true);
    let secrets = ["registry-a".to_string(), "registry-b".to_string()];
    let with_secrets = MutationContext {
        pull_secrets: &secrets,
        ..ctx(Some(&q), &[])
    };
    let before = pod(json!({
        "imagePullSecrets": [{"name": "registry-a"}],
        "containers": [{"name": "c1", "image": "busybox"}]
    }));
    let after = apply(&before, &with_secrets);
    let names: Vec<String> = after
        .spec
        .as_ref()
        .unwrap()
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(names, ["registry-a", "registry-b"]);
    // reinvoked: nothing added twice
    assert_eq!(apply(&after, &with_secrets), after);
    // without output there is no output container, so no pull secret either
    let plain = qjob(false);
    let ctx = MutationContext {
        pull_secrets: &secrets,
        ..ctx(Some(&plain), &[])
    };
    let after = apply(
        &pod(json!({"containers": [{"name": "c1", "image": "busybox"}]})),
        &ctx,
    );
    assert!(after.spec.unwrap().image_pull_secrets.is_none());
}

#[path = "pod_security_tests.rs"]
mod pod_security;

#[test]
fn the_patch_touches_the_spec_only_and_applies_to_a_pod_without_one() {
    let q = qjob(true);
    let with_spec = pod(json!({"containers": [{"name": "c1", "image": "busybox"}]}));
    let patch = mutate(&with_spec, &ctx(Some(&q), &[])).unwrap();
    assert!(!patch.0.is_empty());
    for op in &patch.0 {
        let path = serde_json::to_value(op).unwrap()["path"].clone();
        assert!(
            path.as_str().unwrap().starts_with("/spec/"),
            "{path} is outside the spec"
        );
    }
    // (the apiserver always sends a spec; a pod without one still gets a usable patch)
    let mut without = with_spec.clone();
    without.spec = None;
    let mutated = apply(&without, &ctx(Some(&q), &[]));
    assert_eq!(
        container(&mutated, OUTPUT_PERSIST_CONTAINER).args,
        Some(vec!["persist-output".to_string()])
    );
    assert_eq!(mutated.metadata, without.metadata);
}

/// The whole pod after the patch, for a pod like the bench's: every addition where it belongs,
/// the versioned reference rewritten, nothing else changed.
#[test]
fn the_patched_pod_is_the_expected_pod() {
    let q = qjob(true);
    let versions = [versioned("creds", 1), versioned("creds", 2)];
    let p = pod(json!({
        "containers": [
            {"name": "c", "image": "busybox", "volumeMounts": [{"name": "creds", "mountPath": "/creds"}]},
            {"name": "d", "image": "busybox", "envFrom": [{"secretRef": {"name": "creds-v1"}}]}
        ],
        "volumes": [{"name": "creds", "secret": {"secretName": "creds-v1"}}]
    }));
    let mut c = ctx(Some(&q), &versions);
    c.versioned_secret_history = 2;
    let patched = serde_json::to_value(apply(&p, &c)).unwrap();
    let expected = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "job-", "labels": {"quarks.cloudfoundry.org/qjob-name": "q"}},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "volumeMounts": [
                    {"name": "creds", "mountPath": "/creds"},
                    {"name": "output-c", "mountPath": "/mnt/quarks"}
                ]},
                {"name": "d", "image": "busybox", "envFrom": [{"secretRef": {"name": "creds-v2"}}],
                 "volumeMounts": [{"name": "output-d", "mountPath": "/mnt/quarks"}]},
                {
                    "name": "output-persist",
                    "image": "cfcontainerization/quarks-job:1.0",
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["persist-output"],
                    "env": [
                        {"name": "NAMESPACE", "value": "ns"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "VERSIONED_SECRET_HISTORY", "value": "2"}
                    ],
                    "volumeMounts": [
                        {"name": TOKEN_VOLUME, "mountPath": TOKEN_MOUNT_PATH, "readOnly": true},
                        {"name": "output-c", "mountPath": "/mnt/quarks/c"},
                        {"name": "output-d", "mountPath": "/mnt/quarks/d"}
                    ],
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "capabilities": {"drop": ["ALL"]},
                        "readOnlyRootFilesystem": true,
                        "runAsGroup": OUTPUT_PERSIST_USER,
                        "runAsNonRoot": true,
                        "runAsUser": OUTPUT_PERSIST_USER,
                        "seccompProfile": {"type": "RuntimeDefault"}
                    }
                }
            ],
            "volumes": [
                {"name": "creds", "secret": {"secretName": "creds-v2"}},
                {"name": "output-c", "emptyDir": {}},
                {"name": "output-d", "emptyDir": {}},
                {"name": TOKEN_VOLUME, "secret": {"secretName": "persist-output-sa-qjob-token", "defaultMode": 0o644}}
            ]
        }
    });
    assert_eq!(patched, expected);
    // the patch appends to lists, adds what is missing and replaces names: it never overwrites
    // a part of the pod
    let original = serde_json::to_value(&p).unwrap();
    let patch = serde_json::to_value(mutate(&p, &c).unwrap()).unwrap();
    for op in patch.as_array().unwrap() {
        let path = op["path"].as_str().unwrap();
        match op["op"].as_str().unwrap() {
            "add" => assert!(
                path.ends_with("/-") || original.pointer(path).is_none(),
                "{op} overwrites a part of the pod"
            ),
            "replace" => assert!(
                original.pointer(path).is_some_and(Value::is_string),
                "{op} replaces more than a name"
            ),
            other => panic!("unexpected operation {other}: {op}"),
        }
    }
}

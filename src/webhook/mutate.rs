//! Mutating a QuarksJob pod (pure: pod + a snapshot of the caches → JSON patch):
//! 1. every regular container gets an emptyDir output volume mounted at `/mnt/quarks`;
//! 2. when the QuarksJob has `spec.output`, the `output-persist` container is added: the operator
//!    image running `persist-output`, with each container's output volume at
//!    `/mnt/quarks/<container>` and the namespace's output service account token mounted into it
//!    only (user containers keep their own identity);
//! 3. references to versioned secrets `<name>-v<N>` point at the newest version.
//!
//! Applying the mutation twice adds nothing (reinvocation, retries).

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector, Pod,
    SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::validate::OUTPUT_PERSIST_CONTAINER;
use crate::api::QuarksJob;
use crate::api::labels::LABEL_QJOB_SERVICE_ACCOUNT;
use crate::names::{sanitize, sanitize_subdomain};

/// Where containers write their output.
pub const OUTPUT_DIR: &str = "/mnt/quarks";
/// Where the output service account's token is mounted in `output-persist`.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Name of the token volume.
pub const TOKEN_VOLUME: &str = "qjob-output-token";

/// The name of the token Secret the operator keeps for an output service account (a
/// `kubernetes.io/service-account-token` Secret, filled by Kubernetes' token controller; since
/// Kubernetes 1.24 no such Secret exists unless someone creates it).
pub fn token_secret_name(service_account: &str) -> String {
    sanitize_subdomain(&format!("{service_account}-qjob-token"))
}

/// The output volume of a container (upstream's name, `output-<container>` as a DNS label).
pub fn output_volume_name(container: &str) -> String {
    sanitize(&format!("output-{container}"))
}

/// What the mutation needs to know besides the pod.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// The pod's namespace (from the AdmissionRequest: pods of a Job arrive without one).
    pub namespace: &'a str,
    /// The pod's QuarksJob, if the cache has it.
    pub qjob: Option<&'a QuarksJob>,
    /// The namespace's `quarks.cloudfoundry.org/qjob-service-account` label.
    pub output_service_account: Option<&'a str>,
    /// Whether that service account exists.
    pub service_account_exists: bool,
    /// The operator image (`--docker-image-*`).
    pub image: &'a str,
    /// Its pull policy.
    pub pull_policy: &'a str,
    /// `--versioned-secret-history`, passed on to persist-output (0 keeps all).
    pub versioned_secret_history: u32,
    /// Metadata of the namespace's versioned secrets.
    pub versioned_secrets: &'a [ObjectMeta],
}

/// The patch that makes `pod` a QuarksJob pod, or the reason it must be denied.
pub fn mutate(pod: &Pod, ctx: &Context<'_>) -> Result<json_patch::Patch, String> {
    let before = serde_json::to_value(pod).map_err(|e| format!("cannot read the pod: {e}"))?;
    let mut pod = pod.clone();
    let spec = pod.spec.get_or_insert_with(Default::default);
    add_output_volumes(spec);
    // Without a cached QuarksJob the container is added too: persist-output exits at once when
    // there is no output, while a missing container would lose output for good.
    if ctx.qjob.is_none_or(|q| q.spec.output.is_some()) {
        add_output_container(spec, ctx)?;
    }
    super::versioned_refs::point_to_latest(spec, ctx.versioned_secrets);
    let after = serde_json::to_value(&pod).map_err(|e| format!("cannot write the pod: {e}"))?;
    Ok(json_patch::diff(&before, &after))
}

fn user_containers(spec: &k8s_openapi::api::core::v1::PodSpec) -> impl Iterator<Item = &Container> {
    spec.containers
        .iter()
        .filter(|c| c.name != OUTPUT_PERSIST_CONTAINER)
}

fn add_output_volumes(spec: &mut k8s_openapi::api::core::v1::PodSpec) {
    let names: Vec<String> = user_containers(spec).map(|c| c.name.clone()).collect();
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    for name in &names {
        let volume = output_volume_name(name);
        if !volumes.iter().any(|v| v.name == volume) {
            volumes.push(Volume {
                name: volume,
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            });
        }
    }
    for c in spec
        .containers
        .iter_mut()
        .filter(|c| c.name != OUTPUT_PERSIST_CONTAINER)
    {
        let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
        let already = mounts
            .iter()
            .any(|m| m.mount_path.trim_end_matches('/') == OUTPUT_DIR);
        if !already {
            mounts.push(VolumeMount {
                name: output_volume_name(&c.name),
                mount_path: OUTPUT_DIR.into(),
                ..Default::default()
            });
        }
    }
}

fn add_output_container(
    spec: &mut k8s_openapi::api::core::v1::PodSpec,
    ctx: &Context<'_>,
) -> Result<(), String> {
    if spec
        .containers
        .iter()
        .any(|c| c.name == OUTPUT_PERSIST_CONTAINER)
    {
        return Ok(());
    }
    let Some(sa) = ctx.output_service_account.filter(|s| !s.is_empty()) else {
        return Err(format!(
            "namespace '{}' has no label '{LABEL_QJOB_SERVICE_ACCOUNT}' naming the service account the \
             output-persist container runs as; add the label and create that service account",
            ctx.namespace
        ));
    };
    if !ctx.service_account_exists {
        return Err(format!(
            "service account '{sa}' (named by label '{LABEL_QJOB_SERVICE_ACCOUNT}' of namespace '{ns}') does \
             not exist in namespace '{ns}'; create it and bind it to the ClusterRole qjob-persist-output",
            ns = ctx.namespace
        ));
    }
    let mut mounts = vec![VolumeMount {
        name: TOKEN_VOLUME.into(),
        mount_path: TOKEN_MOUNT_PATH.into(),
        read_only: Some(true),
        ..Default::default()
    }];
    mounts.extend(user_containers(spec).map(|c| VolumeMount {
        name: output_volume_name(&c.name),
        mount_path: format!("{OUTPUT_DIR}/{}", c.name),
        ..Default::default()
    }));
    let mut env = vec![
        EnvVar {
            name: "NAMESPACE".into(),
            value: Some(ctx.namespace.into()),
            ..Default::default()
        },
        EnvVar {
            name: "POD_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    if ctx.versioned_secret_history > 0 {
        env.push(EnvVar {
            name: "VERSIONED_SECRET_HISTORY".into(),
            value: Some(ctx.versioned_secret_history.to_string()),
            ..Default::default()
        });
    }
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    if !volumes.iter().any(|v| v.name == TOKEN_VOLUME) {
        volumes.push(Volume {
            name: TOKEN_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(token_secret_name(sa)),
                default_mode: Some(0o644),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    spec.containers.push(Container {
        name: OUTPUT_PERSIST_CONTAINER.into(),
        image: Some(ctx.image.into()),
        image_pull_policy: Some(ctx.pull_policy.into()),
        args: Some(vec!["persist-output".into()]),
        env: Some(env),
        volume_mounts: Some(mounts),
        ..Default::default()
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Output, QuarksJobSpec};
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

    fn ctx<'a>(qjob: Option<&'a QuarksJob>, versions: &'a [ObjectMeta]) -> Context<'a> {
        Context {
            namespace: "ns",
            qjob,
            output_service_account: Some("persist-output-sa"),
            service_account_exists: true,
            image: "cfcontainerization/quarks-job:1.0",
            pull_policy: "IfNotPresent",
            versioned_secret_history: 0,
            versioned_secrets: versions,
        }
    }

    /// Mutate, apply the patch to the pod's JSON, and return the result.
    fn apply(pod: &Pod, ctx: &Context<'_>) -> Pod {
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
}

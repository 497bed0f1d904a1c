//! Mutating a QuarksJob pod (pure: pod + a snapshot of the caches → JSON patch):
//! 1. every regular container gets an emptyDir output volume mounted at `/mnt/quarks`;
//! 2. when the QuarksJob has `spec.output`, the `output-persist` container is added: the operator
//!    image running `persist-output`, with each container's output volume at
//!    `/mnt/quarks/<container>` and the namespace's output service account token mounted into it
//!    only (user containers keep their own identity), non-root with a Pod Security `restricted`
//!    security context and the configured resources;
//! 3. references to versioned secrets `<name>-v<N>` point at the newest version.
//!
//! Applying the mutation twice adds nothing (reinvocation, retries).

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector, Pod,
    ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::core::api::QuarksJob;
use crate::core::api::labels::LABEL_QJOB_SERVICE_ACCOUNT;
use crate::core::api::labels::OUTPUT_PERSIST_CONTAINER;
use crate::core::names::{sanitize, sanitize_subdomain};

/// Where containers write their output.
pub const OUTPUT_DIR: &str = "/mnt/quarks";
/// Where the output service account's token is mounted in `output-persist`.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Name of the token volume.
pub const TOKEN_VOLUME: &str = "qjob-output-token";
/// The user (and group) the output-persist container runs as: distroless' `nonroot`, the
/// operator image's own user.
pub const OUTPUT_PERSIST_USER: i64 = 65532;

/// The name of the token Secret of an output service account that the output-persist container
/// mounts: a `kubernetes.io/service-account-token` Secret, created when the namespace is onboarded
/// (`manifests/staging-namespace.yaml`) and filled by Kubernetes' token controller (since
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
pub struct MutationContext<'a> {
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
    /// `--docker-image-pull-secrets`: pull secrets (in the pod's namespace) for the operator
    /// image, added to the pod with the output-persist container.
    pub pull_secrets: &'a [String],
    /// Metadata of the namespace's versioned secrets.
    pub versioned_secrets: &'a [ObjectMeta],
    /// Requests and limits of the output-persist container (`--output-persist-*`; empty: none).
    pub resources: &'a ResourceRequirements,
}

/// The patch that makes `pod` a QuarksJob pod, or the reason it must be denied.
pub fn mutate(pod: &Pod, ctx: &MutationContext<'_>) -> Result<json_patch::Patch, String> {
    // Only the spec changes: it alone is copied, written out and compared (the patch's paths
    // are those of the whole pod, under `/spec`).
    let before =
        spec_document(pod.spec.as_ref()).map_err(|e| format!("cannot read the pod: {e}"))?;
    let mut spec = pod.spec.clone().unwrap_or_default();
    add_output_volumes(&mut spec);
    // Without a cached QuarksJob the container is added too: persist-output exits at once when
    // there is no output, while a missing container would lose output for good.
    if ctx.qjob.is_none_or(|q| q.spec.output.is_some()) {
        add_output_container(&mut spec, ctx)?;
    }
    super::versioned_refs::point_to_latest(&mut spec, ctx.versioned_secrets);
    let after = spec_document(Some(&spec)).map_err(|e| format!("cannot write the pod: {e}"))?;
    Ok(json_patch::diff(&before, &after))
}

/// `{"spec": spec}` (`{}` without one): the part of a pod the mutation changes, as JSON.
fn spec_document(
    spec: Option<&k8s_openapi::api::core::v1::PodSpec>,
) -> serde_json::Result<serde_json::Value> {
    let mut document = serde_json::Map::new();
    if let Some(spec) = spec {
        document.insert("spec".into(), serde_json::to_value(spec)?);
    }
    Ok(serde_json::Value::Object(document))
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
    ctx: &MutationContext<'_>,
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
             not exist in namespace '{ns}'; onboard the namespace as manifests/staging-namespace.yaml does: \
             the service account, its token Secret '{token}' and its RoleBinding to the ClusterRole \
             qjob-persist-output",
            token = token_secret_name(sa),
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
    add_pull_secrets(spec, ctx.pull_secrets);
    let resources = *ctx.resources != ResourceRequirements::default();
    spec.containers.push(Container {
        name: OUTPUT_PERSIST_CONTAINER.into(),
        image: Some(ctx.image.into()),
        image_pull_policy: Some(ctx.pull_policy.into()),
        args: Some(vec!["persist-output".into()]),
        env: Some(env),
        volume_mounts: Some(mounts),
        resources: resources.then(|| ctx.resources.clone()),
        security_context: Some(restricted_security_context()),
        ..Default::default()
    });
    Ok(())
}

/// The output-persist container's security context: Pod Security `restricted` on its own,
/// whatever the pod's security context says (a container's settings win over the pod's). It
/// reads the output files (readable by others with the default umask) and the token, and
/// writes nothing to its file system.
fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(OUTPUT_PERSIST_USER),
        run_as_group: Some(OUTPUT_PERSIST_USER),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The operator image's pull secrets, each once (upstream §15.19: the output container's image
/// had to be pullable with the pod's own service account).
fn add_pull_secrets(spec: &mut k8s_openapi::api::core::v1::PodSpec, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let secrets = spec.image_pull_secrets.get_or_insert_with(Vec::new);
    for name in names {
        if !secrets.iter().any(|s| &s.name == name) {
            secrets.push(k8s_openapi::api::core::v1::LocalObjectReference { name: name.clone() });
        }
    }
}

#[cfg(test)]
#[path = "mutate_tests.rs"]
mod tests;

//! Mutating a QuarksJob pod (pure: pod + a snapshot of the caches → JSON patch, built from what
//! is added rather than by comparing copies of the pod):
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
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, LocalObjectReference,
    ObjectFieldSelector, Pod, PodSpec, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
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

/// The patch that makes `pod` a QuarksJob pod, or the reason it must be denied. It is built
/// from what the mutation adds (items appended to the spec's lists, versioned references
/// replaced), without copying the pod: paths are those of the whole pod, under `/spec`.
pub fn mutate(pod: &Pod, ctx: &MutationContext<'_>) -> Result<json_patch::Patch, String> {
    let empty;
    let mut patch = SpecPatch::default();
    let spec = match &pod.spec {
        Some(spec) => spec,
        None => {
            // (the apiserver always sends a spec; without one, an empty one is added first)
            patch.add::<&str>(&[], serde_json::json!({ "containers": [] }));
            empty = PodSpec::default();
            &empty
        }
    };
    let mut volumes = List::new(spec.volumes.as_deref(), |v: &Volume| v.name.as_str());
    add_output_volumes(spec, &mut volumes, &mut patch)?;
    // Without a cached QuarksJob the container is added too: persist-output exits at once when
    // there is no output, while a missing container would lose output for good.
    if ctx.qjob.is_none_or(|q| q.spec.output.is_some()) {
        add_output_container(spec, ctx, &mut volumes, &mut patch)?;
    }
    volumes.append_to(&["volumes"], &mut patch)?;
    for (tokens, name) in super::versioned_refs::point_to_latest(spec, ctx.versioned_secrets) {
        patch.replace(&tokens, serde_json::Value::String(name));
    }
    Ok(json_patch::Patch(patch.0))
}

/// The operations of a patch of a pod's spec.
#[derive(Default)]
struct SpecPatch(Vec<json_patch::PatchOperation>);

impl SpecPatch {
    fn pointer<T: AsRef<str>>(tokens: &[T]) -> json_patch::jsonptr::PointerBuf {
        json_patch::jsonptr::PointerBuf::from_tokens(
            std::iter::once("spec").chain(tokens.iter().map(AsRef::as_ref)),
        )
    }

    /// Add `value` at `/spec/<tokens>` (`-` as the last token appends to a list).
    fn add<T: AsRef<str>>(&mut self, tokens: &[T], value: serde_json::Value) {
        let path = Self::pointer(tokens);
        self.0
            .push(json_patch::PatchOperation::Add(json_patch::AddOperation {
                path,
                value,
            }));
    }

    /// Append `items` to the list at `/spec/<tokens>`: one `add` of the whole list where the
    /// pod has none (`!exists`), one `add …/-` per item otherwise.
    fn append<T: serde::Serialize>(
        &mut self,
        tokens: &[&str],
        exists: bool,
        items: &[T],
    ) -> Result<(), String> {
        let error = |e: serde_json::Error| format!("cannot write the patch: {e}");
        if items.is_empty() {
            return Ok(());
        }
        if !exists {
            self.add(tokens, serde_json::to_value(items).map_err(error)?);
            return Ok(());
        }
        let mut end = tokens.to_vec();
        end.push("-");
        for item in items {
            self.add(&end, serde_json::to_value(item).map_err(error)?);
        }
        Ok(())
    }

    /// Replace the value at `/spec/<tokens>` with `value`.
    fn replace<T: AsRef<str>>(&mut self, tokens: &[T], value: serde_json::Value) {
        let path = Self::pointer(tokens);
        self.0.push(json_patch::PatchOperation::Replace(
            json_patch::ReplaceOperation { path, value },
        ));
    }
}

/// A list of the pod's spec and the items the mutation appends to it, each name once.
struct List<'a, T> {
    existing: Option<&'a [T]>,
    name: fn(&T) -> &str,
    added: Vec<T>,
}

impl<'a, T: serde::Serialize> List<'a, T> {
    fn new(existing: Option<&'a [T]>, name: fn(&T) -> &str) -> Self {
        List {
            existing,
            name,
            added: Vec::new(),
        }
    }

    fn has(&self, name: &str) -> bool {
        let name_of = self.name;
        self.existing
            .into_iter()
            .flatten()
            .chain(&self.added)
            .any(|item| name_of(item) == name)
    }

    /// Append `item` unless an item of its name is there already.
    fn push(&mut self, item: T) {
        if !self.has((self.name)(&item)) {
            self.added.push(item);
        }
    }

    /// Append the added items to the list at `/spec/<tokens>`.
    fn append_to(self, tokens: &[&str], patch: &mut SpecPatch) -> Result<(), String> {
        patch.append(tokens, self.existing.is_some(), &self.added)
    }
}

fn user_containers(spec: &PodSpec) -> impl Iterator<Item = (usize, &Container)> {
    spec.containers
        .iter()
        .enumerate()
        .filter(|(_, c)| c.name != OUTPUT_PERSIST_CONTAINER)
}

/// Every user container gets an emptyDir output volume, mounted at [`OUTPUT_DIR`] unless
/// something is mounted there already.
fn add_output_volumes(
    spec: &PodSpec,
    volumes: &mut List<'_, Volume>,
    patch: &mut SpecPatch,
) -> Result<(), String> {
    for (_, c) in user_containers(spec) {
        volumes.push(Volume {
            name: output_volume_name(&c.name),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
    }
    for (i, c) in user_containers(spec) {
        let already = c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path.trim_end_matches('/') == OUTPUT_DIR);
        if !already {
            let mount = VolumeMount {
                name: output_volume_name(&c.name),
                mount_path: OUTPUT_DIR.into(),
                ..Default::default()
            };
            let tokens = ["containers", &i.to_string(), "volumeMounts"];
            patch.append(&tokens, c.volume_mounts.is_some(), &[mount])?;
        }
    }
    Ok(())
}

fn add_output_container(
    spec: &PodSpec,
    ctx: &MutationContext<'_>,
    volumes: &mut List<'_, Volume>,
    patch: &mut SpecPatch,
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
    mounts.extend(user_containers(spec).map(|(_, c)| VolumeMount {
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
    volumes.push(Volume {
        name: TOKEN_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(token_secret_name(sa)),
            default_mode: Some(0o644),
            ..Default::default()
        }),
        ..Default::default()
    });
    let resources = *ctx.resources != ResourceRequirements::default();
    let container = Container {
        name: OUTPUT_PERSIST_CONTAINER.into(),
        image: Some(ctx.image.into()),
        image_pull_policy: Some(ctx.pull_policy.into()),
        args: Some(vec!["persist-output".into()]),
        env: Some(env),
        volume_mounts: Some(mounts),
        resources: resources.then(|| ctx.resources.clone()),
        security_context: Some(restricted_security_context()),
        ..Default::default()
    };
    // (`containers` is there: the pod's, or the one added with an empty spec)
    patch.append(&["containers"], true, &[container])?;
    add_pull_secrets(spec, ctx.pull_secrets, patch)
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
fn add_pull_secrets(spec: &PodSpec, names: &[String], patch: &mut SpecPatch) -> Result<(), String> {
    let mut secrets = List::new(
        spec.image_pull_secrets.as_deref(),
        |s: &LocalObjectReference| s.name.as_str(),
    );
    for name in names {
        secrets.push(LocalObjectReference { name: name.clone() });
    }
    secrets.append_to(&["imagePullSecrets"], patch)
}

#[cfg(test)]
#[path = "mutate_tests.rs"]
mod tests;

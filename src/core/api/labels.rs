//! Label and annotation keys of the `quarks.cloudfoundry.org` API, named as upstream Quarks Job
//! named them, so that existing namespaces, pods and secrets keep working, and the other names
//! quarks-job puts on the wire (an environment variable, the injected container). This is the
//! only place where these strings are spelled out.
//!
//! Layer: core: plain data and pure functions, no I/O (see `crate::core`).

/// The API group of every key below.
pub const GROUP: &str = "quarks.cloudfoundry.org";

/// Namespace label: the monitored id this namespace belongs to.
pub const LABEL_MONITORED: &str = "quarks.cloudfoundry.org/monitored";
/// Namespace label: name of the ServiceAccount the output-persisting container runs as.
pub const LABEL_QJOB_SERVICE_ACCOUNT: &str = "quarks.cloudfoundry.org/qjob-service-account";
/// Job and pod label: name of the QuarksJob the Job belongs to. Also on every Secret
/// persist-output writes: the QuarksJob it was written for, so that another QuarksJob cannot
/// overwrite it (docs/persist-output.md, "Whose Secret is it").
pub const LABEL_QJOB_NAME: &str = "quarks.cloudfoundry.org/qjob-name";
/// Output secret label: the container whose file produced the secret.
pub const LABEL_CONTAINER_NAME: &str = "quarks.cloudfoundry.org/container-name";
/// Output secret label: copied from the container's `REMOTE_ID` environment variable.
pub const LABEL_REMOTE_ID: &str = "quarks.cloudfoundry.org/remote-id";
/// Versioned secret label, always [`SECRET_KIND_VERSIONED`].
pub const LABEL_SECRET_KIND: &str = "quarks.cloudfoundry.org/secret-kind";
/// Value of [`LABEL_SECRET_KIND`] on versioned secrets.
pub const SECRET_KIND_VERSIONED: &str = "versionedSecret";
/// Versioned secret label: the decimal version `N` of `<name>-v<N>`.
pub const LABEL_SECRET_VERSION: &str = "quarks.cloudfoundry.org/secret-version";
/// Versioned secret annotation describing who wrote the version.
pub const ANNOTATION_SOURCE_DESCRIPTION: &str = "quarks.cloudfoundry.org/source-description";
/// Pod template label `delete: pod`: delete the pod as soon as its Job succeeded.
pub const LABEL_DELETE: &str = "delete";
/// Value of [`LABEL_DELETE`] asking for the pod to be deleted.
pub const DELETE_POD: &str = "pod";
/// Container environment variable copied into [`LABEL_REMOTE_ID`].
pub const ENV_REMOTE_ID: &str = "REMOTE_ID";
/// The container the webhook injects into job pods to run `persist-output`: users cannot have
/// one of their own, and it never has output of its own.
pub const OUTPUT_PERSIST_CONTAINER: &str = "output-persist";

/// Label of the operator's dry-run probe pod; the probe webhook matches it (value: monitored id).
pub const LABEL_WEBHOOK_PROBE: &str = "quarks.cloudfoundry.org/webhook-probe";
/// Annotation the probe webhook adds: the apiserver called the operator's webhook.
pub const ANNOTATION_WEBHOOK_PROBE: &str = "quarks.cloudfoundry.org/webhook-probe-answered";

/// Keys under the API group that a QuarksJob may still ask for on its output Secrets
/// (`secretLabels`, `secretAnnotations`): the ones upstream's quarks-operator put on the output
/// of the QuarksJobs it generated. quarks-job never reads them.
pub const OUTPUT_KEYS_ALLOWED: &[&str] = &[
    "quarks.cloudfoundry.org/deployment-name",
    "quarks.cloudfoundry.org/secret-type",
    "quarks.cloudfoundry.org/referenced-job-name",
    "quarks.cloudfoundry.org/entanglement",
    "quarks.cloudfoundry.org/restart-on-update",
];

/// Whether a label or annotation key a QuarksJob asks for on its output Secrets is reserved:
/// its prefix is the API group or a subdomain of it, and it is not in [`OUTPUT_KEYS_ALLOWED`].
/// quarks-job sets and reads these keys itself (`secret-kind`, `secret-version`, `qjob-name`,
/// `container-name`, ...); a QuarksJob that could set them could forge a "latest" version or
/// claim another QuarksJob's Secret.
pub fn is_reserved_output_key(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    let prefix = prefix.to_ascii_lowercase();
    let in_group = prefix == GROUP
        || prefix
            .strip_suffix(GROUP)
            .is_some_and(|sub| sub.ends_with('.'));
    in_group && !OUTPUT_KEYS_ALLOWED.contains(&key)
}

/// The message for a reserved key (webhook rejection and persist-output refusal alike).
pub fn reserved_output_key_message(key: &str) -> String {
    format!(
        "key {key:?} is reserved: keys under {GROUP}/ are set by quarks-job itself (allowed: {})",
        OUTPUT_KEYS_ALLOWED.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keys_in_the_api_group_are_reserved_except_quarks_operators() {
        for reserved in [
            LABEL_SECRET_KIND,
            LABEL_SECRET_VERSION,
            LABEL_QJOB_NAME,
            LABEL_CONTAINER_NAME,
            ANNOTATION_SOURCE_DESCRIPTION,
            "quarks.cloudfoundry.org/anything-new",
            "sub.quarks.cloudfoundry.org/x",
            "Quarks.CloudFoundry.org/x",
        ] {
            assert!(is_reserved_output_key(reserved), "{reserved}");
        }
        for free in [
            "key",
            "app.kubernetes.io/name",
            "notquarks.cloudfoundry.org/x",
            "quarks.cloudfoundry.org.evil.com/x",
            "quarks.cloudfoundry.org/entanglement",
            "quarks.cloudfoundry.org/restart-on-update",
        ] {
            assert!(!is_reserved_output_key(free), "{free}");
        }
        assert!(
            reserved_output_key_message(LABEL_SECRET_KIND).starts_with(
                "key \"quarks.cloudfoundry.org/secret-kind\" is reserved: keys under quarks.cloudfoundry.org/ are set by quarks-job itself"
            )
        );
    }

    #[test]
    fn every_key_lives_in_the_api_group() {
        for key in [
            LABEL_MONITORED,
            LABEL_QJOB_SERVICE_ACCOUNT,
            LABEL_QJOB_NAME,
            LABEL_CONTAINER_NAME,
            LABEL_REMOTE_ID,
            LABEL_SECRET_KIND,
            LABEL_SECRET_VERSION,
            ANNOTATION_SOURCE_DESCRIPTION,
        ] {
            let (prefix, name) = key.split_once('/').expect("qualified key");
            assert_eq!(prefix, GROUP, "{key}");
            assert!(!name.is_empty() && name.len() <= 63, "{key}");
        }
    }
}

//! Label and annotation keys of the `quarks.cloudfoundry.org` API, named as upstream Quarks Job
//! named them, so that existing namespaces, pods and secrets keep working. This is the only
//! place where these strings are spelled out.

/// The API group of every key below.
pub const GROUP: &str = "quarks.cloudfoundry.org";

/// Namespace label: the monitored id this namespace belongs to.
pub const LABEL_MONITORED: &str = "quarks.cloudfoundry.org/monitored";
/// Namespace label: name of the ServiceAccount the output-persisting container runs as.
pub const LABEL_QJOB_SERVICE_ACCOUNT: &str = "quarks.cloudfoundry.org/qjob-service-account";
/// Job and pod label: name of the QuarksJob the Job belongs to.
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

/// Label of the operator's dry-run probe pod; the probe webhook matches it (value: monitored id).
pub const LABEL_WEBHOOK_PROBE: &str = "quarks.cloudfoundry.org/webhook-probe";
/// Annotation the probe webhook adds: the apiserver called the operator's webhook.
pub const ANNOTATION_WEBHOOK_PROBE: &str = "quarks.cloudfoundry.org/webhook-probe-answered";

#[cfg(test)]
mod tests {
    use super::*;

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

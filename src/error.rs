//! The operator process's error type (layer: wiring: it gathers the feature modules' errors).
//! Every variant has a short, stable `metric_label`.

use std::time::Duration;

/// Errors of the operator process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable kubeconfig, or the server it names did not answer.
    #[error(transparent)]
    KubeConfig(#[from] crate::runtime::ConnectError),

    /// A Kubernetes API call failed.
    #[error("kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),

    /// The CRD could not be applied.
    #[error("failed to apply CRD '{name}': {source}")]
    ApplyCrd {
        /// The CRD's name.
        name: String,
        /// What the apiserver said.
        #[source]
        source: kube::Error,
    },

    /// The CRD was applied but did not become Established in time.
    #[error("CRD '{name}' did not become Established within {timeout:?}")]
    CrdNotEstablished {
        /// The CRD's name.
        name: String,
        /// How long we waited.
        timeout: Duration,
    },

    /// Watching the applied CRD for its Established condition failed.
    #[error("cannot watch CRD '{name}': {source}")]
    WatchCrd {
        /// The CRD's name.
        name: String,
        /// Why.
        #[source]
        source: kube::runtime::wait::Error,
    },

    /// A task of the process panicked or was cancelled.
    #[error("the {task} task failed: {source}")]
    TaskFailed {
        /// Which task.
        task: &'static str,
        /// How it ended.
        #[source]
        source: tokio::task::JoinError,
    },

    /// The admission webhook could not start or stopped.
    #[error("webhook: {0}")]
    Webhook(#[from] crate::webhook::WebhookError),

    /// A port could not be opened.
    #[error("cannot listen on the {0}")]
    Listen(String),

    /// Local I/O (signals, files).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// `persist-output` failed.
    #[error("persist-output failed: {0}")]
    Persist(#[from] crate::persist::PersistError),
}

impl Error {
    /// A short label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::KubeConfig(_) => "kubeconfig",
            Error::Kube(_) => "kube",
            Error::ApplyCrd { .. } => "apply_crd",
            Error::CrdNotEstablished { .. } => "crd_not_established",
            Error::WatchCrd { .. } => "watch_crd",
            Error::TaskFailed { .. } => "task_failed",
            Error::Webhook(e) => e.metric_label(),
            Error::Listen(_) => "listen",
            Error::Io(_) => "io",
            Error::Persist(e) => e.metric_label(),
        }
    }
}

/// Result with the operator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_short_and_distinct() {
        let errors = [
            Error::KubeConfig(crate::runtime::ConnectError("x".into())),
            Error::CrdNotEstablished {
                name: "c".into(),
                timeout: Duration::from_secs(1),
            },
            Error::WatchCrd {
                name: "c".into(),
                source: kube::runtime::wait::Error::ProbeFailed(
                    kube::runtime::watcher::Error::NoResourceVersion,
                ),
            },
            Error::Io(std::io::Error::other("x")),
        ];
        let labels: std::collections::BTreeSet<_> =
            errors.iter().map(Error::metric_label).collect();
        assert_eq!(labels.len(), errors.len());
        assert!(labels.iter().all(|l| l.len() <= 24 && !l.contains(' ')));
    }

    #[test]
    fn messages_name_what_failed() {
        let e = Error::CrdNotEstablished {
            name: "quarksjobs.quarks.cloudfoundry.org".into(),
            timeout: Duration::from_secs(60),
        };
        assert_eq!(
            e.to_string(),
            "CRD 'quarksjobs.quarks.cloudfoundry.org' did not become Established within 60s"
        );
        assert_eq!(
            Error::KubeConfig(crate::runtime::ConnectError("no server".into())).to_string(),
            "invalid kube config: no server"
        );
    }
}

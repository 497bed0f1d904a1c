//! Errors of `persist-output`. Every message names the pod (`namespace/pod`) and, where there is
//! one, the container, the file and the Secret.

use std::time::Duration;

use super::secrets::Refusal;
use super::write::{Rollback, WriteFailure};

/// Errors of `persist-output`.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Could not build a client or reach the apiserver.
    #[error("cannot connect to the apiserver: {0}")]
    Connect(String),

    /// Neither `POD_NAME` nor a hostname.
    #[error("cannot tell which pod this is: POD_NAME is not set and the hostname is unreadable")]
    NoPodName,

    /// An API call that is not a Secret write failed.
    #[error("failed to {action}: {source}")]
    Kube {
        /// What was attempted, naming the object.
        action: String,
        /// What the apiserver said.
        #[source]
        source: Box<kube::Error>,
    },

    /// The pod does not belong to a QuarksJob.
    #[error("pod '{pod}' has no label '{label}', so it belongs to no QuarksJob")]
    NotAQuarksJobPod {
        /// `namespace/pod`
        pod: String,
        /// The label looked for.
        label: &'static str,
    },

    /// A container whose output is to be written ended without writing its files.
    #[error(
        "container '{container}' of pod '{pod}' terminated (exit code {exit_code}) without writing {}",
        quoted(files)
    )]
    MissingOutput {
        /// `namespace/pod`
        pod: String,
        /// The container.
        container: String,
        /// Its exit code.
        exit_code: i32,
        /// The missing files, as paths in the output directory.
        files: Vec<String>,
    },

    /// The pod went away while its output was awaited.
    #[error("pod '{pod}' was deleted while waiting for its output")]
    PodDeleted {
        /// `namespace/pod`
        pod: String,
    },

    /// `--timeout` passed.
    #[error("timed out after {after:?} waiting for the output of pod '{pod}': {waiting}")]
    Timeout {
        /// `namespace/pod`
        pod: String,
        /// The limit.
        after: Duration,
        /// What was still missing.
        waiting: String,
    },

    /// Files that cannot become Secrets; nothing was written.
    #[error("nothing written, invalid output in pod '{pod}': {}", problems.join("; "))]
    InvalidOutput {
        /// `namespace/pod`
        pod: String,
        /// One line per file: container, file, reason.
        problems: Vec<String>,
    },

    /// Secrets that are not this QuarksJob's; nothing was written.
    #[error("nothing written for pod '{pod}': {}", refusals.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Refused {
        /// `namespace/pod`
        pod: String,
        /// One per refused Secret.
        refusals: Vec<Refusal>,
    },

    /// Reading the existing Secrets before writing failed (nothing was written).
    #[error("nothing written for pod '{pod}': failed to read the existing secrets: {source}")]
    Preflight {
        /// `namespace/pod`
        pod: String,
        /// What the apiserver said (after retries).
        #[source]
        source: Box<kube::Error>,
    },

    /// Writing a Secret failed; what the run had written was rolled back.
    #[error(
        "failed to write secret '{secret}' from file '{file}' of container '{container}' in pod '{pod}': {source}{}",
        rollback_note(rollback)
    )]
    Write {
        /// `namespace/pod`
        pod: String,
        /// The container.
        container: String,
        /// The file.
        file: String,
        /// `namespace/name` of the Secret.
        secret: String,
        /// What this run had written and then undid, or could not undo.
        rollback: Box<Rollback>,
        /// What went wrong.
        #[source]
        source: Box<WriteFailure>,
    },

    /// Old versions could not be deleted (everything was written).
    #[error("wrote all output but failed to prune old versions of '{secret}': {source}")]
    Prune {
        /// `namespace/name` prefix.
        secret: String,
        /// What the apiserver said.
        #[source]
        source: Box<kube::Error>,
    },
}

fn quoted(files: &[String]) -> String {
    files
        .iter()
        .map(|f| format!("'{f}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn rollback_note(r: &Rollback) -> String {
    let (rolled_back, not_rolled_back) = (&r.undone, &r.failed);
    let mut note = if rolled_back.is_empty() {
        "; nothing was written".to_string()
    } else {
        format!(
            "; nothing was written: rolled back {}",
            rolled_back.join(", ")
        )
    };
    if !not_rolled_back.is_empty() {
        note = format!(
            "; could NOT roll back {} (they hold this run's output){}",
            not_rolled_back.join(", "),
            if rolled_back.is_empty() {
                String::new()
            } else {
                format!(", rolled back {}", rolled_back.join(", "))
            }
        );
    }
    note
}

impl PersistError {
    /// A short label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            PersistError::Connect(_) => "connect",
            PersistError::NoPodName => "no_pod_name",
            PersistError::Kube { .. } => "kube",
            PersistError::NotAQuarksJobPod { .. } => "not_a_qjob_pod",
            PersistError::MissingOutput { .. } => "missing_output",
            PersistError::PodDeleted { .. } => "pod_deleted",
            PersistError::Timeout { .. } => "timeout",
            PersistError::InvalidOutput { .. } => "invalid_output",
            PersistError::Refused { .. } => "refused",
            PersistError::Preflight { .. } => "preflight",
            PersistError::Write { .. } => "write_secret",
            PersistError::Prune { .. } => "prune",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error() -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("secrets is forbidden", "Forbidden")
                .with_code(403)
                .boxed(),
        )
    }

    #[test]
    fn labels_are_short_and_distinct() {
        let all = [
            PersistError::Connect("x".into()),
            PersistError::NoPodName,
            PersistError::Kube {
                action: "get pod".into(),
                source: Box::new(api_error()),
            },
            PersistError::NotAQuarksJobPod {
                pod: "n/p".into(),
                label: "l",
            },
            PersistError::MissingOutput {
                pod: "n/p".into(),
                container: "c".into(),
                exit_code: 0,
                files: vec![],
            },
            PersistError::PodDeleted { pod: "n/p".into() },
            PersistError::Timeout {
                pod: "n/p".into(),
                after: Duration::from_secs(1),
                waiting: "c".into(),
            },
            PersistError::InvalidOutput {
                pod: "n/p".into(),
                problems: vec![],
            },
            PersistError::Refused {
                pod: "n/p".into(),
                refusals: vec![],
            },
            PersistError::Preflight {
                pod: "n/p".into(),
                source: Box::new(api_error()),
            },
            PersistError::Write {
                pod: "n/p".into(),
                container: "c".into(),
                file: "f".into(),
                secret: "n/s".into(),
                rollback: Box::default(),
                source: Box::new(WriteFailure::Conflicts(3)),
            },
            PersistError::Prune {
                secret: "n/s".into(),
                source: Box::new(api_error()),
            },
        ];
        let labels: std::collections::BTreeSet<_> =
            all.iter().map(PersistError::metric_label).collect();
        assert_eq!(labels.len(), all.len());
        assert!(labels.iter().all(|l| l.len() <= 24 && !l.contains(' ')));
    }

    #[test]
    fn messages_name_pod_container_and_file() {
        let e = PersistError::MissingOutput {
            pod: "ns/p".into(),
            container: "busybox".into(),
            exit_code: 0,
            files: vec!["/mnt/quarks/busybox/output.json".into()],
        };
        assert_eq!(
            e.to_string(),
            "container 'busybox' of pod 'ns/p' terminated (exit code 0) without writing '/mnt/quarks/busybox/output.json'"
        );
        let write = |failed: Vec<String>, source| PersistError::Write {
            pod: "ns/p".into(),
            container: "c".into(),
            file: "f.json".into(),
            secret: "ns/s".into(),
            rollback: Box::new(Rollback {
                undone: vec!["ns/a".into()],
                failed,
            }),
            source: Box::new(source),
        };
        let e = write(vec![], WriteFailure::Kube(api_error()));
        let text = e.to_string();
        assert!(
            text.contains("secret 'ns/s' from file 'f.json' of container 'c' in pod 'ns/p'"),
            "{text}"
        );
        assert!(
            text.ends_with("; nothing was written: rolled back ns/a"),
            "{text}"
        );
        let e = write(
            vec!["ns/b (connection refused)".into()],
            WriteFailure::Conflicts(10),
        );
        assert!(
            e.to_string().ends_with(
                "; could NOT roll back ns/b (connection refused) (they hold this run's output), rolled back ns/a"
            ),
            "{e}"
        );
        let e = PersistError::Refused {
            pod: "ns/p".into(),
            refusals: vec![Refusal {
                qjob: "ns/q".into(),
                secret: "ns/db".into(),
                reason: "it belongs to Certificate 'web'".into(),
            }],
        };
        assert_eq!(
            e.to_string(),
            "nothing written for pod 'ns/p': QuarksJob 'ns/q' may not write Secret 'ns/db': it belongs to Certificate 'web'"
        );
    }
}

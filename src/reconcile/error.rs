//! The reconciler's error type.

use std::time::Duration;

use crate::core::lenient::DecodeError;

/// Errors of one reconcile. Messages name the QuarksJob as `namespace/name`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{action} for '{object}': {source}")]
    Kube {
        /// What was attempted, e.g. "create Job 'x'".
        action: String,
        /// `namespace/name` of the QuarksJob.
        object: String,
        /// The apiserver's answer.
        #[source]
        source: kube::Error,
    },

    /// An API call did not answer within `--ctx-timeout`.
    #[error("{action} for '{object}' timed out after {timeout:?}")]
    Timeout {
        /// What was attempted.
        action: String,
        /// `namespace/name` of the QuarksJob.
        object: String,
        /// The limit.
        timeout: Duration,
    },

    /// A write was refused because the object changed since it was read; the reconcile starts
    /// over with a fresh read.
    #[error("{action} for '{object}': the object changed meanwhile, retrying")]
    Conflict {
        /// What was attempted.
        action: String,
        /// `namespace/name` of the QuarksJob.
        object: String,
    },

    /// A stored object could not be read as the type the operator expects (where and why, never
    /// the value).
    #[error("cannot read '{object}': {source}")]
    Decode {
        /// `namespace/name`.
        object: String,
        /// Where and why.
        #[source]
        source: DecodeError,
    },

    /// The QuarksJob's name cannot work (see `core::job_names::check_qjob_name`).
    #[error("'{object}' cannot work: {reason}")]
    InvalidName {
        /// `namespace/name`.
        object: String,
        /// Which limit the name breaks.
        reason: String,
    },
}

impl Error {
    /// Every [`Error::metric_label`].
    pub const KINDS: [&'static str; 5] = ["kube", "timeout", "conflict", "decode", "invalid_name"];

    /// A short label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::Timeout { .. } => "timeout",
            Error::Conflict { .. } => "conflict",
            Error::Decode { .. } => "decode",
            Error::InvalidName { .. } => "invalid_name",
        }
    }

    /// The reason of the `Reconciled=False` condition (and, for a QuarksJob that cannot work as
    /// written, of its Warning event).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "ApiError",
            Error::Timeout { .. } => "Timeout",
            Error::Conflict { .. } => "Conflict",
            Error::Decode { .. } => super::events::INVALID_SPEC,
            Error::InvalidName { .. } => super::events::INVALID_NAME,
        }
    }

    /// Whether retrying cannot help: the QuarksJob cannot work as written, and only a change of
    /// it (which triggers a reconcile by itself) can.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::Decode { .. } | Error::InvalidName { .. })
    }
}

/// Result with the reconciler's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The requeue delay after the `failures`-th consecutive failure of the same QuarksJob:
/// 500 ms doubling up to 5 minutes (conflicts retry after 100 ms).
pub fn backoff(failures: u32, conflict: bool) -> Duration {
    if conflict && failures <= 3 {
        return Duration::from_millis(100);
    }
    let exp = failures.saturating_sub(1).min(16);
    Duration::from_millis(500u64.saturating_mul(1 << exp)).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct() {
        let errs = [
            Error::Timeout {
                action: "a".into(),
                object: "n/q".into(),
                timeout: Duration::from_secs(1),
            },
            Error::Conflict {
                action: "a".into(),
                object: "n/q".into(),
            },
            Error::Decode {
                object: "n/q".into(),
                source: crate::core::lenient::decode::<u8>(&serde_json::json!("x")).unwrap_err(),
            },
            Error::InvalidName {
                object: "n/q".into(),
                reason: "too long".into(),
            },
        ];
        let labels: std::collections::BTreeSet<_> = errs.iter().map(Error::metric_label).collect();
        assert_eq!(labels.len(), errs.len());
        // (an Error::Kube needs a kube::Error, which has no public constructor worth faking)
        assert!(
            labels.iter().all(|l| Error::KINDS.contains(l)),
            "{labels:?}"
        );
        assert!(Error::KINDS.contains(&"kube"));
        assert_eq!(errs[0].to_string(), "a for 'n/q' timed out after 1s");
        let reasons: std::collections::BTreeSet<_> = errs.iter().map(Error::reason).collect();
        assert_eq!(reasons.len(), errs.len());
        let permanent: Vec<bool> = errs.iter().map(Error::is_permanent).collect();
        assert_eq!(permanent, [false, false, true, true]);
        assert_eq!(
            errs[2].to_string(),
            "cannot read 'n/q': .: invalid type: string, expected u8"
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1, false), Duration::from_millis(500));
        assert_eq!(backoff(2, false), Duration::from_secs(1));
        assert_eq!(backoff(4, false), Duration::from_secs(4));
        assert_eq!(backoff(30, false), Duration::from_secs(300));
        assert_eq!(backoff(1, true), Duration::from_millis(100));
        assert_eq!(backoff(10, true), backoff(10, false));
    }
}

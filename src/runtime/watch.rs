//! Watch errors in logs: what a failed list or watch says, without the contents of objects
//! (layer: runtime, the I/O shared by the feature modules).

use crate::core::lenient::redact;

/// A watch error as a message without object contents: a response that does not decode is
/// described by serde's redacted message ([`redact`]) only.
pub fn describe_watch_error(e: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as W;
    let (context, source) = match e {
        W::InitialListFailed(s) => ("failed to perform initial object list", s),
        W::WatchStartFailed(s) => ("failed to start watching object", s),
        W::WatchFailed(s) => ("watch stream failed", s),
        other => return other.to_string(),
    };
    match source {
        kube::Error::SerdeError(s) => format!(
            "{context}: cannot decode the response: {}",
            redact(&s.to_string())
        ),
        other => format!("{context}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::api::QuarksJob;
    use serde_json::json;

    /// A QuarksJob whose env value is a number (the types want a string).
    fn bad_qjob() -> serde_json::Value {
        json!({
            "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
            "metadata": {"name": "bad", "namespace": "ns"},
            "spec": {"template": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "env": [{"name": "PORT", "value": 918_273_645}]}]
            }}}}}
        })
    }

    #[test]
    fn watch_errors_lose_the_values_of_undecodable_responses() {
        let serde = serde_json::from_str::<QuarksJob>(&bad_qjob().to_string()).unwrap_err();
        assert!(serde.to_string().contains("918273645"), "{serde}");
        let e = kube::runtime::watcher::Error::InitialListFailed(kube::Error::SerdeError(serde));
        let described = describe_watch_error(&e);
        assert!(
            described.starts_with(
                "failed to perform initial object list: cannot decode the response: \
                 invalid type: integer, expected a string at line 1 column"
            ),
            "{described}"
        );
        assert!(!described.contains("918273645"));
        let e = kube::runtime::watcher::Error::NoResourceVersion;
        assert_eq!(describe_watch_error(&e), e.to_string());
    }
}

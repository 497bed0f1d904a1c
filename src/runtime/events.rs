//! Publishing Kubernetes events (events.k8s.io/v1) (layer: runtime), for the reconciler and
//! persist-output. Publishing is best effort: a failure is logged and never fails the caller.

use k8s_openapi::api::core::v1::ObjectReference;
pub use kube::runtime::events::EventType;
use kube::runtime::events::{Event, Recorder};
use tracing::{info, warn};

/// Events are best effort: a publish that does not answer within this is abandoned.
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Log `note` (a warning for [`EventType::Warning`]) and publish it as an event on `regarding`.
pub async fn publish(
    recorder: &Recorder,
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    publish_about(recorder, regarding, None, type_, reason, action, note).await
}

/// [`publish`], with `related` as the event's related object (e.g. a run's Job). The recorder
/// folds events with the same reason, object *and* related object into one series, so events
/// about different related objects stay apart.
pub async fn publish_about(
    recorder: &Recorder,
    regarding: &ObjectReference,
    related: Option<&ObjectReference>,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let object = format!(
        "{}/{}",
        regarding.namespace.as_deref().unwrap_or_default(),
        regarding.name.as_deref().unwrap_or_default()
    );
    if type_ == EventType::Warning {
        warn!(%object, reason, "{note}");
    } else {
        info!(%object, reason, "{note}");
    }
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(truncate(note, 1024)),
        action: action.into(),
        secondary: related.cloned(),
    };
    match tokio::time::timeout(PUBLISH_TIMEOUT, recorder.publish(&event, regarding)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(%object, reason, "cannot record event: {e}"),
        Err(_) => {
            warn!(%object, reason, "cannot record event: no answer within {PUBLISH_TIMEOUT:?}")
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn notes_fit_the_api_limit() {
        assert_eq!(super::truncate("é".repeat(600), 1024).len(), 1024);
        assert_eq!(super::truncate("short".into(), 1024), "short");
    }
}

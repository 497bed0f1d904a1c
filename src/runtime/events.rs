//! Publishing Kubernetes events (events.k8s.io/v1) (layer: runtime), for the reconciler and
//! persist-output. Publishing is best effort: a failure is logged and never fails the caller.
//!
//! kube's recorder folds an event into the series of an earlier one with the same type, reason,
//! action, object and related object (as client-go does), and a series only counts: its note
//! stays the first event's. So a second, *different* error about the same object within six
//! minutes would show the first error's note. [`Recorder`] keeps one kube recorder per series
//! and starts a new series (a new event) when the note changes; the same note repeated still
//! folds into one series.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
pub use kube::runtime::events::EventType;
use kube::runtime::events::{Event, Reporter};
use tracing::{info, warn};

/// How long a series is remembered after its last event (kube's recorder keeps its own cache
/// as long).
const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

/// An object as a series names it: kind, namespace, name, uid.
type Identity = [Option<String>; 4];

/// What makes two events one series, as kube's recorder keys them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    warning: bool,
    reason: String,
    action: String,
    regarding: Identity,
    related: Option<Identity>,
}

fn identity(r: &ObjectReference) -> Identity {
    [
        r.kind.clone(),
        r.namespace.clone(),
        r.name.clone(),
        r.uid.clone(),
    ]
}

/// One series: the note it shows, the kube recorder that holds it, when it was last used.
struct Series {
    note: String,
    recorder: kube::runtime::events::Recorder,
    used: Instant,
}

/// Publishes events; a changed note starts a new event instead of counting into the old one's
/// series (see the module docs).
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    series: Mutex<HashMap<SeriesKey, Series>>,
}

impl Recorder {
    /// A recorder reporting as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Recorder {
        Recorder {
            client,
            reporter,
            series: Mutex::default(),
        }
    }

    /// The kube recorder of the series `event` belongs to: the current one if its note is
    /// `event`'s, else a fresh one (a new event).
    fn series_of(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> kube::runtime::events::Recorder {
        let key = SeriesKey {
            warning: event.type_ == EventType::Warning,
            reason: event.reason.clone(),
            action: event.action.clone(),
            regarding: identity(regarding),
            related: event.secondary.as_ref().map(identity),
        };
        let note = event.note.clone().unwrap_or_default();
        let now = Instant::now();
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.retain(|_, s| now.duration_since(s.used) < SERIES_TTL);
        match series.get_mut(&key) {
            Some(s) if s.note == note => {
                s.used = now;
                s.recorder.clone()
            }
            _ => {
                let recorder = kube::runtime::events::Recorder::new(
                    self.client.clone(),
                    self.reporter.clone(),
                );
                series.insert(
                    key,
                    Series {
                        note,
                        recorder: recorder.clone(),
                        used: now,
                    },
                );
                recorder
            }
        }
    }

    async fn publish(&self, event: &Event, regarding: &ObjectReference) -> kube::Result<()> {
        self.series_of(event, regarding)
            .publish(event, regarding)
            .await
    }
}

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
    use http::{Method, Request, Response};
    use http_body_util::BodyExt;
    use kube::client::Body;
    use serde_json::Value;

    use super::*;

    #[test]
    fn notes_fit_the_api_limit() {
        assert_eq!(super::truncate("é".repeat(600), 1024).len(), 1024);
        assert_eq!(super::truncate("short".into(), 1024), "short");
    }

    /// The next request: its method and body; answered with the body as the stored event.
    async fn next(
        handle: &mut tower_test::mock::Handle<Request<Body>, Response<Body>>,
    ) -> (Method, Value) {
        let (request, send) = handle.next_request().await.expect("a request");
        let method = request.method().clone();
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        send.send_response(Response::new(Body::from(
            serde_json::to_vec(&body).unwrap(),
        )));
        (method, body)
    }

    #[tokio::test]
    async fn a_changed_note_starts_a_new_event_and_the_same_note_counts_into_its_series() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: "quarks-job".into(),
                instance: None,
            },
        );
        let regarding = ObjectReference {
            kind: Some("QuarksJob".into()),
            namespace: Some("ns".into()),
            name: Some("q".into()),
            uid: Some("u".into()),
            ..Default::default()
        };
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..4 {
                seen.push(next(&mut handle).await);
            }
            seen
        });
        for note in ["first error", "first error", "second error", "second error"] {
            publish(
                &recorder,
                &regarding,
                EventType::Warning,
                "ReconcileError",
                "Reconcile",
                note.into(),
            )
            .await;
        }
        let seen = server.await.unwrap();
        let shape: Vec<(Method, &str, Option<i64>)> = seen
            .iter()
            .map(|(m, b)| {
                (
                    m.clone(),
                    b["note"].as_str().unwrap(),
                    b["series"]["count"].as_i64(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                (Method::POST, "first error", None),
                (Method::PATCH, "first error", Some(2)),
                (Method::POST, "second error", None),
                (Method::PATCH, "second error", Some(2)),
            ]
        );
        // the second series is a new event, not the first one renamed
        assert_ne!(seen[0].1["metadata"]["name"], seen[2].1["metadata"]["name"]);
        assert_eq!(seen[3].1["metadata"]["name"], seen[2].1["metadata"]["name"]);
    }
}

//! Kubernetes events (events.k8s.io/v1) about QuarksJobs. Publishing is best effort: a failure
//! is logged and never fails the reconcile.
//!
//! Events about a run name that run's Job as `related` ([`publish_about`]): the recorder folds
//! events with the same reason, object *and* related object into one series, so without it a
//! re-run's `CreateJob` was counted into the first run's event, whose note named the first Job.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use tracing::{info, warn};

/// A Job was created (upstream reason).
pub const CREATE_JOB: &str = "CreateJob";
/// Creating the Job failed (upstream reason).
pub const CREATE_JOB_ERROR: &str = "CreateJobError";
/// Writing the QuarksJob (strategy, status) failed (upstream reason).
pub const UPDATE_ERROR: &str = "UpdateError";
/// The Job of this run already existed, created before a restart (upstream reason).
pub const ALREADY_RUNNING: &str = "AlreadyRunning";
/// A succeeded Job is deleted (upstream reason).
pub const DELETING_JOB: &str = "DeletingJob";
/// The pods of a succeeded Job are deleted (`delete: pod`) (upstream reason).
pub const DELETING_JOBS_POD: &str = "DeletingJobsPod";
/// Deleting a Job or pod failed (upstream reason).
pub const DELETE_ERROR: &str = "DeleteError";
/// A referenced ConfigMap/Secret is missing; the run waits (new).
pub const WAITING_FOR_REFERENCES: &str = "WaitingForReferences";
/// The Job failed; it is kept for inspection (new).
pub const JOB_FAILED: &str = "JobFailed";
/// The Job succeeded (new).
pub const JOB_SUCCEEDED: &str = "JobSucceeded";
/// The referenced configuration changed; the QuarksJob runs again (new).
pub const CONFIG_CHANGED: &str = "ConfigChanged";
/// A run was triggered (a `now`/`once` strategy, by whom if known) (new).
pub const TRIGGERED: &str = "Triggered";
/// A finished run wrote Secrets: names and versions (new).
pub const OUTPUT_WRITTEN: &str = "OutputWritten";
/// The pods of a succeeded Job are kept, now owned by the QuarksJob (new).
pub const KEEPING_PODS: &str = "KeepingPods";
/// A reconcile failed (other than a QuarksJob that cannot work as written); the message says
/// why; it is retried with back-off (new).
pub const RECONCILE_ERROR: &str = "ReconcileError";
/// The QuarksJob's spec cannot be read (e.g. a template with a value of the wrong type): the
/// message names where and what; nothing runs until it is fixed (new).
pub const INVALID_SPEC: &str = "InvalidSpec";
/// The QuarksJob's name cannot work (e.g. longer than the 63 characters of a label value);
/// nothing runs (new).
pub const INVALID_NAME: &str = "InvalidName";

/// Events are best effort: a publish that does not answer within this is abandoned.
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Log `note` and publish it as an event on `regarding`.
pub async fn publish(
    recorder: &Recorder,
    regarding: &ObjectReference,
    warning: bool,
    reason: &str,
    action: &str,
    note: String,
) {
    publish_about(recorder, regarding, None, warning, reason, action, note).await
}

/// A reference to the Job `job_name` in the namespace of `regarding` (the `related` object of
/// the events about its run).
pub fn job_named(regarding: &ObjectReference, job_name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        namespace: regarding.namespace.clone(),
        name: Some(job_name.into()),
        ..Default::default()
    }
}

/// A reference to `job` (the `related` object of the events about its run).
pub fn job_reference(job: &k8s_openapi::api::batch::v1::Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        namespace: job.metadata.namespace.clone(),
        name: job.metadata.name.clone(),
        uid: job.metadata.uid.clone(),
        ..Default::default()
    }
}

/// [`publish`], with `related` as the event's related object (a run's Job), so that each run's
/// events are a series of their own.
pub async fn publish_about(
    recorder: &Recorder,
    regarding: &ObjectReference,
    related: Option<&ObjectReference>,
    warning: bool,
    reason: &str,
    action: &str,
    note: String,
) {
    let object = format!(
        "{}/{}",
        regarding.namespace.as_deref().unwrap_or_default(),
        regarding.name.as_deref().unwrap_or_default()
    );
    if warning {
        warn!(%object, reason, "{note}");
    } else {
        info!(%object, reason, "{note}");
    }
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
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

//! The reasons of the Kubernetes events (events.k8s.io/v1) the reconciler publishes about
//! QuarksJobs (layer: feature). Publishing is [`crate::runtime::events::publish`]'s.
//!
//! Events about a run name that run's Job as `related` ([`publish_about`]): the recorder folds
//! events with the same reason, object *and* related object into one series, so without it a
//! re-run's `CreateJob` was counted into the first run's event, whose note named the first Job.

use k8s_openapi::api::core::v1::ObjectReference;

pub use crate::runtime::events::{EventType, publish, publish_about};

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

//! The reasons of the Kubernetes events (events.k8s.io/v1) the reconciler publishes about
//! QuarksJobs (layer: feature). Publishing is [`crate::runtime::events::publish`]'s.

pub use crate::runtime::events::{EventType, publish};

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

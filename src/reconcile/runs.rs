//! The run history in `status.runs` (pure): what started each run, its Job and pod, when it
//! started and finished, how it ended, and which Secrets it wrote.
//!
//! A record is added when a run's Job is created ([`record`]), and completed once, when the Job
//! is seen finished ([`outcome`], [`merge_outcome`]) — before a succeeded Job and its pods are
//! cleaned up. Newest first; at most `--run-history` records ([`trim`]), each bounded
//! ([`MAX_OUTPUTS`] outputs, texts cut to [`MAX_TEXT`]), so a QuarksJob stays a few kilobytes
//! whatever its runs write: 20 runs of 20 outputs of 253-character names are below 120 KiB, far
//! below the apiserver's 1.5 MiB object limit.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::digest::{Resolved, config_digest};
use super::job::{JobPhase, phase};
use super::state::RunReason;
use crate::core::api::labels::{LABEL_QJOB_NAME, LABEL_SECRET_VERSION};
use crate::core::api::{RunOutput, RunRecord};

/// The most `--run-history` may be.
pub const MAX_RUNS: usize = 20;
/// Outputs listed per run; more are counted in `outputsOmitted`.
pub const MAX_OUTPUTS: usize = 20;
/// Texts in a record (names, reasons, field managers) are cut to this many bytes.
pub const MAX_TEXT: usize = 253;

/// Result of a run whose Job has not finished.
pub const RUNNING: &str = "Running";
/// The Job completed.
pub const SUCCEEDED: &str = "Succeeded";
/// The Job failed.
pub const FAILED: &str = "Failed";
/// The Job disappeared before it was seen finished.
pub const UNKNOWN: &str = "Unknown";

/// How a run started, decided before its Job is created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Start {
    /// `now`, `once`, `configChange` or `resumed`.
    pub trigger: String,
    /// The field manager that set the strategy.
    pub triggered_by: Option<String>,
    /// The references whose change started a config-change run.
    pub changed: Vec<String>,
    /// The per-reference digests to keep (`status.referenceDigests`), if computed.
    pub reference_digests: Option<BTreeMap<String, String>>,
}

/// The trigger name of a run: `now`/`once` for a trigger; `configChange`; a resumed run keeps
/// the trigger still in the strategy (`now`/`once`), else `resumed`.
pub fn trigger_name(reason: RunReason, strategy: Option<crate::core::api::Strategy>) -> String {
    use crate::core::api::Strategy;
    match reason {
        RunReason::Trigger(s) => s.as_str().into(),
        RunReason::ConfigChange => "configChange".into(),
        RunReason::Resume => match strategy {
            Some(s @ (Strategy::Now | Strategy::Once)) => s.as_str().into(),
            _ => "resumed".into(),
        },
    }
}

/// The field manager that last wrote `spec.trigger.strategy` (from `metadata.managedFields`,
/// the status subresource ignored).
pub fn strategy_manager(managed: &[ManagedFieldsEntry]) -> Option<String> {
    managed
        .iter()
        .filter(|e| e.subresource.as_deref().unwrap_or_default().is_empty())
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:spec"))
                .and_then(|s| s.get("f:trigger"))
                .and_then(|t| t.get("f:strategy"))
                .is_some()
        })
        .max_by_key(|e| e.time.as_ref().map(|t| t.0))
        .and_then(|e| e.manager.clone())
        .filter(|m| !m.is_empty())
        .map(|m| cut(&m))
}

/// `<Kind>/<name as written>` → 12 hex digits of the digest of what it resolved to.
pub fn reference_digests(refs: &[Resolved]) -> BTreeMap<String, String> {
    refs.iter()
        .map(|r| {
            let d = config_digest(std::slice::from_ref(r));
            let hex = d.trim_start_matches("sha256:");
            (
                format!("{}/{}", r.kind, r.reference),
                hex[..12.min(hex.len())].to_string(),
            )
        })
        .collect()
}

/// The references that differ between two [`reference_digests`]: changed, added or removed.
pub fn changed_references(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect()
}

/// How the run of `reason` starts: its trigger, who set the strategy (for a trigger), the
/// references that changed (for a config change, when a previous run recorded their digests),
/// and the reference digests to record (`tracks`: only for `updateOnConfigChange`).
pub fn start_of(
    reason: RunReason,
    strategy: Option<crate::core::api::Strategy>,
    managed: &[ManagedFieldsEntry],
    recorded: &BTreeMap<String, String>,
    resolved: Option<&[Resolved]>,
    tracks: bool,
) -> Start {
    let digests = resolved.filter(|_| tracks).map(reference_digests);
    let changed = match (&digests, reason) {
        (Some(now), RunReason::ConfigChange) if !recorded.is_empty() => {
            changed_references(recorded, now)
        }
        _ => Vec::new(),
    };
    Start {
        trigger: trigger_name(reason, strategy),
        triggered_by: match reason {
            RunReason::ConfigChange => None,
            _ => strategy_manager(managed),
        },
        changed,
        reference_digests: digests,
    }
}

/// Add the record of a run whose Job now exists: newest first; a record of the same run (a
/// resumed run written again) is replaced; then [`trim`]med to `keep`.
pub fn record(runs: &mut Vec<RunRecord>, new: RunRecord, keep: usize) {
    runs.retain(|r| r.run != new.run);
    runs.insert(0, new);
    trim(runs, keep);
}

/// The record of run `run` with Job `job_name`, started `now`.
pub fn started(run: i64, job_name: &str, start: &Start, now: Timestamp) -> RunRecord {
    RunRecord {
        run,
        trigger: start.trigger.clone(),
        triggered_by: start.triggered_by.as_deref().map(cut),
        changed: start
            .changed
            .iter()
            .take(MAX_OUTPUTS)
            .map(|c| cut(c))
            .collect(),
        job_name: job_name.into(),
        started: Some(Time(now)),
        result: RUNNING.into(),
        ..Default::default()
    }
}

/// Keep the `keep` newest records (by run number); `keep` is capped at [`MAX_RUNS`].
pub fn trim(runs: &mut Vec<RunRecord>, keep: usize) {
    runs.sort_by_key(|r| std::cmp::Reverse(r.run));
    runs.truncate(keep.min(MAX_RUNS));
}

/// Whether the record of the Job `job` still waits for its outcome.
pub fn awaits_outcome(runs: &[RunRecord], job: &str) -> bool {
    runs.iter()
        .any(|r| r.job_name == job && r.result == RUNNING)
}

/// How a finished run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// [`SUCCEEDED`] or [`FAILED`].
    pub result: &'static str,
    /// The Job's failure reason.
    pub reason: Option<String>,
    /// The newest pod of the Job.
    pub pod: Option<String>,
    /// The failed container and its exit code.
    pub failed_container: Option<(String, i32)>,
    /// When the Job finished.
    pub finished: Option<Timestamp>,
}

/// The outcome of `job` (None while it runs) from the Job and its pods.
pub fn outcome(job: &Job, pods: &[Pod]) -> Option<Outcome> {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    let condition_time = |type_: &str| {
        conditions
            .into_iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == "True")
            .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
    };
    let newest = pods.iter().max_by(|a, b| {
        (
            a.metadata.creation_timestamp.as_ref().map(|t| t.0),
            &a.metadata.name,
        )
            .cmp(&(
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                &b.metadata.name,
            ))
    });
    let pod = newest.and_then(|p| p.metadata.name.as_deref().map(cut));
    match phase(job) {
        JobPhase::Running => None,
        JobPhase::Succeeded => Some(Outcome {
            result: SUCCEEDED,
            reason: None,
            pod,
            failed_container: None,
            finished: job
                .status
                .as_ref()
                .and_then(|s| s.completion_time.as_ref().map(|t| t.0))
                .or_else(|| condition_time("Complete")),
        }),
        JobPhase::Failed { reason, .. } => Some(Outcome {
            result: FAILED,
            reason: Some(cut(&reason)),
            failed_container: newest.and_then(failed_container),
            pod,
            finished: condition_time("Failed"),
        }),
    }
}

/// The first container of `pod` (init containers first) that exited non-zero, and its code.
fn failed_container(pod: &Pod) -> Option<(String, i32)> {
    let status = pod.status.as_ref()?;
    let all: Vec<&ContainerStatus> = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .collect();
    let exit = |c: &ContainerStatus| {
        let state = c.state.as_ref().and_then(|s| s.terminated.as_ref());
        let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        state
            .filter(|t| t.exit_code != 0)
            .or(last.filter(|t| t.exit_code != 0))
            .map(|t| t.exit_code)
    };
    all.into_iter()
        .find_map(|c| exit(c).map(|code| (cut(&c.name), code)))
}

/// The Secrets of the QuarksJob `qjob` (by its label, which persist-output puts on everything it
/// writes) last written between `from` and `to` (a second of slack each side: API times have
/// seconds only) and strictly after `after` (the end of the run before, whose own writes may fall
/// into the same second as this run's start), sorted by name; at most [`MAX_OUTPUTS`], and how
/// many more there were.
pub fn outputs(
    secrets: &[ObjectMeta],
    qjob: &str,
    (from, after): (Option<Timestamp>, Option<Timestamp>),
    to: Timestamp,
) -> (Vec<RunOutput>, i64) {
    let slack = SignedDuration::from_secs(1);
    let from = from.and_then(|f| f.checked_sub(slack).ok());
    let to = to.checked_add(slack).unwrap_or(to);
    let mut found: Vec<RunOutput> = secrets
        .iter()
        .filter(|m| {
            m.labels
                .as_ref()
                .and_then(|l| l.get(LABEL_QJOB_NAME))
                .is_some_and(|v| v == qjob)
        })
        .filter(|m| {
            let written = last_write(m);
            written.is_some_and(|w| {
                from.is_none_or(|f| w >= f) && after.is_none_or(|a| w > a) && w <= to
            })
        })
        .filter_map(|m| {
            Some(RunOutput {
                name: cut(m.name.as_deref()?),
                version: m
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_SECRET_VERSION))
                    .and_then(|v| v.parse().ok()),
            })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    let omitted = found.len().saturating_sub(MAX_OUTPUTS) as i64;
    found.truncate(MAX_OUTPUTS);
    (found, omitted)
}

/// The newest write of an object: its newest `managedFields` time, else its creation.
fn last_write(meta: &ObjectMeta) -> Option<Timestamp> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter_map(|e| e.time.as_ref().map(|t| t.0))
        .max()
        .or(meta.creation_timestamp.as_ref().map(|t| t.0))
}

/// The end of the newest finished run before the run of the Job `job` (see [`outputs`]).
pub fn previous_end(runs: &[RunRecord], job: &str) -> Option<Timestamp> {
    let run = runs.iter().find(|r| r.job_name == job)?.run;
    runs.iter()
        .filter(|r| r.run < run)
        .filter_map(|r| r.finished.as_ref().map(|f| f.0))
        .max()
}

/// Complete the record of the Job `job` with its outcome and outputs (once: a record that is
/// not [`RUNNING`] any more stays as it is). Returns whether it changed.
pub fn merge_outcome(
    runs: &mut [RunRecord],
    job: &str,
    outcome: Outcome,
    outputs: (Vec<RunOutput>, i64),
    now: Timestamp,
) -> bool {
    let Some(r) = runs
        .iter_mut()
        .find(|r| r.job_name == job && r.result == RUNNING)
    else {
        return false;
    };
    r.result = outcome.result.into();
    r.reason = outcome.reason;
    r.pod_name = outcome.pod;
    if let Some((container, code)) = outcome.failed_container {
        r.container = Some(container);
        r.exit_code = Some(code);
    }
    r.finished = Some(Time(outcome.finished.unwrap_or(now)));
    (r.outputs, r.outputs_omitted) = outputs;
    true
}

/// `, container 'c' exited with 3` for the record of `job`, if it names a failed container.
pub fn exit_note(runs: &[RunRecord], job: &str) -> String {
    runs.iter()
        .find(|r| r.job_name == job)
        .and_then(|r| Some((r.container.as_deref()?, r.exit_code?)))
        .map(|(c, code)| format!(", container '{c}' exited with {code}"))
        .unwrap_or_default()
}

/// Records still [`RUNNING`] whose Job is gone (`present` says which Jobs exist) become
/// [`UNKNOWN`] with reason `JobNotFound`. Returns whether any changed.
pub fn mark_lost(runs: &mut [RunRecord], present: impl Fn(&str) -> bool, now: Timestamp) -> bool {
    let mut changed = false;
    for r in runs
        .iter_mut()
        .filter(|r| r.result == RUNNING && !present(&r.job_name))
    {
        r.result = UNKNOWN.into();
        r.reason = Some("JobNotFound".into());
        r.finished = Some(Time(now));
        changed = true;
    }
    changed
}

fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
#[path = "runs_tests.rs"]
mod tests;

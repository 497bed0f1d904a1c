//! The plugin's decisions (pure): may `run` trigger this QuarksJob, which run is it, has it
//! finished, and which exit code tells how.

use crate::core::api::{QuarksJob, QuarksJobStatus, RunRecord, Strategy};
use crate::reconcile::runs;
use crate::reconcile::status;

/// Exit code: the run succeeded (or the command did what it was asked).
pub const EXIT_OK: u8 = 0;
/// Exit code: the run failed, or the command could not do its work (API error, not found).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: usage error, or a refusal (the QuarksJob cannot be run this way).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: `--wait` timed out (as `timeout(1)`).
pub const EXIT_TIMEOUT: u8 = 124;

/// The field manager of the plugin's writes (shown as `triggeredBy` in `status.runs`).
pub const FIELD_MANAGER: &str = "kubectl-qjob";

/// The run `kubectl qjob run` would start: its number, or why it refuses (with how to re-run).
pub fn next_run(q: &QuarksJob) -> Result<i64, String> {
    let ns = q.metadata.namespace.as_deref().unwrap_or_default();
    let name = q.metadata.name.as_deref().unwrap_or_default();
    let st = q.status.clone().unwrap_or_default();
    let errand_patch = format!(
        "kubectl patch qjob {name} -n {ns} --type merge -p '{{\"spec\":{{\"trigger\":{{\"strategy\":\"manual\"}}}}}}'"
    );
    match q.strategy() {
        None => Err(format!(
            "QuarksJob '{ns}/{name}' has no trigger (spec.trigger.strategy), so it never runs. \
             To make it an errand: {errand_patch}; then: kubectl qjob run {name} -n {ns}"
        )),
        Some(Strategy::Once) => Err(format!(
            "QuarksJob '{ns}/{name}' is an auto-errand (strategy 'once'): it runs by itself, once, \
             as soon as the operator sees it, then becomes 'done'. Follow it with: kubectl qjob \
             status {name} -n {ns}"
        )),
        Some(Strategy::Done) => Err(format!(
            "QuarksJob '{ns}/{name}' is an auto-errand that ran (strategy 'done'): it does not \
             run on demand. To run it again: re-create it (kubectl replace --force -f FILE), or, \
             with updateOnConfigChange: true, change a ConfigMap or Secret it references; to \
             make it an errand that runs on demand: {errand_patch}"
        )),
        Some(Strategy::Now) => Err(format!(
            "a run of QuarksJob '{ns}/{name}' is already triggered (strategy 'now'); follow it \
             with: kubectl qjob status {name} -n {ns}"
        )),
        Some(Strategy::Manual) if st.requested_run > st.created_run => Err(format!(
            "run {} of QuarksJob '{ns}/{name}' is being started; follow it with: kubectl qjob \
             status {name} -n {ns}",
            st.requested_run
        )),
        Some(Strategy::Manual) => Ok(st.created_run + 1),
    }
}

/// The merge patch that triggers a run: `manual → now`, guarded by the `resourceVersion` the
/// decision was made on (a QuarksJob changed meanwhile answers a conflict).
pub fn trigger_patch(resource_version: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"resourceVersion": resource_version},
        "spec": {"trigger": {"strategy": "now"}},
    })
}

/// The record of run `run` (Job `job`) once it finished, from the status: its record in
/// `status.runs`, or, without one (`--run-history 0`, or trimmed), what the conditions of the
/// last Job say.
pub fn finished(st: &QuarksJobStatus, run: i64, job: &str) -> Option<RunRecord> {
    if let Some(r) = st.runs.iter().find(|r| r.run == run) {
        return (r.result != runs::RUNNING).then(|| r.clone());
    }
    if st.last_job_name.as_deref() != Some(job) {
        return None;
    }
    let (result, reason) = if status::is_true(&st.conditions, status::SUCCEEDED) {
        (runs::SUCCEEDED, None)
    } else if status::is_true(&st.conditions, status::FAILED) {
        let reason = status::get(&st.conditions, status::FAILED).map(|c| c.reason.clone());
        (runs::FAILED, reason)
    } else {
        return None;
    };
    Some(RunRecord {
        run,
        job_name: job.into(),
        result: result.into(),
        reason,
        ..Default::default()
    })
}

/// The exit code of a finished run.
pub fn exit_code(record: &RunRecord) -> u8 {
    if record.result == runs::SUCCEEDED {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

/// The run `outputs` shows: `run`, else the newest finished one.
pub fn pick_run(runs_: &[RunRecord], run: Option<i64>) -> Result<&RunRecord, String> {
    match run {
        Some(n) => runs_.iter().find(|r| r.run == n).ok_or_else(|| {
            let kept: Vec<String> = runs_.iter().map(|r| r.run.to_string()).collect();
            if kept.is_empty() {
                format!("run {n} is not in the history (no runs are kept)")
            } else {
                format!(
                    "run {n} is not in the history (it keeps runs {})",
                    kept.join(", ")
                )
            }
        }),
        None => runs_
            .iter()
            .find(|r| r.result != runs::RUNNING)
            .ok_or_else(|| "no finished run in the history yet".to_string()),
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;

//! Status conditions (pure).
//!
//! | type | true when | reasons |
//! |---|---|---|
//! | `ReferencesFound` | every required ConfigMap/Secret of the template exists | `AllFound`, `MissingReferences` |
//! | `Running` | the last Job is neither complete nor failed | `JobRunning`, `JobSucceeded`, the Job's failure reason, `JobNotFound` |
//! | `Succeeded` | the last Job completed | `JobSucceeded`, `JobRunning`, the Job's failure reason |
//! | `Failed` | the last Job failed | the Job's failure reason (e.g. `BackoffLimitExceeded`), `JobRunning`, `JobSucceeded` |
//! | `Reconciled` | the last reconcile succeeded | `Reconciled`; when false, why: `InvalidSpec`, `InvalidName`, `ApiError`, `Timeout` |

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::job::JobPhase;

/// Condition type: referenced ConfigMaps/Secrets exist.
pub const REFERENCES_FOUND: &str = "ReferencesFound";
/// Condition type: the last Job runs.
pub const RUNNING: &str = "Running";
/// Condition type: the last Job succeeded.
pub const SUCCEEDED: &str = "Succeeded";
/// Condition type: the last Job failed.
pub const FAILED: &str = "Failed";
/// Condition type: the last reconcile succeeded (false: the message says why not).
pub const RECONCILED: &str = "Reconciled";

/// The condition of `type_`, if set.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == "True")
}

/// Whether the last Job's failure is new in `after`: `Failed` turned `True` (counted once per
/// failed Job, also across restarts, since the condition is stored).
pub fn newly_failed(before: &[Condition], after: &[Condition]) -> bool {
    !is_true(before, FAILED) && is_true(after, FAILED)
}

/// Set a condition; `lastTransitionTime` changes only when the status does. Returns whether
/// anything changed.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let status = if status { "True" } else { "False" };
    let reason = condition_reason(reason);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            let before = c.clone();
            if c.status != status {
                c.last_transition_time = Time(now);
            }
            c.status = status.into();
            c.reason = reason;
            c.message = message.into();
            c.observed_generation = generation;
            *c != before
        }
        None => {
            conditions.push(Condition {
                type_: type_.into(),
                status: status.into(),
                reason,
                message: message.into(),
                observed_generation: generation,
                last_transition_time: Time(now),
            });
            true
        }
    }
}

/// A reason valid for a metav1.Condition (`^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`): other
/// characters dropped, `Unknown` if nothing is left.
fn condition_reason(reason: &str) -> String {
    let cleaned: String = reason
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ',' | ':'))
        .collect();
    let cleaned = cleaned
        .trim_start_matches(|c: char| !c.is_ascii_alphabetic())
        .trim_end_matches([',', ':']);
    if cleaned.is_empty() {
        "Unknown".into()
    } else {
        cleaned.chars().take(1024).collect()
    }
}

/// Conditions for the Job `job` of the last run being in `phase`.
pub fn set_job_phase(
    conditions: &mut Vec<Condition>,
    job: &str,
    phase: &JobPhase,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let mut changed = false;
    let mut put = |t: &str, s: bool, r: &str, m: &str| {
        changed |= set(conditions, t, s, r, m, generation, now)
    };
    match phase {
        JobPhase::Running => {
            let m = format!("Job '{job}' is running");
            put(RUNNING, true, "JobRunning", &m);
            put(SUCCEEDED, false, "JobRunning", &m);
            put(FAILED, false, "JobRunning", &m);
        }
        JobPhase::Succeeded => {
            let m = format!("Job '{job}' succeeded");
            put(RUNNING, false, "JobSucceeded", &m);
            put(SUCCEEDED, true, "JobSucceeded", &m);
            put(FAILED, false, "JobSucceeded", &m);
        }
        JobPhase::Failed { reason, message } => {
            let m = if message.is_empty() {
                format!("Job '{job}' failed")
            } else {
                format!("Job '{job}' failed: {message}")
            };
            put(RUNNING, false, reason, &m);
            put(SUCCEEDED, false, reason, &m);
            put(FAILED, true, reason, &m);
        }
    }
    changed
}

/// The last Job is gone although the status says it runs (deleted by someone else).
pub fn set_job_gone(
    conditions: &mut Vec<Condition>,
    job: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    if !is_true(conditions, RUNNING) {
        return false;
    }
    set(
        conditions,
        RUNNING,
        false,
        "JobNotFound",
        &format!("Job '{job}' no longer exists"),
        generation,
        now,
    )
}

/// `Reconciled` for the outcome of a reconcile: `Ok`, or the reason and message of its error.
/// Returns whether anything changed.
pub fn set_reconciled(
    conditions: &mut Vec<Condition>,
    outcome: Result<(), (&str, &str)>,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let (ok, reason, message) = match outcome {
        Ok(()) => (true, "Reconciled", "The last reconcile succeeded"),
        Err((reason, message)) => (false, reason, message),
    };
    set(conditions, RECONCILED, ok, reason, message, generation, now)
}

/// `ReferencesFound` for the descriptions of the missing references (empty: all found).
pub fn set_references(
    conditions: &mut Vec<Condition>,
    missing: &[String],
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    if missing.is_empty() {
        set(
            conditions,
            REFERENCES_FOUND,
            true,
            "AllFound",
            "All referenced ConfigMaps and Secrets exist",
            generation,
            now,
        )
    } else {
        let m = format!("Waiting for {}", missing.join(", "));
        set(
            conditions,
            REFERENCES_FOUND,
            false,
            "MissingReferences",
            &m,
            generation,
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let mut c = Vec::new();
        assert!(set(&mut c, RUNNING, true, "JobRunning", "a", Some(1), t(0)));
        assert!(
            !set(&mut c, RUNNING, true, "JobRunning", "a", Some(1), t(5)),
            "no change"
        );
        assert!(set(&mut c, RUNNING, true, "JobRunning", "b", Some(2), t(6)));
        assert_eq!(get(&c, RUNNING).unwrap().last_transition_time, Time(t(0)));
        assert!(set(
            &mut c,
            RUNNING,
            false,
            "JobSucceeded",
            "b",
            Some(2),
            t(7)
        ));
        assert_eq!(get(&c, RUNNING).unwrap().last_transition_time, Time(t(7)));
        assert_eq!(get(&c, RUNNING).unwrap().observed_generation, Some(2));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_failure_is_new_once() {
        let failed = JobPhase::Failed {
            reason: "BackoffLimitExceeded".into(),
            message: "m".into(),
        };
        let mut running = Vec::new();
        set_job_phase(&mut running, "j1", &JobPhase::Running, None, t(0));
        let mut after = running.clone();
        set_job_phase(&mut after, "j1", &failed, None, t(1));
        assert!(!newly_failed(&[], &running));
        assert!(newly_failed(&running, &after));
        assert!(newly_failed(&[], &after));
        // written already: the next reconcile sees it in the stored status
        assert!(!newly_failed(&after, &after));
        // the next run's Job fails again
        let mut rerun = after.clone();
        set_job_phase(&mut rerun, "j2", &JobPhase::Running, None, t(2));
        let mut refailed = rerun.clone();
        set_job_phase(&mut refailed, "j2", &failed, None, t(3));
        assert!(newly_failed(&rerun, &refailed));
    }

    #[test]
    fn job_phases_tell_the_story() {
        let mut c = Vec::new();
        set_job_phase(&mut c, "j1", &JobPhase::Running, None, t(0));
        assert!(is_true(&c, RUNNING) && !is_true(&c, SUCCEEDED) && !is_true(&c, FAILED));
        assert_eq!(get(&c, RUNNING).unwrap().message, "Job 'j1' is running");
        set_job_phase(&mut c, "j1", &JobPhase::Succeeded, None, t(1));
        assert!(!is_true(&c, RUNNING) && is_true(&c, SUCCEEDED) && !is_true(&c, FAILED));
        let failed = JobPhase::Failed {
            reason: "BackoffLimitExceeded".into(),
            message: "Job has reached the specified backoff limit".into(),
        };
        set_job_phase(&mut c, "j2", &failed, None, t(2));
        let f = get(&c, FAILED).unwrap();
        assert_eq!(
            (f.status.as_str(), f.reason.as_str()),
            ("True", "BackoffLimitExceeded")
        );
        assert_eq!(
            f.message,
            "Job 'j2' failed: Job has reached the specified backoff limit"
        );
        assert!(!is_true(&c, SUCCEEDED));
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn gone_only_matters_while_running() {
        let mut c = Vec::new();
        assert!(!set_job_gone(&mut c, "j", None, t(0)));
        set_job_phase(&mut c, "j", &JobPhase::Running, None, t(0));
        assert!(set_job_gone(&mut c, "j", None, t(1)));
        assert_eq!(get(&c, RUNNING).unwrap().reason, "JobNotFound");
    }

    #[test]
    fn references() {
        let mut c = Vec::new();
        set_references(
            &mut c,
            &["ConfigMap 'a'".into(), "Secret 'b'".into()],
            None,
            t(0),
        );
        let r = get(&c, REFERENCES_FOUND).unwrap();
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "MissingReferences")
        );
        assert_eq!(r.message, "Waiting for ConfigMap 'a', Secret 'b'");
        set_references(&mut c, &[], None, t(1));
        assert!(is_true(&c, REFERENCES_FOUND));
    }

    #[test]
    fn a_failure_is_new_once_per_cause_and_generation() {
        let mut c = Vec::new();
        let failed = Err(("ApiError", "list Jobs for 'n/q': 400"));
        assert!(set_reconciled(&mut c, failed, Some(1), t(0)));
        assert!(
            !set_reconciled(&mut c, failed, Some(1), t(5)),
            "same failure"
        );
        let r = get(&c, RECONCILED).unwrap();
        assert_eq!(
            (r.status.as_str(), r.reason.as_str(), r.message.as_str()),
            ("False", "ApiError", "list Jobs for 'n/q': 400")
        );
        assert!(set_reconciled(&mut c, Err(("Timeout", "x")), Some(1), t(6)));
        assert!(
            set_reconciled(&mut c, Err(("Timeout", "x")), Some(2), t(7)),
            "new generation"
        );
        assert!(set_reconciled(&mut c, Ok(()), Some(2), t(8)));
        assert!(is_true(&c, RECONCILED));
        assert_eq!(
            get(&c, RECONCILED).unwrap().last_transition_time,
            Time(t(8))
        );
        assert!(!set_reconciled(&mut c, Ok(()), Some(2), t(9)));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn reasons_are_made_valid() {
        assert_eq!(
            condition_reason("BackoffLimitExceeded"),
            "BackoffLimitExceeded"
        );
        assert_eq!(condition_reason("Deadline Exceeded!"), "DeadlineExceeded");
        assert_eq!(condition_reason("1abc:"), "abc");
        assert_eq!(condition_reason("--"), "Unknown");
    }
}

//! The trigger state machine (pure).
//!
//! `now` → set `manual` and run; `once` → run and set `done`; `manual` and `done` never run by
//! themselves; a `once`/`done` QuarksJob with `updateOnConfigChange` also runs when the digest of
//! its referenced configuration differs from the one recorded at its last run.
//!
//! # Exactly one Job per trigger
//!
//! Every run has a number. `status.createdRun` is the last run whose Job is recorded; the next
//! run is `createdRun + 1`, and its Job has a name derived from the QuarksJob's uid and that
//! number ([`crate::core::job_names::job_name`]), so the name is known from what is stored before
//! anything is written. A run is three writes, each repeatable, and the Job is the first:
//!
//! 1. **create** the Job of run `createdRun + 1`; `AlreadyExists` counts as created;
//! 2. **consume the trigger**: spec patch `now → manual` / `once → done`, with the
//!    `resourceVersion` the decision was made on as precondition (a decision made on a stale
//!    read fails with a conflict and is made again);
//! 3. **record**: status patch `createdRun = requestedRun = n`, `lastJobName`, the run's record,
//!    the config digest.
//!
//! The Job of run `createdRun + 1` existing *is* the mark of a run in flight: a crash (or a
//! failed write) after step 1 leaves it behind, unrecorded, and the run is *pending*. A pending
//! run is resumed before anything else, with its number unchanged: the trigger, if still there,
//! is consumed (step 2) and the run recorded (step 3); no second Job is created (its name is
//! taken, and it is not created again anyway). So the trigger is never lost and never makes a
//! second Job. A `now` seen while a run is pending is treated as the trigger of that run (both
//! coalesce into one Job). A crash before step 1 left nothing behind: the trigger is still there
//! and runs. `status.requestedRun > createdRun`, the pending mark of earlier versions (which
//! allocated the number in a write before the create), is still honoured: that run is resumed
//! and its Job created if it is not there. Cleanup of finished Jobs only happens when no run is
//! pending.
//!
//! One corner is not covered, as before: if the Job of an unrecorded run is deleted by someone
//! else before the operator records it, the trigger (still `now`/`once`) runs again, once, under
//! the same Job name.
//!
//! Missing references block a run before step 1: nothing is written, the strategy stays `now` or
//! `once`, and the run starts when the references appear.

use std::time::Duration;

use crate::core::api::Strategy;

/// How the referenced configuration compares with the digest recorded at the last run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigState {
    /// Not a `once`/`done` QuarksJob with `updateOnConfigChange`, or the digest was not computed.
    NotTracked,
    /// Same digest as recorded.
    Unchanged,
    /// A digest but nothing recorded yet (e.g. a `done` QuarksJob adopted from upstream).
    NoBaseline,
    /// The digest differs from the recorded one.
    Changed,
}

/// What the state machine is given.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerInput {
    /// `spec.trigger.strategy`.
    pub strategy: Option<Strategy>,
    /// `status.requestedRun`.
    pub requested_run: i64,
    /// `status.createdRun`.
    pub created_run: i64,
    /// Whether the Job of run `created_run + 1` exists (a run started but not recorded).
    pub next_job_exists: bool,
    /// `spec.updateOnConfigChange`.
    pub update_on_config_change: bool,
    /// The config digest comparison.
    pub config: ConfigState,
    /// Time since the last Job was created (`status.lastReconcile`), if known.
    pub since_last_job: Option<Duration>,
    /// `--meltdown-duration`: minimum time between a Job and a config-change re-run.
    pub meltdown: Duration,
}

/// Why a run happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunReason {
    /// A `now` or `once` trigger.
    Trigger(Strategy),
    /// The referenced configuration changed.
    ConfigChange,
    /// A run that was started but whose Job is not recorded yet (restart, failed write).
    Resume,
}

/// A run to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunPlan {
    /// The run number (names the Job).
    pub run: i64,
    /// Consume the trigger by setting the strategy to this (step 2).
    pub flip_to: Option<Strategy>,
    /// Why.
    pub reason: RunReason,
}

/// The decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to run.
    Idle,
    /// Run (steps 1–3).
    Run(RunPlan),
    /// Record the current digest as the baseline without running.
    AdoptDigest,
    /// The configuration changed but the last Job is younger than the meltdown duration: decide
    /// again after this long (edits in the meantime coalesce into one run).
    Delay(Duration),
}

/// The strategy a trigger leaves behind (`now` → `manual`, `once` → `done`).
pub fn consumed(strategy: Option<Strategy>) -> Option<Strategy> {
    match strategy {
        Some(Strategy::Now) => Some(Strategy::Manual),
        Some(Strategy::Once) => Some(Strategy::Done),
        _ => None,
    }
}

/// Decide.
pub fn decide(input: &TriggerInput) -> Decision {
    let flip_to = consumed(input.strategy);
    if is_pending(input) {
        return Decision::Run(RunPlan {
            run: input.requested_run.max(input.created_run + 1),
            flip_to,
            reason: RunReason::Resume,
        });
    }
    let next = input.created_run + 1;
    if let (Some(strategy), Some(_)) = (input.strategy, flip_to) {
        return Decision::Run(RunPlan {
            run: next,
            flip_to,
            reason: RunReason::Trigger(strategy),
        });
    }
    let tracks_config =
        input.update_on_config_change && input.strategy.is_some_and(Strategy::is_auto_errand);
    if !tracks_config {
        return Decision::Idle;
    }
    match input.config {
        ConfigState::NotTracked | ConfigState::Unchanged => Decision::Idle,
        ConfigState::NoBaseline => Decision::AdoptDigest,
        ConfigState::Changed => match input.since_last_job {
            Some(since) if since < input.meltdown => Decision::Delay(input.meltdown - since),
            _ => Decision::Run(RunPlan {
                run: next,
                flip_to: None,
                reason: RunReason::ConfigChange,
            }),
        },
    }
}

/// Whether a run was started but not recorded: its Job exists, or (earlier versions) its number
/// was allocated.
pub fn is_pending(input: &TriggerInput) -> bool {
    input.next_job_exists || input.requested_run > input.created_run
}

/// Whether [`decide`] needs the referenced configuration resolved (for the missing-reference
/// check of a run, or for the digest).
pub fn needs_references(input: &TriggerInput) -> bool {
    references_matter(
        input.strategy,
        input.update_on_config_change,
        is_pending(input),
    )
}

/// Whether the referenced ConfigMaps and Secrets can change what a reconcile does: a trigger
/// (which waits for missing references), a `pending` run, or an auto-errand with
/// `updateOnConfigChange` (the config digest). Otherwise [`decide`] never looks at them.
pub fn references_matter(
    strategy: Option<Strategy>,
    update_on_config_change: bool,
    pending: bool,
) -> bool {
    pending
        || consumed(strategy).is_some()
        || (update_on_config_change && strategy.is_some_and(Strategy::is_auto_errand))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(strategy: Option<Strategy>) -> TriggerInput {
        TriggerInput {
            strategy,
            requested_run: 0,
            created_run: 0,
            next_job_exists: false,
            update_on_config_change: false,
            config: ConfigState::NotTracked,
            since_last_job: None,
            meltdown: Duration::from_secs(60),
        }
    }

    fn run(run: i64, flip_to: Option<Strategy>, reason: RunReason) -> Decision {
        Decision::Run(RunPlan {
            run,
            flip_to,
            reason,
        })
    }

    #[test]
    fn now_runs_and_becomes_manual() {
        let d = decide(&input(Some(Strategy::Now)));
        assert_eq!(
            d,
            run(1, Some(Strategy::Manual), RunReason::Trigger(Strategy::Now))
        );
    }

    #[test]
    fn once_runs_and_becomes_done() {
        let mut i = input(Some(Strategy::Once));
        i.requested_run = 3;
        i.created_run = 3;
        assert_eq!(
            decide(&i),
            run(4, Some(Strategy::Done), RunReason::Trigger(Strategy::Once))
        );
    }

    #[test]
    fn manual_done_and_no_trigger_never_run_by_themselves() {
        for s in [Some(Strategy::Manual), Some(Strategy::Done), None] {
            assert_eq!(decide(&input(s)), Decision::Idle, "{s:?}");
        }
        // updateOnConfigChange does not apply to errands
        let mut i = input(Some(Strategy::Manual));
        i.update_on_config_change = true;
        i.config = ConfigState::Changed;
        assert_eq!(decide(&i), Decision::Idle);
    }

    #[test]
    fn a_pending_run_is_resumed_with_the_same_number() {
        // crash after the create (the Job of run 5 exists), strategy still `now`
        let mut i = input(Some(Strategy::Now));
        i.requested_run = 4;
        i.created_run = 4;
        i.next_job_exists = true;
        assert_eq!(
            decide(&i),
            run(5, Some(Strategy::Manual), RunReason::Resume)
        );
        // crash after the strategy patch: strategy already `manual` / `done`
        for s in [Strategy::Manual, Strategy::Done] {
            i.strategy = Some(s);
            assert_eq!(decide(&i), run(5, None, RunReason::Resume));
        }
        // pending beats config changes and meltdown
        i.update_on_config_change = true;
        i.config = ConfigState::Changed;
        i.since_last_job = Some(Duration::ZERO);
        assert_eq!(decide(&i), run(5, None, RunReason::Resume));
        // without that Job: nothing pending, nothing to do
        i.next_job_exists = false;
        i.update_on_config_change = false;
        assert_eq!(decide(&i), Decision::Idle);
    }

    #[test]
    fn a_run_allocated_by_an_earlier_version_is_resumed() {
        // requestedRun > createdRun, with or without its Job
        let mut i = input(Some(Strategy::Now));
        i.requested_run = 5;
        i.created_run = 4;
        for exists in [false, true] {
            i.next_job_exists = exists;
            assert_eq!(
                decide(&i),
                run(5, Some(Strategy::Manual), RunReason::Resume)
            );
        }
        i.strategy = Some(Strategy::Manual);
        i.next_job_exists = false;
        assert_eq!(decide(&i), run(5, None, RunReason::Resume));
    }

    #[test]
    fn config_changes_rerun_auto_errands_only_after_the_meltdown() {
        let mut i = input(Some(Strategy::Done));
        i.update_on_config_change = true;
        i.created_run = 1;
        i.requested_run = 1;
        i.config = ConfigState::Unchanged;
        assert_eq!(decide(&i), Decision::Idle);
        i.config = ConfigState::Changed;
        assert_eq!(decide(&i), run(2, None, RunReason::ConfigChange));
        i.since_last_job = Some(Duration::from_secs(20));
        assert_eq!(decide(&i), Decision::Delay(Duration::from_secs(40)));
        i.since_last_job = Some(Duration::from_secs(60));
        assert_eq!(decide(&i), run(2, None, RunReason::ConfigChange));
        // without updateOnConfigChange nothing happens
        i.update_on_config_change = false;
        assert_eq!(decide(&i), Decision::Idle);
    }

    #[test]
    fn a_done_quarks_job_without_a_recorded_digest_adopts_it() {
        let mut i = input(Some(Strategy::Done));
        i.update_on_config_change = true;
        i.config = ConfigState::NoBaseline;
        assert_eq!(decide(&i), Decision::AdoptDigest);
    }

    #[test]
    fn references_are_needed_exactly_when_a_run_or_digest_may_follow() {
        assert!(needs_references(&input(Some(Strategy::Now))));
        assert!(needs_references(&input(Some(Strategy::Once))));
        assert!(!needs_references(&input(Some(Strategy::Manual))));
        assert!(!needs_references(&input(Some(Strategy::Done))));
        let mut i = input(Some(Strategy::Done));
        i.update_on_config_change = true;
        assert!(needs_references(&i));
        let mut i = input(Some(Strategy::Manual));
        i.requested_run = 1;
        assert!(needs_references(&i));
        let mut i = input(Some(Strategy::Manual));
        i.next_job_exists = true;
        assert!(needs_references(&i));
    }
}

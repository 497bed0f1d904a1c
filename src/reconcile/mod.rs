//! The reconciler: trigger state machine, Job creation, status, cleanup of succeeded Jobs and
//! config-change re-runs.
//!
//! Not built yet: this is the reconciler issue's work.

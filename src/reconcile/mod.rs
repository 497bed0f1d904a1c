//! The reconciler: trigger state machine, Job creation, status, cleanup of finished Jobs and
//! config-change re-runs. See `docs/reconciler.md`.
//!
//! | module | concern | pure? |
//! |---|---|---|
//! | [`state`] | trigger state machine, crash-safe run protocol | pure |
//! | [`job`] | building the Job, reading its outcome | pure |
//! | [`status`] | conditions | pure |
//! | [`runs`] | the run history in `status.runs`: record, outcome, outputs, trim | pure |
//! | [`history`] | which failed Jobs and kept pods go beyond `--job-history` | pure |
//! | [`digest`] | config digest for `updateOnConfigChange` | pure |
//! | [`mapping`] | monitored namespaces, watched object → QuarksJobs | pure |
//! | `index` | reference → QuarksJobs, kept from the QuarksJob watch | pure |
//! | `jobs` | each QuarksJob's Jobs, kept from the Job watch and this process's own writes | pure |
//! | `slim` | what the caches keep of an object | pure |
//! | `watched` | a cached QuarksJob: typed, and its raw template | pure |
//! | `context` | settings, shared client/recorder/namespace cache, API call time limit | I/O |
//! | `refs` | resolving references (GETs) | I/O |
//! | `report` | a failing reconcile shown on the QuarksJob (condition, event) | I/O |
//! | `run` | the four writes of a run | I/O |
//! | `outcome` | a finished run's record: pods, output Secrets (metadata) | I/O |
//! | `cleanup` | succeeded Jobs and their pods | I/O |
//! | `reconciler` | one reconcile | I/O |
//! | `controller` | watches and the controller loop | I/O |
//! | [`events`] | event reasons (publishing is `runtime::events`) | pure |
//! | `mock` (tests only) | the reconciler's write sequences against a scripted apiserver | — |
//!
//! Layer: feature (on `crate::core` and `crate::runtime`; takes plain settings, see docs/architecture.md).

mod cleanup;
mod context;
mod controller;
pub mod digest;
mod error;
pub mod events;
pub mod history;
mod index;
pub mod job;
mod jobs;
pub mod mapping;
#[cfg(test)]
mod mock;
mod outcome;
mod reconciler;
mod refs;
mod report;
mod run;
pub mod runs;
mod slim;
pub mod state;
pub mod status;
mod watched;

pub use context::{Config, DEFAULT_JOB_HISTORY, DEFAULT_MAX_WORKERS, DEFAULT_RUN_HISTORY};
pub use controller::{run_controller, run_controller_until};
pub use error::{Error, Result, backoff};

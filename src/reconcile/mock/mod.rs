//! The mock-apiserver tier (test only; layer: feature, under `reconcile`): one reconcile driven
//! against a scripted apiserver that asserts each request in order and answers it, so the
//! reconciler's write sequences (create the Job, consume the trigger, record; conflicts,
//! resumed runs, cleanup) are tested in milliseconds, without a control plane. See "Test tiers"
//! in docs/architecture.md.
//!
//! | module | what |
//! |---|---|
//! | [`fixtures`] | the client over `tower_test::mock`, the context, the scripted apiserver, a scenario's run |
//! | [`objects`] | the QuarksJob, Jobs and pods as stored, their paths, the namespace cache |
//! | [`triggers`] | `now`, `once`, a stale cache read fresh, a conflict on consuming the trigger, namespaces not monitored |
//! | [`resume`] | runs interrupted between their writes |
//! | [`cleanup`] | succeeded Jobs: outcome, pods kept or deleted, the Job deleted |
//! | [`history`] | `--job-history`: the oldest failed Job, the oldest kept pod deleted |

mod cleanup;
mod fixtures;
mod history;
mod objects;
mod resume;
mod triggers;

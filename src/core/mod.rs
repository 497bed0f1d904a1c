//! The core layer: the rules of quarks-job as plain data and pure functions, with no I/O. It
//! imports nothing else of the crate and no client, runtime or server crate (kube's client and
//! runtime, tokio, hyper, axum, rustls); `tests/layers.rs` checks both. Every feature module
//! (reconcile, webhook, persist, …) builds on it, so each rule here is written once:
//!
//! | module | rule |
//! |---|---|
//! | [`api`] | the `QuarksJob` resource, its labels and annotations, the CRD |
//! | [`versioned`] | versioned secret names `<name>-v<N>`, the one "newest version" rule, retention |
//! | [`job_names`] | deterministic Job names, and which QuarksJob names can work |
//! | [`podrefs`] | which ConfigMaps and Secrets a pod spec references |
//! | [`kube_rules`] | the apiserver's rules for names, keys and label values |
//! | [`webhooks`] | the admission endpoints: path, webhook name, operations, metric label |
//! | [`names`] | upstream's name sanitisers (same input, same name as upstream) |
//! | [`lenient`] | reading objects one at a time, never failing a list, never logging contents |

pub mod api;
pub mod job_names;
pub mod kube_rules;
pub mod lenient;
pub mod names;
pub mod podrefs;
pub mod versioned;
pub mod webhooks;

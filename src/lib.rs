//! quarks-job: a Kubernetes operator that runs batch Jobs on demand and captures the JSON they
//! write into Secrets. Wire-compatible successor of Cloud Foundry's Quarks Job.
//!
//! Layers, lowest first (docs/architecture.md; `tests/layers.rs` checks them): [`core`] (rules as
//! pure functions, no I/O) → [`runtime`], [`metrics`], [`telemetry`] (shared I/O) → the features
//! [`reconcile`], [`webhook`], [`certs`], [`leader`], [`persist`], [`health`] → the wiring
//! [`operator`], [`error`], [`cli`] and `main.rs`.

pub mod certs;
pub mod cli;
pub mod core;
pub mod error;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod persist;
pub mod plugin;
pub mod reconcile;
pub mod runtime;
pub mod telemetry;
pub mod webhook;

pub use error::{Error, Result};

/// The crate version, which is also the default tag of the operator image.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Install the one rustls crypto provider of the tree (ring). Call first thing in `main` and in
/// test setup; calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

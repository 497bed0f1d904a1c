//! quarks-job: a Kubernetes operator that runs batch Jobs on demand and captures the JSON they
//! write into Secrets. Wire-compatible successor of Cloud Foundry's Quarks Job.

pub mod api;
pub mod certs;
pub mod cli;
pub mod error;
pub mod health;
pub mod kube_rules;
pub mod leader;
pub mod lenient;
pub mod metrics;
pub mod names;
pub mod operator;
pub mod persist;
pub mod plugin;
pub mod podrefs;
pub mod reconcile;
pub mod telemetry;
pub mod versioned;
pub mod webhook;

pub use error::{Error, Result};

/// The crate version, which is also the default tag of the operator image.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Install the one rustls crypto provider of the tree (ring). Call first thing in `main` and in
/// test setup; calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

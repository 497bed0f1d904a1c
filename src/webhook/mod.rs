//! The admission webhook, served by axum over rustls:
//! - `/mutate-pods` ([`mutate`]): output volumes, the output-persist container, newest versioned
//!   secret names ([`versioned_refs`]) for pods of QuarksJob Jobs;
//! - `/validate-quarksjobs` ([`validate`]): rejects QuarksJobs that cannot work;
//! - `/probe` ([`probe`]): the operator's own dry-run pod, to know the apiserver calls the webhook.
//!
//! Handlers ([`handler`]) answer from in-memory caches ([`caches`]); [`server`] serves TLS with
//! limits and graceful shutdown; [`run`] wires certificates, registration and caches.

pub mod caches;
pub mod handler;
pub mod mutate;
pub mod probe;
pub mod resources;
pub mod run;
mod server;
pub mod validate;
pub mod versioned_refs;

pub use run::{Settings, WebhookError};
pub use server::{
    BODY_LIMIT, DRAIN_TIMEOUT, HANDSHAKE_TIMEOUT, REQUEST_TIMEOUT, serve_tls, with_limits,
};

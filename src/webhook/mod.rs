//! The admission webhook, served by axum over rustls:
//! - `/mutate-pods` ([`mutate`]): output volumes, the output-persist container, newest versioned
//!   secret names ([`versioned_refs`]) for pods of QuarksJob Jobs;
//! - `/validate-quarksjobs` ([`validate`]): rejects QuarksJobs that cannot work;
//! - `/probe` ([`probe`]): the operator's own dry-run pod, to know the apiserver calls the webhook.
//!
//! Handlers ([`handler`]) answer from in-memory caches ([`caches`], versioned secrets indexed by
//! namespace and base name in [`versioned_index`]); `limits` bounds what a
//! request may cost; `server` serves TLS with connection limits and graceful shutdown; [`run`]
//! wires certificates, registration and caches.
//!
//! Layer: feature (on `crate::core` and `crate::runtime`; takes plain settings, see docs/architecture.md).

pub mod caches;
pub mod handler;
mod limits;
pub mod mutate;
pub mod probe;
pub mod resources;
pub mod run;
mod server;
pub mod validate;
pub mod versioned_index;
pub mod versioned_refs;

pub use limits::{BODY_BUDGET, BODY_LIMIT, JSON_VALUE_LIMIT, REQUEST_TIMEOUT, with_limits};
pub use run::{WebhookError, WebhookSettings, start};
pub use server::{
    ConnectionLimits, DRAIN_TIMEOUT, HANDSHAKE_TIMEOUT, HEADER_READ_TIMEOUT, IDLE_TIMEOUT,
    MAX_CONNECTIONS, serve_tls, serve_tls_with,
};

//! The admission webhook served by axum over rustls. `server` serves a router over TLS with
//! limits and graceful shutdown; the health port lives in `crate::health`.
//!
//! Still to come (webhook issue): `/mutate-pods` (output volumes, the output-persisting
//! container, newest versioned secret names) and `/validate-quarksjobs`.

mod server;
pub mod validate;

pub use server::{
    BODY_LIMIT, DRAIN_TIMEOUT, HANDSHAKE_TIMEOUT, REQUEST_TIMEOUT, serve_tls, with_limits,
};

//! Self-managed webhook certificates: an rcgen CA and serving certificate (`authority`), kept in
//! a Secret shared by restarts and replicas (`store`), served through a hot-swappable rustls
//! resolver (`resolver`).
//!
//! `lifecycle` renews managed certificates before expiry and reloads user-provided ones from a
//! directory, patching the webhook configurations' `caBundle` (`registration`) before a new CA
//! is served. `guard` registers the configurations again when they are deleted or damaged
//! while the operator runs.
//!
//! Layer: feature (on `crate::core` and `crate::runtime`; takes plain settings, see docs/architecture.md).

mod authority;
mod check;
pub mod guard;
mod lifecycle;
mod registration;
mod resolver;
mod store;

pub use authority::{
    Authority, CA_LIFETIME, CertError, CertInfo, SERVING_LIFETIME, ServingCert, inspect,
    rotation_due, rotation_time, webhook_sans,
};
pub use lifecycle::{
    DIR_POLL, LoadError, RECHECK, Source, apply, load, load_dir, maintain, next_check,
    record_expiry,
};
pub use registration::{
    MUTATE_PODS_PATH, MUTATE_PODS_WEBHOOK, PROBE_PATH, PROBE_WEBHOOK, Registration,
    VALIDATE_QUARKSJOBS_PATH, VALIDATE_QUARKSJOBS_WEBHOOK, WebhookAddress, is_missing,
    webhooks_patch,
};
pub use resolver::{HotSwapResolver, certified_key, server_config};
pub use store::{
    Bundle, CA_CRT, CA_KEY, Plan, StoreError, TLS_CRT, TLS_KEY, ensure, execute, plan, secret_data,
};

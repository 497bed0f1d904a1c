//! Self-managed webhook certificates: an rcgen CA and serving certificate (`authority`), served
//! through a hot-swappable rustls resolver (`resolver`).
//!
//! Still to come (webhook issue): keeping them in a Secret, rotation, and patching the
//! `caBundle` of the webhook configurations.

mod authority;
mod resolver;

pub use authority::{
    Authority, CA_LIFETIME, CertError, CertInfo, SERVING_LIFETIME, ServingCert, inspect,
    rotation_due, rotation_time, webhook_sans,
};
pub use resolver::{HotSwapResolver, certified_key, server_config};

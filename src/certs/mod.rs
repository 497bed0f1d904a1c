//! Self-managed webhook certificates: an rcgen CA and serving certificate, kept in a Secret,
//! rotated before expiry, and the `caBundle` of the webhook configurations patched to match.
//!
//! Not built yet: this is the webhook issue's work.

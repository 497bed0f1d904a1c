//! The `QuarksJob` resource (`quarks.cloudfoundry.org/v1alpha1`): types, status, the label and
//! annotation keys of the API, and CRD generation.
//!
//! Layer: core: plain data and pure functions, no I/O (see `crate::core`).

mod crd;
pub mod labels;
mod types;

pub use crd::{CRD_NAME, crd, crd_yaml};
pub use types::*;

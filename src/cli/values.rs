//! Value parsers of the command line: each bad value is a usage error (exit 2) naming it.

use clap::builder::TypedValueParser;

use crate::core::kube_rules::label_value;
use crate::webhook::resources;

pub(super) fn non_empty(what: &'static str) -> impl TypedValueParser<Value = String> {
    move |s: &str| -> Result<String, String> {
        if s.trim().is_empty() {
            Err(format!("{what} must not be empty"))
        } else {
            Ok(s.to_string())
        }
    }
}

/// A resource quantity (e.g. `100m`, `64Mi`), or empty for none.
pub(super) fn quantity_setting(s: &str) -> Result<String, String> {
    if s.trim().is_empty() || resources::quantity(s.trim()).is_some() {
        Ok(s.trim().to_string())
    } else {
        Err(format!(
            "'{s}' is not a Kubernetes quantity (e.g. 100m, 0.5, 64Mi, 1G), nor empty for none"
        ))
    }
}

/// A monitored id is a label value ([`label_value`]): empty means `default` (as upstream).
pub(super) fn parse_monitored_id(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Ok("default".into());
    }
    label_value(s).map_err(|e| format!("'{s}' {e}"))?;
    Ok(s.to_string())
}

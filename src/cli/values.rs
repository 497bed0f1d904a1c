//! Value parsers of the command line: each bad value is a usage error (exit 2) naming it.

use clap::builder::TypedValueParser;

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

/// A monitored id is a label value: empty means `default` (as upstream), otherwise at most 63
/// characters of `[A-Za-z0-9._-]`, starting and ending alphanumeric.
pub(super) fn parse_monitored_id(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Ok("default".into());
    }
    let ok_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let ok_ends = s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if s.len() > 63 || !ok_chars || !ok_ends {
        return Err(format!(
            "'{s}' is not a valid label value: at most 63 characters of A-Z, a-z, 0-9, '-', '_', '.', \
             starting and ending with a letter or digit"
        ));
    }
    Ok(s.to_string())
}

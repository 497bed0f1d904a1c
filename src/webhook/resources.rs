//! Requests and limits of the injected output-persist container (`--output-persist-*`): the
//! Kubernetes quantity grammar, checked when the operator starts, so that a typo is an exit with
//! a message rather than every job pod refused by the apiserver.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Default of `--output-persist-cpu-request`.
pub const DEFAULT_CPU_REQUEST: &str = "10m";
/// Default of `--output-persist-memory-request`.
pub const DEFAULT_MEMORY_REQUEST: &str = "32Mi";
/// Default of `--output-persist-cpu-limit`.
pub const DEFAULT_CPU_LIMIT: &str = "250m";
/// Default of `--output-persist-memory-limit`: persist-output holds one output file's JSON at a
/// time, well below this.
pub const DEFAULT_MEMORY_LIMIT: &str = "128Mi";

/// The four settings, as given (`None` or empty: not set).
#[derive(Clone, Copy, Debug, Default)]
pub struct OutputResources<'a> {
    /// `--output-persist-cpu-request`
    pub cpu_request: Option<&'a str>,
    /// `--output-persist-memory-request`
    pub memory_request: Option<&'a str>,
    /// `--output-persist-cpu-limit`
    pub cpu_limit: Option<&'a str>,
    /// `--output-persist-memory-limit`
    pub memory_limit: Option<&'a str>,
}

impl OutputResources<'static> {
    /// The flags' defaults.
    pub const DEFAULTS: OutputResources<'static> = OutputResources {
        cpu_request: Some(DEFAULT_CPU_REQUEST),
        memory_request: Some(DEFAULT_MEMORY_REQUEST),
        cpu_limit: Some(DEFAULT_CPU_LIMIT),
        memory_limit: Some(DEFAULT_MEMORY_LIMIT),
    };
}

impl OutputResources<'_> {
    /// The container's resources, or what is wrong with a setting (naming it). A request may
    /// not exceed its limit (the apiserver would refuse every pod).
    pub fn requirements(&self) -> Result<ResourceRequirements, String> {
        let mut requests = BTreeMap::new();
        let mut limits = BTreeMap::new();
        for (resource, request, limit) in [
            ("cpu", self.cpu_request, self.cpu_limit),
            ("memory", self.memory_request, self.memory_limit),
        ] {
            let request = setting(resource, "request", request)?;
            let limit = setting(resource, "limit", limit)?;
            if let (Some((r, rv)), Some((l, lv))) = (&request, &limit)
                && rv > lv
            {
                return Err(format!(
                    "the output-persist {resource} request {r} exceeds its limit {l}"
                ));
            }
            if let Some((r, _)) = request {
                requests.insert(resource.to_string(), Quantity(r));
            }
            if let Some((l, _)) = limit {
                limits.insert(resource.to_string(), Quantity(l));
            }
        }
        Ok(ResourceRequirements {
            requests: (!requests.is_empty()).then_some(requests),
            limits: (!limits.is_empty()).then_some(limits),
            claims: None,
        })
    }
}

/// One setting: `None` when unset or empty, else the quantity and its value.
fn setting(
    resource: &str,
    kind: &str,
    value: Option<&str>,
) -> Result<Option<(String, f64)>, String> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let parsed = quantity(value).ok_or_else(|| {
        format!(
            "the output-persist {resource} {kind} '{value}' is not a Kubernetes quantity \
             (e.g. 100m, 0.5, 64Mi, 1G)"
        )
    })?;
    Ok(Some((value.to_string(), parsed)))
}

/// The value of a non-negative Kubernetes quantity (`<number><suffix>`, the suffix one of
/// `Ki Mi Gi Ti Pi Ei`, `m k M G T P E`, `e<exponent>` or none), or `None` if it is not one.
pub fn quantity(s: &str) -> Option<f64> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let digits = number.strip_prefix('+').unwrap_or(number);
    let valid_number = !digits.is_empty()
        && digits != "."
        && digits.matches('.').count() <= 1
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !valid_number {
        return None;
    }
    let value: f64 = digits.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => {
            let e = exponent
                .strip_prefix('e')
                .or_else(|| exponent.strip_prefix('E'))?;
            let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            10f64.powi(e.parse().ok()?)
        }
    };
    Some(value * multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_follow_the_kubernetes_grammar() {
        for (q, v) in [
            ("1", 1.0),
            ("0.5", 0.5),
            (".5", 0.5),
            ("1.", 1.0),
            ("+2", 2.0),
            ("100m", 0.1),
            ("64Mi", 64.0 * 1024.0 * 1024.0),
            ("1G", 1e9),
            ("2Ki", 2048.0),
            ("1e3", 1000.0),
            ("5E-3", 0.005),
        ] {
            assert_eq!(quantity(q), Some(v), "{q}");
        }
        for bad in [
            "", "m", "-1", "1.2.3", "64MB", "1 Gi", "1e", "1e+", "abc", ".", "1mi",
        ] {
            assert_eq!(quantity(bad), None, "{bad}");
        }
    }

    #[test]
    fn settings_become_requests_and_limits() {
        let r = OutputResources {
            cpu_request: Some("10m"),
            memory_request: Some("32Mi"),
            cpu_limit: Some(""),
            memory_limit: Some("128Mi"),
        }
        .requirements()
        .unwrap();
        let requests = r.requests.unwrap();
        assert_eq!(requests["cpu"], Quantity("10m".into()));
        assert_eq!(requests["memory"], Quantity("32Mi".into()));
        let limits = r.limits.unwrap();
        assert_eq!(limits.len(), 1, "an empty setting sets nothing");
        assert_eq!(limits["memory"], Quantity("128Mi".into()));
        assert_eq!(
            OutputResources::default().requirements().unwrap(),
            ResourceRequirements::default()
        );
        let defaults = OutputResources::DEFAULTS.requirements().unwrap();
        assert_eq!(defaults.requests.unwrap().len(), 2);
        assert_eq!(defaults.limits.unwrap().len(), 2);
    }

    #[test]
    fn bad_settings_are_named() {
        let err = OutputResources {
            memory_limit: Some("128MB"),
            ..Default::default()
        }
        .requirements()
        .unwrap_err();
        assert!(
            err.contains("memory limit '128MB' is not a Kubernetes quantity"),
            "{err}"
        );
        let err = OutputResources {
            cpu_request: Some("1"),
            cpu_limit: Some("500m"),
            ..Default::default()
        }
        .requirements()
        .unwrap_err();
        assert_eq!(
            err,
            "the output-persist cpu request 1 exceeds its limit 500m"
        );
    }
}

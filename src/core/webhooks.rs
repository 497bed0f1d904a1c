//! The admission endpoints of the webhook, each defined once: its URL path, the name of its
//! webhook in the apiserver's configuration, the operations its rule admits and the `webhook`
//! label of its metrics. The registration (`certs`) builds the configurations from them and the
//! server (`webhook::handler`) routes and counts by them, so the two cannot drift apart.
//!
//! Layer: core: plain data, no I/O (see `crate::core`).

/// One admission endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL path the operator serves it on.
    pub path: &'static str,
    /// The name of its webhook in the (mutating or validating) webhook configuration.
    pub webhook: &'static str,
    /// The operations its rule admits (also the `operation` labels its metrics start with).
    pub operations: &'static [&'static str],
    /// The `webhook` label of its metrics.
    pub label: &'static str,
}

impl Endpoint {
    /// The pod mutation (job pods of monitored namespaces).
    pub const MUTATE_PODS: Endpoint = Endpoint {
        path: "/mutate-pods",
        webhook: "mutate-pods.quarks.cloudfoundry.org",
        operations: &["CREATE"],
        label: "mutate-pods",
    };

    /// The probe (the operator's own dry-run pod, see `webhook::probe`).
    pub const PROBE: Endpoint = Endpoint {
        path: "/probe",
        webhook: "probe.quarks.cloudfoundry.org",
        operations: &["CREATE"],
        label: "probe",
    };

    /// The QuarksJob validation.
    pub const VALIDATE_QUARKSJOBS: Endpoint = Endpoint {
        path: "/validate-quarksjobs",
        webhook: "validate-quarksjobs.quarks.cloudfoundry.org",
        operations: &["CREATE", "UPDATE"],
        label: "validate-quarksjobs",
    };

    /// Every endpoint.
    pub const ALL: [Endpoint; 3] = [
        Endpoint::MUTATE_PODS,
        Endpoint::PROBE,
        Endpoint::VALIDATE_QUARKSJOBS,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_names_and_labels_are_distinct() {
        for (i, a) in Endpoint::ALL.iter().enumerate() {
            for b in &Endpoint::ALL[i + 1..] {
                assert_ne!(a.path, b.path);
                assert_ne!(a.webhook, b.webhook);
                assert_ne!(a.label, b.label);
            }
            assert!(a.path.starts_with('/'), "{a:?}");
            assert!(!a.operations.is_empty(), "{a:?}");
        }
    }
}

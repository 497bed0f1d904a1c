//! Admission metrics: requests, denials and latency of the webhook's answers.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Buckets of the admission latency, seconds: answers come from memory, in microseconds; the
/// upper buckets show a starved process long before the apiserver's timeout (10 s by default).
pub const ADMISSION_BUCKETS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.1,
    1.0,
];

/// Labels of an admission request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    /// `mutate-pods` or `validate-quarksjobs`.
    pub webhook: &'static str,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`, or `unknown` for a body that is no usable review.
    pub operation: &'static str,
}

/// The `webhook` label alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// `mutate-pods` or `validate-quarksjobs`.
    pub webhook: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Admission requests answered by this process.
#[derive(Clone, Debug)]
pub struct AdmissionMetrics {
    requests: Family<AdmissionLabels, Counter>,
    denials: Family<AdmissionLabels, Counter>,
    duration: HistogramFamily<WebhookLabels>,
}

impl Default for AdmissionMetrics {
    fn default() -> Self {
        AdmissionMetrics {
            requests: Family::default(),
            denials: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(ADMISSION_BUCKETS)),
        }
    }
}

impl AdmissionMetrics {
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "admission_requests",
            "Admission requests answered, by webhook and operation",
            self.requests.clone(),
        );
        r.register(
            "admission_denials",
            "Admission requests not allowed (denied, or unreadable), by webhook and operation",
            self.denials.clone(),
        );
        r.register_with_unit(
            "admission_duration",
            "Time from a received admission request body to its encoded answer",
            Unit::Seconds,
            self.duration.clone(),
        );
    }

    /// Expose zeros for the operations a webhook is registered for (see
    /// [`super::ReconcileMetrics::init_errors`]).
    pub fn init(&self, webhook: &'static str, operations: &[&'static str]) {
        for &operation in operations {
            let labels = AdmissionLabels { webhook, operation };
            let _ = self.requests.get_or_create(&labels);
            let _ = self.denials.get_or_create(&labels);
        }
        let _ = self.duration.get_or_create(&WebhookLabels { webhook });
    }

    /// Record one answered request.
    pub fn observe(&self, labels: AdmissionLabels, allowed: bool, took: Duration) {
        self.requests.get_or_create(&labels).inc();
        if !allowed {
            self.denials.get_or_create(&labels).inc();
        }
        self.duration
            .get_or_create(&WebhookLabels {
                webhook: labels.webhook,
            })
            .observe(took.as_secs_f64());
    }

    /// Requests with `labels` so far.
    pub fn requests(&self, labels: &AdmissionLabels) -> u64 {
        self.requests.get(labels).map_or(0, |c| c.get())
    }

    /// Denials with `labels` so far.
    pub fn denials(&self, labels: &AdmissionLabels) -> u64 {
        self.denials.get(labels).map_or(0, |c| c.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metrics, tests::sample};

    #[test]
    fn admission_requests_denials_and_latency() {
        let m = Metrics::new();
        let create = AdmissionLabels {
            webhook: "mutate-pods",
            operation: "CREATE",
        };
        m.admission
            .observe(create.clone(), true, Duration::from_micros(30));
        m.admission
            .observe(create.clone(), false, Duration::from_micros(70));
        assert_eq!(m.admission.requests(&create), 2);
        assert_eq!(m.admission.denials(&create), 1);
        let text = m.encode();
        let series = "{webhook=\"mutate-pods\",operation=\"CREATE\"}";
        assert_eq!(
            sample(
                &text,
                &format!("quarks_job_admission_requests_total{series}")
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                &format!("quarks_job_admission_denials_total{series}")
            ),
            Some(1.0)
        );
        // 30 µs and 70 µs fall into the 50 µs and 100 µs buckets
        let bucket = |le: &str| {
            sample(
                &text,
                &format!(
                    "quarks_job_admission_duration_seconds_bucket{{le=\"{le}\",webhook=\"mutate-pods\"}}"
                ),
            )
        };
        assert_eq!(bucket("0.000025"), Some(0.0), "{text}");
        assert_eq!(bucket("0.00005"), Some(1.0), "{text}");
        assert_eq!(bucket("0.0001"), Some(2.0), "{text}");
    }
}

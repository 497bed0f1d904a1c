//! Prometheus metrics of this process, served as OpenMetrics text at `/metrics` on the health
//! port. One [`Metrics`] is made per process and handed to the reconciler (its `Config`), the
//! webhook (its `Settings`) and the health router; the handles are cheap clones of shared
//! atomics. Every replica counts what it does itself: the webhook serves on every replica, only
//! the leader reconciles. See `docs/metrics.md`.
//!
//! Layer: runtime (shared I/O on `crate::core`, see docs/architecture.md).

mod admission;
mod reconcile;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

pub use admission::{ADMISSION_BUCKETS, AdmissionLabels, AdmissionMetrics, WebhookLabels};
pub use reconcile::{
    ErrorLabels, JobMetrics, RECONCILE_BUCKETS, ReconcileMeasurer, ReconcileMetrics,
};

/// Prefix of every metric name.
pub const PREFIX: &str = "quarks_job";

/// `Content-Type` of the `/metrics` answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// All metrics of the process.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Reconciles.
    pub reconcile: ReconcileMetrics,
    /// Job transitions.
    pub jobs: JobMetrics,
    /// Admission requests.
    pub admission: AdmissionMetrics,
    /// The serving certificate.
    pub certificate: CertificateMetrics,
    /// Whether this replica reconciles.
    pub leader: LeaderMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh metrics in their own registry.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let reconcile = ReconcileMetrics::default();
        reconcile.register(&mut registry);
        let jobs = JobMetrics::default();
        jobs.register(&mut registry);
        let admission = AdmissionMetrics::default();
        admission.register(&mut registry);
        let certificate = CertificateMetrics::default();
        certificate.register(&mut registry);
        let leader = LeaderMetrics::default();
        leader.register(&mut registry);
        Metrics {
            registry: Arc::new(registry),
            reconcile,
            jobs,
            admission,
            certificate,
            leader,
        }
    }

    /// The OpenMetrics text exposition (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The certificate the webhook serves.
#[derive(Clone, Debug, Default)]
pub struct CertificateMetrics {
    expiry: Gauge<f64, AtomicU64>,
}

impl CertificateMetrics {
    fn register(&self, r: &mut Registry) {
        r.register_with_unit(
            "certificate_expiry_timestamp",
            "When the served webhook certificate expires (its notAfter), Unix time",
            Unit::Seconds,
            self.expiry.clone(),
        );
    }

    /// The served certificate expires at `not_after`.
    pub fn set_not_after(&self, not_after: SystemTime) {
        let secs = not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.expiry.set(secs);
    }

    /// The recorded expiry, Unix seconds (0 before a certificate is served).
    pub fn not_after(&self) -> f64 {
        self.expiry.get()
    }
}

/// Leader election.
#[derive(Clone, Debug, Default)]
pub struct LeaderMetrics {
    leading: Gauge,
}

impl LeaderMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "leader",
            "1 while this replica runs the reconciler (it holds the Lease, or leader election is off), else 0",
            self.leading.clone(),
        );
    }

    /// This replica's reconciler started (`true`) or stopped.
    pub fn set_leading(&self, leading: bool) {
        self.leading.set(i64::from(leading));
    }

    /// Whether the reconciler runs here.
    pub fn leading(&self) -> bool {
        self.leading.get() == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The value of the sample line `series` (name with labels, as exposed).
    pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_family_is_exposed_with_help_type_and_conventional_names() {
        let m = Metrics::new();
        // labelled families show once they have a series
        m.reconcile.init_errors(&["kube"]);
        m.admission.init("mutate-pods", &["CREATE"]);
        let text = m.encode();
        for (name, kind) in [
            ("quarks_job_reconcile", "counter"),
            ("quarks_job_reconcile_errors", "counter"),
            ("quarks_job_reconcile_duration_seconds", "histogram"),
            ("quarks_job_jobs_created", "counter"),
            ("quarks_job_jobs_succeeded", "counter"),
            ("quarks_job_jobs_failed", "counter"),
            ("quarks_job_admission_requests", "counter"),
            ("quarks_job_admission_denials", "counter"),
            ("quarks_job_admission_duration_seconds", "histogram"),
            ("quarks_job_certificate_expiry_timestamp_seconds", "gauge"),
            ("quarks_job_leader", "gauge"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name} {kind}:\n{text}"
            );
            assert!(text.contains(&format!("# HELP {name} ")), "{name}:\n{text}");
        }
        // unlabelled counters show 0 from the start; OpenMetrics ends with EOF
        assert_eq!(sample(&text, "quarks_job_jobs_created_total"), Some(0.0));
        assert_eq!(sample(&text, "quarks_job_reconcile_total"), Some(0.0));
        assert_eq!(sample(&text, "quarks_job_leader"), Some(0.0));
        m.leader.set_leading(true);
        assert_eq!(sample(&m.encode(), "quarks_job_leader"), Some(1.0));
        assert_eq!(
            sample(&text, "quarks_job_reconcile_errors_total{error=\"kube\"}"),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                "quarks_job_admission_denials_total{webhook=\"mutate-pods\",operation=\"CREATE\"}"
            ),
            Some(0.0)
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn certificate_expiry_is_unix_seconds() {
        let m = Metrics::new();
        assert_eq!(m.certificate.not_after(), 0.0);
        m.certificate
            .set_not_after(SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000));
        assert_eq!(m.certificate.not_after(), 1_900_000_000.0);
        let text = m.encode();
        assert_eq!(
            sample(&text, "quarks_job_certificate_expiry_timestamp_seconds"),
            Some(1_900_000_000.0)
        );
    }
}

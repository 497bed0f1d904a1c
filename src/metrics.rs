//! Prometheus metrics of this process, served as OpenMetrics text at `/metrics` on the health
//! port. One [`Metrics`] is made per process and handed to the reconciler (its `Config`), the
//! webhook (its `Settings`) and the health router; the handles are cheap clones of shared
//! atomics. Every replica counts what it does itself: the webhook serves on every replica, only
//! the leader reconciles. See `docs/metrics.md`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Prefix of every metric name.
pub const PREFIX: &str = "quarks_job";

/// `Content-Type` of the `/metrics` answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Buckets of the reconcile duration, seconds: a reconcile is a handful of API calls.
pub const RECONCILE_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
];

/// Buckets of the admission latency, seconds: answers come from memory, in microseconds; the
/// upper buckets show a starved process long before the apiserver's timeout (10 s by default).
pub const ADMISSION_BUCKETS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.1,
    1.0,
];

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
        Metrics {
            registry: Arc::new(registry),
            reconcile,
            jobs,
            admission,
            certificate,
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

/// The `error` label of a failed reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `metric_label()` of the error.
    pub error: &'static str,
}

/// Reconciles: how many, how many failed (by error kind), how long they took.
#[derive(Clone, Debug)]
pub struct ReconcileMetrics {
    runs: Counter,
    failures: Family<ErrorLabels, Counter>,
    duration: Histogram,
}

impl Default for ReconcileMetrics {
    fn default() -> Self {
        ReconcileMetrics {
            runs: Counter::default(),
            failures: Family::default(),
            duration: Histogram::new(RECONCILE_BUCKETS),
        }
    }
}

impl ReconcileMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "reconcile",
            "QuarksJob reconciles started",
            self.runs.clone(),
        );
        r.register(
            "reconcile_errors",
            "QuarksJob reconciles that failed, by error kind (each is retried with back-off)",
            self.failures.clone(),
        );
        r.register_with_unit(
            "reconcile_duration",
            "Duration of QuarksJob reconciles",
            Unit::Seconds,
            self.duration.clone(),
        );
    }

    /// Count a reconcile; its duration is recorded when the returned guard is dropped.
    pub fn measure(&self) -> ReconcileMeasurer {
        self.runs.inc();
        ReconcileMeasurer {
            start: Instant::now(),
            duration: self.duration.clone(),
        }
    }

    /// Expose a zero for each error kind, so that the first failure of a kind is an increase
    /// (series that appear at 1 are invisible to `rate()`).
    pub fn init_errors(&self, kinds: &[&'static str]) {
        for &error in kinds {
            let _ = self.failures.get_or_create(&ErrorLabels { error });
        }
    }

    /// Count a failed reconcile of kind `error` (an error's `metric_label()`).
    pub fn failed(&self, error: &'static str) {
        self.failures.get_or_create(&ErrorLabels { error }).inc();
    }

    /// Reconciles started so far.
    pub fn runs(&self) -> u64 {
        self.runs.get()
    }

    /// Failed reconciles of kind `error` so far.
    pub fn failures(&self, error: &'static str) -> u64 {
        self.failures
            .get(&ErrorLabels { error })
            .map_or(0, |c| c.get())
    }
}

/// Records the duration of one reconcile when dropped (also when the reconcile is cancelled).
#[must_use = "the duration is recorded when the measurer is dropped"]
pub struct ReconcileMeasurer {
    start: Instant,
    duration: Histogram,
}

impl Drop for ReconcileMeasurer {
    fn drop(&mut self) {
        self.duration.observe(self.start.elapsed().as_secs_f64());
    }
}

/// Job transitions, each counted once by the process that acted on it: created when the create
/// call succeeded (not when the Job already existed), succeeded when the succeeded Job was
/// deleted by the cleanup, failed when the QuarksJob's `Failed` condition was first written.
#[derive(Clone, Debug, Default)]
pub struct JobMetrics {
    /// Jobs created.
    pub created: Counter,
    /// Succeeded Jobs cleaned up.
    pub succeeded: Counter,
    /// Failed Jobs recorded.
    pub failed: Counter,
}

impl JobMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "jobs_created",
            "Jobs created for QuarksJobs",
            self.created.clone(),
        );
        r.register(
            "jobs_succeeded",
            "Succeeded Jobs of QuarksJobs, counted when the cleanup deletes them",
            self.succeeded.clone(),
        );
        r.register(
            "jobs_failed",
            "Failed Jobs of QuarksJobs, counted when the QuarksJob's Failed condition is first written",
            self.failed.clone(),
        );
    }
}

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
    fn register(&self, r: &mut Registry) {
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
    /// [`ReconcileMetrics::init_errors`]).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `series` (name with labels, as exposed).
    fn sample(text: &str, series: &str) -> Option<f64> {
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
    fn the_measurer_counts_at_start_and_records_the_duration_on_drop() {
        let m = Metrics::new();
        let measurer = m.reconcile.measure();
        assert_eq!(m.reconcile.runs(), 1);
        let text = m.encode();
        assert_eq!(
            sample(&text, "quarks_job_reconcile_duration_seconds_count"),
            Some(0.0)
        );
        drop(measurer);
        let text = m.encode();
        assert_eq!(
            sample(&text, "quarks_job_reconcile_duration_seconds_count"),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "quarks_job_reconcile_duration_seconds_bucket{le=\"+Inf\"}"
            ),
            Some(1.0)
        );
        assert_eq!(sample(&text, "quarks_job_reconcile_total"), Some(1.0));
    }

    #[test]
    fn failures_are_labelled_by_error_kind() {
        let m = Metrics::new();
        m.reconcile.failed("conflict");
        m.reconcile.failed("conflict");
        m.reconcile.failed("kube");
        assert_eq!(m.reconcile.failures("conflict"), 2);
        assert_eq!(m.reconcile.failures("timeout"), 0);
        let text = m.encode();
        assert_eq!(
            sample(
                &text,
                "quarks_job_reconcile_errors_total{error=\"conflict\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "quarks_job_reconcile_errors_total{error=\"kube\"}"),
            Some(1.0)
        );
    }

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

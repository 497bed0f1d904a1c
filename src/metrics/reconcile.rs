//! Reconcile metrics: reconciles and the Job transitions they act on.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Buckets of the reconcile duration, seconds: a reconcile is a handful of API calls.
pub const RECONCILE_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
];

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
    pub(super) fn register(&self, r: &mut Registry) {
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
    pub(super) fn register(&self, r: &mut Registry) {
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

#[cfg(test)]
mod tests {
    use crate::metrics::{Metrics, tests::sample};

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
}

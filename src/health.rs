//! Health endpoints on a plain-HTTP port, for probes: `/healthz` answers while the process
//! serves; `/readyz` only once every registered readiness check passed (e.g. caches synced, a
//! certificate loaded), and names the ones still pending otherwise, with the reason where one is
//! known (e.g. why a cache cannot be filled). The same port serves the
//! Prometheus metrics at `/metrics` (OpenMetrics text, see [`crate::metrics`]).
//!
//! Layer: feature (on `crate::core` and `crate::runtime`; takes plain settings, see docs/architecture.md).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::{self, Metrics};

/// Named readiness checks, shared between the parts that become ready, the probe handler and
/// whoever waits for the process to be ready (the reconciler starts creating Jobs only once the
/// webhook that mutates their pods is registered and serving).
#[derive(Clone, Debug)]
pub struct Readiness {
    checks: Arc<watch::Sender<BTreeMap<String, Check>>>,
}

/// One readiness check: ready or not, and why not (if known).
#[derive(Clone, Debug, Default)]
struct Check {
    ready: bool,
    why: Option<String>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            checks: Arc::new(watch::Sender::new(BTreeMap::new())),
        }
    }
}

impl Readiness {
    /// Add a check that is not ready yet.
    pub fn register(&self, name: &str) {
        self.checks.send_modify(|checks| {
            checks.entry(name.to_string()).or_default();
        });
    }

    /// Mark a check ready or not ready (registering it if needed).
    pub fn set(&self, name: &str, ready: bool) {
        self.checks.send_modify(|checks| {
            checks.insert(name.to_string(), Check { ready, why: None });
        });
    }

    /// Say why the check `name` is not ready yet (`/readyz` shows it), or clear the reason
    /// (`None`). A check that is ready stays ready.
    pub fn set_reason(&self, name: &str, why: Option<String>) {
        self.checks.send_if_modified(|checks| {
            let check = checks.entry(name.to_string()).or_default();
            if check.ready || check.why == why {
                return false;
            }
            check.why = why;
            true
        });
    }

    /// The checks that are not ready.
    pub fn pending(&self) -> Vec<String> {
        pending(&self.checks.borrow())
    }

    /// The checks that are not ready, each with the reason it is not, if known
    /// (`<name> (<reason>)`).
    pub fn pending_with_reasons(&self) -> Vec<String> {
        self.checks
            .borrow()
            .iter()
            .filter(|(_, check)| !check.ready)
            .map(|(name, check)| match &check.why {
                Some(why) => format!("{name} ({why})"),
                None => name.clone(),
            })
            .collect()
    }

    /// Ready when no check is pending.
    pub fn is_ready(&self) -> bool {
        self.pending().is_empty()
    }

    /// Resolves once no registered check is pending.
    pub async fn wait_ready(&self) {
        let mut checks = self.checks.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = checks.wait_for(|checks| pending(checks).is_empty()).await;
    }
}

fn pending(checks: &BTreeMap<String, Check>) -> Vec<String> {
    checks
        .iter()
        .filter(|(_, check)| !check.ready)
        .map(|(name, _)| name.clone())
        .collect()
}

/// `/healthz`, `/readyz` and `/metrics`.
pub fn router(readiness: Readiness, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(readiness)
        .route(
            "/metrics",
            get(move || async move { ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics.encode()) }),
        )
}

async fn readyz(State(readiness): State<Readiness>) -> (StatusCode, String) {
    let pending = readiness.pending_with_reasons();
    if pending.is_empty() {
        (StatusCode::OK, "ok".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}", pending.join(", ")),
        )
    }
}

/// Serve `app` over plain HTTP until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("Health endpoints on http://{addr}");
    }
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!("Health server failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_path(app: &Router, path: &str) -> (StatusCode, String) {
        let resp = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn readyz_waits_for_every_check() {
        let readiness = Readiness::default();
        readiness.register("certificate");
        readiness.register("pod cache");
        let app = router(readiness.clone(), Metrics::default());
        assert_eq!(
            get_path(&app, "/healthz").await,
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(
            get_path(&app, "/readyz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: certificate, pod cache".into()
            )
        );
        readiness.set("certificate", true);
        assert_eq!(
            get_path(&app, "/readyz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: pod cache".into()
            )
        );
        readiness.set_reason("pod cache", Some("cannot list pods: forbidden".into()));
        assert_eq!(
            get_path(&app, "/readyz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: pod cache (cannot list pods: forbidden)".into()
            )
        );
        readiness.set_reason("pod cache", None);
        assert_eq!(readiness.pending_with_reasons(), ["pod cache"]);
        readiness.set("pod cache", true);
        assert_eq!(
            get_path(&app, "/readyz").await,
            (StatusCode::OK, "ok".into())
        );
        // a reason does not make a ready check pending again
        readiness.set_reason("pod cache", Some("watch failed".into()));
        assert!(readiness.is_ready());
        // registering again does not reset a ready check
        readiness.register("pod cache");
        assert!(readiness.is_ready());
        readiness.set("pod cache", false);
        assert!(!readiness.is_ready());
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_text() {
        let metrics = Metrics::default();
        metrics.jobs.created.inc();
        let app = router(Readiness::default(), metrics);
        let resp = app
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[CONTENT_TYPE],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains("\nquarks_job_jobs_created_total 1\n") && text.ends_with("# EOF\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn wait_ready_resolves_when_the_last_check_passes() {
        let readiness = Readiness::default();
        readiness.register("certificate");
        readiness.register("caches");
        let waiter = tokio::spawn({
            let readiness = readiness.clone();
            async move { readiness.wait_ready().await }
        });
        readiness.set("certificate", true);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "ready with a check still pending");
        readiness.set("caches", true);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("wait_ready resolves")
            .unwrap();
    }
}

//! The admission endpoints. They always answer: a body that is not an AdmissionReview gets a 400
//! with the reason, a review that cannot be read gets an `invalid` review, and everything else
//! an allow (with a patch) or a denial. They never call the apiserver: everything comes from the
//! in-memory caches, so an answer takes microseconds.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use tracing::{debug, info, warn};

use super::caches::Caches;
use super::mutate::{Context, mutate};
use super::validate::validate;
use crate::api::labels::LABEL_QJOB_NAME;
use crate::certs::{MUTATE_PODS_PATH, VALIDATE_QUARKSJOBS_PATH};
use crate::metrics::{AdmissionLabels, AdmissionMetrics};

/// What the pod mutation needs from the operator's settings.
#[derive(Clone, Debug)]
pub struct PodSettings {
    /// The operator image for the output-persist container.
    pub image: String,
    /// Its pull policy.
    pub pull_policy: String,
    /// `--versioned-secret-history`.
    pub versioned_secret_history: u32,
}

#[derive(Clone)]
struct AppState {
    caches: Caches,
    settings: Arc<PodSettings>,
    metrics: AdmissionMetrics,
}

/// The `webhook` label of the pod mutation.
pub const MUTATE_PODS: &str = "mutate-pods";
/// The `webhook` label of the QuarksJob validation.
pub const VALIDATE_QUARKSJOBS: &str = "validate-quarksjobs";

/// The router of the admission endpoints; every answer is counted in `metrics`.
pub fn router(caches: Caches, settings: PodSettings, metrics: AdmissionMetrics) -> axum::Router {
    // the operations the webhooks are registered for (`certs::Registration`)
    metrics.init(MUTATE_PODS, &["CREATE"]);
    metrics.init(VALIDATE_QUARKSJOBS, &["CREATE", "UPDATE"]);
    axum::Router::new()
        .route(MUTATE_PODS_PATH, post(mutate_pods))
        .route(VALIDATE_QUARKSJOBS_PATH, post(validate_quarksjobs))
        .with_state(AppState {
            caches,
            settings: Arc::new(settings),
            metrics,
        })
}

/// Why a request body could not be used.
enum Unreadable {
    /// Not an AdmissionReview at all: 400.
    NotAReview(String),
    /// An AdmissionReview without a usable request: an `invalid` review.
    Invalid(String),
}

impl IntoResponse for Unreadable {
    fn into_response(self) -> Response {
        match self {
            Unreadable::NotAReview(e) => (
                StatusCode::BAD_REQUEST,
                format!("not an AdmissionReview: {e}"),
            )
                .into_response(),
            Unreadable::Invalid(e) => Json(
                AdmissionResponse::invalid(format!("unusable AdmissionReview: {e}")).into_review(),
            )
            .into_response(),
        }
    }
}

fn read_review(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, Unreadable> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| Unreadable::NotAReview(e.to_string()))?;
    review
        .try_into()
        .map_err(|e: kube::core::admission::ConvertAdmissionReviewError| {
            Unreadable::Invalid(e.to_string())
        })
}

/// The `operation` label of a request.
fn operation_label(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// Read the review, `decide`, answer, and count the answer and its latency.
fn admit(
    metrics: &AdmissionMetrics,
    webhook: &'static str,
    body: &[u8],
    decide: impl FnOnce(&AdmissionRequest<DynamicObject>) -> AdmissionResponse,
) -> Response {
    let started = Instant::now();
    let (operation, allowed, response) = match read_review(body) {
        Ok(req) => {
            let resp = decide(&req);
            let allowed = resp.allowed;
            let operation = operation_label(&req.operation);
            (operation, allowed, Json(resp.into_review()).into_response())
        }
        Err(unreadable) => ("unknown", false, unreadable.into_response()),
    };
    let labels = AdmissionLabels { webhook, operation };
    metrics.observe(labels, allowed, started.elapsed());
    response
}

async fn mutate_pods(State(state): State<AppState>, body: Bytes) -> Response {
    admit(&state.metrics, MUTATE_PODS, &body, |req| {
        mutate_request(&state, req)
    })
}

fn mutate_request(state: &AppState, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let resp = AdmissionResponse::from(req);
    let Some(object) = &req.object else {
        return resp;
    };
    let pod: Pod = match serde_json::to_value(object).and_then(serde_json::from_value) {
        Ok(pod) => pod,
        Err(e) => return resp.deny(format!("not a Pod: {e}")),
    };
    let namespace = req.namespace.clone().unwrap_or_default();
    let qjob_name = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_QJOB_NAME))
        .cloned();
    let Some(qjob_name) = qjob_name else {
        return resp;
    };
    let snapshot = state.caches.snapshot(&namespace, &qjob_name);
    let ctx = Context {
        namespace: &namespace,
        qjob: snapshot.qjob.as_deref(),
        output_service_account: snapshot.output_service_account.as_deref(),
        service_account_exists: snapshot.service_account_exists,
        image: &state.settings.image,
        pull_policy: &state.settings.pull_policy,
        versioned_secret_history: state.settings.versioned_secret_history,
        versioned_secrets: &snapshot.versioned_secrets,
    };
    let pod_name = pod
        .metadata
        .name
        .clone()
        .or(pod.metadata.generate_name.clone())
        .unwrap_or_default();
    let object = format!("{namespace}/{qjob_name}");
    match mutate(&pod, &ctx) {
        Ok(patch) => {
            debug!(
                %object,
                "Mutating pod '{namespace}/{pod_name}' of QuarksJob '{object}': {} operations",
                patch.0.len()
            );
            match resp.clone().with_patch(patch) {
                Ok(r) => r,
                Err(e) => resp.deny(format!("cannot serialize the patch: {e}")),
            }
        }
        Err(reason) => {
            warn!(%object, "Denying pod '{namespace}/{pod_name}' of QuarksJob '{object}': {reason}");
            resp.deny(reason)
        }
    }
}

async fn validate_quarksjobs(State(state): State<AppState>, body: Bytes) -> Response {
    admit(&state.metrics, VALIDATE_QUARKSJOBS, &body, validate_request)
}

fn validate_request(req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let mut resp = AdmissionResponse::from(req);
    let Some(object) = &req.object else {
        return resp;
    };
    let value = serde_json::to_value(object).unwrap_or_default();
    let verdict = validate(&value);
    let object = format!(
        "{}/{}",
        req.namespace.as_deref().unwrap_or_default(),
        req.name
    );
    if !verdict.warnings.is_empty() {
        resp.warnings = Some(verdict.warnings);
    }
    if verdict.errors.is_empty() {
        resp
    } else {
        info!(
            %object,
            "Rejecting QuarksJob '{object}': {}",
            verdict.errors.join("; ")
        );
        resp.deny(verdict.errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    fn app(metrics: AdmissionMetrics) -> axum::Router {
        router(
            Caches::unfilled(),
            PodSettings {
                image: "img".into(),
                pull_policy: "Always".into(),
                versioned_secret_history: 0,
            },
            metrics,
        )
    }

    async fn post(path: &str, body: Vec<u8>) -> (StatusCode, Value, String) {
        post_to(&app(AdmissionMetrics::default()), path, body).await
    }

    async fn post_to(app: &axum::Router, path: &str, body: Vec<u8>) -> (StatusCode, Value, String) {
        let req = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
        )
    }

    fn review(kind: &str, resource: &str, namespace: &str, object: Value) -> Vec<u8> {
        let (group, version) = if kind == "Pod" {
            ("", "v1")
        } else {
            ("quarks.cloudfoundry.org", "v1alpha1")
        };
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": group, "version": version, "kind": kind},
                "resource": {"group": group, "version": version, "resource": resource},
                "requestKind": {"group": group, "version": version, "kind": kind},
                "requestResource": {"group": group, "version": version, "resource": resource},
                "name": "x",
                "namespace": namespace,
                "operation": "CREATE",
                "userInfo": {"username": "admin"},
                "object": object,
                "dryRun": false
            }
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_body_that_is_no_review_is_a_400_not_a_panic() {
        for body in [
            b"".to_vec(),
            b"{".to_vec(),
            b"[1,2]".to_vec(),
            vec![0xff, 0xfe],
        ] {
            let (status, _, text) = post(MUTATE_PODS_PATH, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(text.starts_with("not an AdmissionReview"), "{text}");
        }
    }

    #[tokio::test]
    async fn a_review_without_request_gets_an_invalid_review() {
        let body = serde_json::to_vec(
            &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
        )
        .unwrap();
        let (status, value, _) = post(VALIDATE_QUARKSJOBS_PATH, body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(value["response"]["allowed"], false);
        assert!(
            value["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .contains("unusable AdmissionReview")
        );
    }

    #[tokio::test]
    async fn pods_without_the_quarksjob_label_pass_untouched() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let (_, value, _) = post(MUTATE_PODS_PATH, review("Pod", "pods", "ns", pod)).await;
        assert_eq!(
            value["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
        assert_eq!(value["response"]["allowed"], true);
        assert!(value["response"].get("patch").is_none());
    }

    #[tokio::test]
    async fn a_job_pod_in_a_namespace_without_output_account_is_denied_with_the_reason() {
        let pod = json!({"metadata": {"generateName": "j-", "labels": {"quarks.cloudfoundry.org/qjob-name": "q"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let (_, value, _) = post(MUTATE_PODS_PATH, review("Pod", "pods", "staging", pod)).await;
        assert_eq!(value["response"]["allowed"], false);
        let message = value["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("namespace 'staging'") && message.contains("qjob-service-account"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn quarksjobs_are_validated_with_messages_and_warnings() {
        let bad = json!({"apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob", "metadata": {"name": "x"},
            "spec": {"template": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "output-persist", "image": "i"}]}}}}}});
        let (_, value, _) = post(
            VALIDATE_QUARKSJOBS_PATH,
            review("QuarksJob", "quarksjobs", "ns", bad),
        )
        .await;
        assert_eq!(value["response"]["allowed"], false);
        assert!(
            value["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .contains("reserved")
        );

        let misplaced = json!({"apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob", "metadata": {"name": "x"},
            "spec": {"template": {"backoffLimit": 2, "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "i"}]}}}}}});
        let (_, value, _) = post(
            VALIDATE_QUARKSJOBS_PATH,
            review("QuarksJob", "quarksjobs", "ns", misplaced),
        )
        .await;
        assert_eq!(value["response"]["allowed"], true);
        assert!(
            value["response"]["warnings"][0]
                .as_str()
                .unwrap()
                .contains("spec.template.spec.backoffLimit")
        );
    }

    #[tokio::test]
    async fn every_answer_is_counted_by_webhook_and_operation() {
        let metrics = AdmissionMetrics::default();
        let app = app(metrics.clone());
        let labels = |webhook, operation| AdmissionLabels { webhook, operation };
        let plain = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        post_to(&app, MUTATE_PODS_PATH, review("Pod", "pods", "ns", plain)).await;
        let job_pod = json!({"metadata": {"generateName": "j-", "labels": {"quarks.cloudfoundry.org/qjob-name": "q"}},
                             "spec": {"containers": [{"name": "c", "image": "i"}]}});
        post_to(
            &app,
            MUTATE_PODS_PATH,
            review("Pod", "pods", "staging", job_pod),
        )
        .await;
        let create = labels(MUTATE_PODS, "CREATE");
        assert_eq!(metrics.requests(&create), 2);
        assert_eq!(
            metrics.denials(&create),
            1,
            "the job pod without output account"
        );

        post_to(&app, VALIDATE_QUARKSJOBS_PATH, b"{".to_vec()).await;
        let unknown = labels(VALIDATE_QUARKSJOBS, "unknown");
        assert_eq!(metrics.requests(&unknown), 1);
        assert_eq!(metrics.denials(&unknown), 1);
        assert_eq!(metrics.requests(&labels(VALIDATE_QUARKSJOBS, "CREATE")), 0);
    }
}

//! The admission endpoints. They always answer: a body that is not an AdmissionReview gets a 400
//! with the reason, a review that cannot be read gets an `invalid` review, and everything else
//! an allow (with a patch) or a denial. They never call the apiserver: everything comes from the
//! in-memory caches, so an answer takes microseconds.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use super::caches::Caches;
use super::mutate::{MutationContext, mutate};
use super::validate::{validate, validate_update};
use crate::core::api::labels::LABEL_QJOB_NAME;
use crate::core::podrefs::references;
use crate::core::webhooks::Endpoint;
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
    /// `--docker-image-pull-secrets`.
    pub pull_secrets: Vec<String>,
    /// `--output-persist-*`: requests and limits of the output container.
    pub resources: k8s_openapi::api::core::v1::ResourceRequirements,
}

#[derive(Clone)]
struct AppState {
    caches: Caches,
    settings: Arc<PodSettings>,
    metrics: AdmissionMetrics,
}

/// The `webhook` label of the pod mutation.
pub const MUTATE_PODS: &str = Endpoint::MUTATE_PODS.label;
/// The `webhook` label of the QuarksJob validation.
pub const VALIDATE_QUARKSJOBS: &str = Endpoint::VALIDATE_QUARKSJOBS.label;
/// The `webhook` label of the probe.
pub const PROBE: &str = Endpoint::PROBE.label;

/// The router of the admission endpoints; every answer is counted in `metrics`.
pub fn router(caches: Caches, settings: PodSettings, metrics: AdmissionMetrics) -> axum::Router {
    // the operations the webhooks are registered for (`certs::Registration` reads the same)
    for endpoint in Endpoint::ALL {
        metrics.init(endpoint.label, endpoint.operations);
    }
    axum::Router::new()
        .route(Endpoint::MUTATE_PODS.path, post(mutate_pods))
        .route(Endpoint::PROBE.path, post(probe))
        .route(
            Endpoint::VALIDATE_QUARKSJOBS.path,
            post(validate_quarksjobs),
        )
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

/// An AdmissionReview as it is read: kube's `AdmissionReview` flattens its `apiVersion` and
/// `kind`, which makes serde read the whole body into an intermediate tree first and the review
/// from that tree; named fields are read in one pass.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review<T: Resource> {
    api_version: String,
    kind: String,
    request: Option<AdmissionRequest<T>>,
}

fn read_review<T: Resource + DeserializeOwned>(
    body: &[u8],
) -> Result<AdmissionRequest<T>, Unreadable> {
    let review: Review<T> =
        serde_json::from_slice(body).map_err(|e| Unreadable::NotAReview(e.to_string()))?;
    let mut request = review.request.ok_or_else(|| {
        Unreadable::Invalid(kube::core::admission::ConvertAdmissionReviewError.to_string())
    })?;
    request.types = kube::core::TypeMeta {
        api_version: review.api_version,
        kind: review.kind,
    };
    Ok(request)
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
    match read_review(body) {
        Ok(req) => answer(metrics, webhook, &req.operation, decide(&req), started),
        Err(unreadable) => {
            let response = unreadable.into_response();
            let labels = AdmissionLabels {
                webhook,
                operation: "unknown",
            };
            metrics.observe(labels, false, started.elapsed());
            response
        }
    }
}

async fn mutate_pods(State(state): State<AppState>, body: Bytes) -> Response {
    // A review of a Pod is read in one pass, straight into the Pod; only a body that is not one
    // takes the generic way, for the answer that says why (400, `invalid`, or "not a Pod").
    let started = Instant::now();
    let Ok(req) = read_review::<Pod>(&body) else {
        return admit(&state.metrics, MUTATE_PODS, &body, |req| {
            let resp = AdmissionResponse::from(req);
            match &req.object {
                Some(object) => {
                    match serde_json::to_value(object).and_then(serde_json::from_value::<Pod>) {
                        Ok(pod) => mutate_request(&state, req.namespace.as_deref(), &pod, resp),
                        Err(e) => resp.deny(format!("not a Pod: {e}")),
                    }
                }
                None => resp,
            }
        });
    };
    let resp = AdmissionResponse::from(&req);
    let resp = match &req.object {
        Some(pod) => mutate_request(&state, req.namespace.as_deref(), pod, resp),
        None => resp,
    };
    answer(&state.metrics, MUTATE_PODS, &req.operation, resp, started)
}

/// Answer with `resp` and count it.
fn answer(
    metrics: &AdmissionMetrics,
    webhook: &'static str,
    operation: &Operation,
    resp: AdmissionResponse,
    started: Instant,
) -> Response {
    let labels = AdmissionLabels {
        webhook,
        operation: operation_label(operation),
    };
    let allowed = resp.allowed;
    let response = review_response(resp);
    metrics.observe(labels, allowed, started.elapsed());
    response
}

/// `resp` as an AdmissionReview (what `Json` does, in a buffer sized for it at once: the patch
/// goes out in base64, a third larger).
fn review_response(resp: AdmissionResponse) -> Response {
    let patch = resp.patch.as_ref().map_or(0, Vec::len);
    let mut buf = Vec::with_capacity(256 + patch / 3 * 4 + 4);
    match serde_json::to_writer(&mut buf, &resp.into_review()) {
        Ok(()) => {
            let json = header::HeaderValue::from_static("application/json");
            ([(header::CONTENT_TYPE, json)], buf).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the review: {e}"),
        )
            .into_response(),
    }
}

fn mutate_request(
    state: &AppState,
    namespace: Option<&str>,
    pod: &Pod,
    resp: AdmissionResponse,
) -> AdmissionResponse {
    let namespace = namespace.unwrap_or_default();
    let qjob_name = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_QJOB_NAME));
    let Some(qjob_name) = qjob_name else {
        return resp;
    };
    let references = pod.spec.as_ref().map(references).unwrap_or_default();
    let snapshot = state.caches.snapshot(
        namespace,
        qjob_name,
        references.secrets.keys().map(String::as_str),
    );
    let ctx = MutationContext {
        namespace,
        qjob: snapshot.qjob.as_deref(),
        output_service_account: snapshot.output_service_account.as_deref(),
        service_account_exists: snapshot.service_account_exists,
        image: &state.settings.image,
        pull_policy: &state.settings.pull_policy,
        versioned_secret_history: state.settings.versioned_secret_history,
        versioned_secrets: &snapshot.versioned_secrets,
        pull_secrets: &state.settings.pull_secrets,
        resources: &state.settings.resources,
    };
    let pod_name = (pod.metadata.name.as_deref())
        .or(pod.metadata.generate_name.as_deref())
        .unwrap_or_default();
    match mutate(pod, &ctx) {
        Ok(patch) => {
            debug!(
                object = %format_args!("{namespace}/{qjob_name}"),
                "Mutating pod '{namespace}/{pod_name}' of QuarksJob '{namespace}/{qjob_name}': {} operations",
                patch.0.len()
            );
            match resp.clone().with_patch(patch) {
                Ok(r) => r,
                Err(e) => resp.deny(format!("cannot serialize the patch: {e}")),
            }
        }
        Err(reason) => {
            warn!(
                object = %format_args!("{namespace}/{qjob_name}"),
                "Denying pod '{namespace}/{pod_name}' of QuarksJob '{namespace}/{qjob_name}': {reason}"
            );
            resp.deny(reason)
        }
    }
}

async fn probe(State(state): State<AppState>, body: Bytes) -> Response {
    admit(&state.metrics, PROBE, &body, super::probe::answer)
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
    let verdict = match &req.old_object {
        Some(old) => validate_update(&serde_json::to_value(old).unwrap_or_default(), &value),
        None => validate(&value),
    };
    // (a QuarksJob created with `generateName` has no name yet)
    let name = match req.name.as_str() {
        "" => value["metadata"]["generateName"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        name => name.to_string(),
    };
    let object = format!("{}/{name}", req.namespace.as_deref().unwrap_or_default());
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
#[path = "handler_tests.rs"]
mod tests;

//! Unit tests of the admission endpoints: answers to good and bad bodies, and their metrics.
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
            pull_secrets: Vec::new(),
            resources: Default::default(),
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
        let (status, _, text) = post(Endpoint::MUTATE_PODS.path, body).await;
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
    let (status, value, _) = post(Endpoint::VALIDATE_QUARKSJOBS.path, body).await;
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
    let pod =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let (_, value, _) = post(Endpoint::MUTATE_PODS.path, review("Pod", "pods", "ns", pod)).await;
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
    let (_, value, _) = post(
        Endpoint::MUTATE_PODS.path,
        review("Pod", "pods", "staging", pod),
    )
    .await;
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
        Endpoint::VALIDATE_QUARKSJOBS.path,
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
        Endpoint::VALIDATE_QUARKSJOBS.path,
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
    let plain =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    post_to(
        &app,
        Endpoint::MUTATE_PODS.path,
        review("Pod", "pods", "ns", plain),
    )
    .await;
    let job_pod = json!({"metadata": {"generateName": "j-", "labels": {"quarks.cloudfoundry.org/qjob-name": "q"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}]}});
    post_to(
        &app,
        Endpoint::MUTATE_PODS.path,
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

    post_to(&app, Endpoint::VALIDATE_QUARKSJOBS.path, b"{".to_vec()).await;
    let unknown = labels(VALIDATE_QUARKSJOBS, "unknown");
    assert_eq!(metrics.requests(&unknown), 1);
    assert_eq!(metrics.denials(&unknown), 1);
    assert_eq!(metrics.requests(&labels(VALIDATE_QUARKSJOBS, "CREATE")), 0);
}

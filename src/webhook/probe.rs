//! Does the apiserver call this webhook? The operator answers that before it creates any Job:
//! it creates a pod with `dryRun=All` (nothing is stored, nothing runs), labelled so that only
//! the probe webhook of its `MutatingWebhookConfiguration` matches it, and looks for the
//! annotation the probe endpoint adds. An annotated answer proves the apiserver has picked up
//! the configuration that also holds the pod webhook, and that it reaches the webhook through
//! the Service (or URL) with the registered `caBundle`. Until then a Job's pod could be admitted
//! without its output container, or refused; so the reconciler waits for it, for a while.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse};
use serde_json::json;
use tracing::{info, warn};

use crate::core::api::labels::{ANNOTATION_WEBHOOK_PROBE, LABEL_WEBHOOK_PROBE};

/// The probe endpoint's answer: allow, annotated.
pub fn answer(req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let resp = AdmissionResponse::from(req);
    let has_annotations = req
        .object
        .as_ref()
        .is_some_and(|o| o.metadata.annotations.is_some());
    let patch = if has_annotations {
        json!([{"op": "add", "path": format!("/metadata/annotations/{}", escape(ANNOTATION_WEBHOOK_PROBE)), "value": "true"}])
    } else {
        json!([{"op": "add", "path": "/metadata/annotations", "value": {ANNOTATION_WEBHOOK_PROBE: "true"}}])
    };
    match serde_json::from_value(patch).map(|p| resp.clone().with_patch(p)) {
        Ok(Ok(r)) => r,
        _ => resp,
    }
}

/// A JSON pointer segment (`~` → `~0`, `/` → `~1`).
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The dry-run pod: the operator image, restricted security settings (so that policies such as
/// Pod Security admit it), the probe label.
pub fn probe_pod(monitored_id: &str, image: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "generateName": "quarks-job-webhook-probe-",
            "labels": {LABEL_WEBHOOK_PROBE: monitored_id},
        },
        "spec": {
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "probe",
                "image": image,
                "args": ["version"],
                "resources": {"limits": {"cpu": "10m", "memory": "16Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false,
                                    "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        }
    }))
    .expect("a valid pod")
}

/// One dry-run create: whether the probe webhook annotated the pod.
pub async fn answered(
    client: &Client,
    namespace: &str,
    monitored_id: &str,
    image: &str,
) -> Result<bool, kube::Error> {
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let pod = Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&dry_run, &probe_pod(monitored_id, image))
        .await?;
    Ok(pod
        .metadata
        .annotations
        .is_some_and(|a| a.contains_key(ANNOTATION_WEBHOOK_PROBE)))
}

/// Probe every second until the apiserver calls the webhook (true) or `timeout` passed (false,
/// with an error naming what to check).
pub async fn wait_until_called(
    client: &Client,
    namespace: &str,
    monitored_id: &str,
    image: &str,
    timeout: Duration,
) -> bool {
    let started = Instant::now();
    loop {
        let last = match answered(client, namespace, monitored_id, image).await {
            Ok(true) => {
                info!(
                    "The apiserver calls the webhook (probe answered after {:?})",
                    started.elapsed()
                );
                return true;
            }
            Ok(false) => "the probe pod came back unannotated".to_string(),
            Err(e) => format!("the probe pod was refused: {e}"),
        };
        if started.elapsed() >= timeout {
            warn!(
                "The apiserver did not call the webhook within {timeout:?} ({last}); starting \
                 anyway. Job pods will be refused until it does: check that the webhook Service \
                 has ready endpoints and that nothing (e.g. a NetworkPolicy) blocks the apiserver \
                 from reaching it"
            );
            return false;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::admission::AdmissionReview;

    fn review(annotations: serde_json::Value) -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "operation": "CREATE",
                "userInfo": {},
                "namespace": "ops",
                "object": {"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"generateName": "p-", "annotations": annotations},
                           "spec": {"containers": []}}
            }
        }))
        .unwrap();
        review.try_into().unwrap()
    }

    fn patched(req: &AdmissionRequest<DynamicObject>) -> serde_json::Value {
        let resp = answer(req);
        assert!(resp.allowed);
        let mut object = serde_json::to_value(req.object.as_ref().unwrap()).unwrap();
        let patch: json_patch::Patch =
            serde_json::from_slice(resp.patch.as_ref().expect("a patch")).unwrap();
        json_patch::patch(&mut object, &patch).unwrap();
        object
    }

    #[test]
    fn the_probe_annotates_with_or_without_annotations() {
        for before in [serde_json::Value::Null, json!({"other": "x"})] {
            let object = patched(&review(before));
            assert_eq!(
                object["metadata"]["annotations"][ANNOTATION_WEBHOOK_PROBE],
                "true"
            );
        }
    }

    #[test]
    fn the_probe_pod_carries_the_label_the_probe_webhook_selects() {
        let pod = probe_pod("staging", "org/quarks-job:1");
        assert_eq!(pod.metadata.labels.unwrap()[LABEL_WEBHOOK_PROBE], "staging");
        assert_eq!(
            pod.spec.unwrap().containers[0].image.as_deref(),
            Some("org/quarks-job:1")
        );
    }
}

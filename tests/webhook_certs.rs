//! Webhook certificates and registration against the real kube-apiserver: the certificate
//! Secret is created once and shared, replicas racing adopt one CA, the configurations are
//! patched in place, and the apiserver itself calls our TLS server trusting only the
//! registered `caBundle`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use quarks_job::certs::{
    HotSwapResolver, MUTATE_PODS_PATH, Registration, WebhookAddress, ensure, server_config,
    webhook_sans,
};
use quarks_job::core::api::labels::{LABEL_MONITORED, LABEL_QJOB_NAME};
use quarks_job::webhook::{serve_tls, with_limits};
use support::{admin_client, test_namespace, unique};

fn sans() -> Vec<String> {
    webhook_sans("qjob-webhook", "ops", &["127.0.0.1".into()])
}

#[tokio::test]
async fn the_certificate_secret_is_created_once_and_reused() {
    let client = admin_client().await;
    let ns = test_namespace(&client, "certs", &[]).await;
    let first = ensure(client.clone(), &ns, "qjob-webhook-cert", &sans())
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let stored = secrets.get("qjob-webhook-cert").await.unwrap();
    assert_eq!(stored.type_.as_deref(), Some("kubernetes.io/tls"));
    let keys: Vec<_> = stored.data.as_ref().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["ca.crt", "ca.key", "tls.crt", "tls.key"]);

    let second = ensure(client.clone(), &ns, "qjob-webhook-cert", &sans())
        .await
        .unwrap();
    assert_eq!(first, second, "a restart serves the same certificates");
    let after = secrets.get("qjob-webhook-cert").await.unwrap();
    assert_eq!(
        after.resource_version(),
        stored.resource_version(),
        "nothing was rewritten"
    );

    // a new SAN gets a new serving certificate from the same CA
    let mut more = sans();
    more.push("10.1.2.3".into());
    let third = ensure(client.clone(), &ns, "qjob-webhook-cert", &more)
        .await
        .unwrap();
    assert_eq!(third.ca_bundle_pem, first.ca_bundle_pem);
    assert_ne!(third.serving, first.serving);
    assert!(
        quarks_job::certs::inspect(&third.serving.cert_pem)
            .unwrap()
            .sans
            .contains(&"10.1.2.3".to_string())
    );
}

#[tokio::test]
async fn replicas_racing_for_a_new_secret_end_up_with_one_ca() {
    let client = admin_client().await;
    let ns = test_namespace(&client, "certrace", &[]).await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (client, ns) = (client.clone(), ns.clone());
            tokio::spawn(async move { ensure(client, &ns, "shared-cert", &sans()).await.unwrap() })
        })
        .collect();
    let mut bundles = Vec::new();
    for t in tasks {
        bundles.push(t.await.unwrap());
    }
    let stored = Api::<Secret>::namespaced(client.clone(), &ns)
        .get("shared-cert")
        .await
        .unwrap();
    let stored_ca = String::from_utf8(stored.data.unwrap()["ca.crt"].0.clone()).unwrap();
    // one create wins; the others get AlreadyExists, re-read and adopt what it wrote
    for b in &bundles {
        assert_eq!(b.ca_bundle_pem, stored_ca);
        assert_eq!(b, &bundles[0], "every replica serves the same certificate");
    }
    let again = ensure(client.clone(), &ns, "shared-cert", &sans())
        .await
        .unwrap();
    assert_eq!(again, bundles[0]);
}

/// A minimal pod webhook that stamps an annotation, to prove the plumbing.
async fn stamp(
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let req: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
        {"op": "add", "path": "/metadata/annotations", "value": {"quarks.test/stamped": "yes"}}
    ]))
    .unwrap();
    Json(
        AdmissionResponse::from(&req)
            .with_patch(patch)
            .unwrap()
            .into_review(),
    )
}

fn pod(name: &str, qjob: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {LABEL_QJOB_NAME: qjob}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}
    }))
    .unwrap()
}

#[tokio::test]
async fn the_apiserver_calls_the_registered_webhook_and_fails_closed_without_it() {
    quarks_job::install_crypto_provider();
    let client = admin_client().await;
    let id = format!("certs-{}", unique());
    let ns = test_namespace(&client, "hooked", &[(LABEL_MONITORED, id.as_str())]).await;
    let other = test_namespace(&client, "unhooked", &[]).await;
    let bundle = ensure(client.clone(), &ns, "qjob-webhook-cert", &sans())
        .await
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let resolver = HotSwapResolver::new(&bundle.serving.cert_pem, &bundle.serving.key_pem).unwrap();
    let tls = Arc::new(server_config(resolver).unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = with_limits(axum::Router::new().route(MUTATE_PODS_PATH, post(stamp)));
    let server = tokio::spawn(serve_tls(listener, tls, app, async {
        let _ = stopped.await;
    }));

    let registration = Registration {
        name: format!("quarks-job-{id}"),
        monitored_id: id.clone(),
        operator_namespace: "quarks-operator".into(),
        address: WebhookAddress::Url {
            host: "127.0.0.1".into(),
            port,
        },
    };
    // first registered with a wrong caBundle, then patched in place with the right one
    let wrong = quarks_job::certs::Authority::generate(
        "wrong",
        std::time::SystemTime::now(),
        Duration::from_secs(3600),
    )
    .unwrap();
    registration
        .apply(client.clone(), wrong.cert_pem.as_bytes())
        .await
        .unwrap();
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let uid = configs.get(&registration.name).await.unwrap().uid();
    registration
        .apply(client.clone(), bundle.ca_bundle_pem.as_bytes())
        .await
        .unwrap();
    assert_eq!(
        configs.get(&registration.name).await.unwrap().uid(),
        uid,
        "patched, not re-created"
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let created = pods
        .create(&PostParams::default(), &pod("job-pod", "myjob"))
        .await
        .unwrap();
    assert_eq!(
        created
            .annotations()
            .get("quarks.test/stamped")
            .map(String::as_str),
        Some("yes")
    );

    // pods without the QuarksJob label, and namespaces of other ids, are not sent
    let plain = pods.create(&PostParams::default(), &serde_json::from_value(serde_json::json!({
        "metadata": {"name": "plain"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    })).unwrap()).await.unwrap();
    assert!(plain.annotations().get("quarks.test/stamped").is_none());
    let elsewhere = Api::<Pod>::namespaced(client.clone(), &other)
        .create(&PostParams::default(), &pod("p", "myjob"))
        .await
        .unwrap();
    assert!(elsewhere.annotations().get("quarks.test/stamped").is_none());

    // with the webhook down, job pods are refused (failurePolicy Fail) with a message naming it
    stop.send(()).unwrap();
    server.await.unwrap();
    let err = pods
        .create(&PostParams::default(), &pod("job-pod-2", "myjob"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("mutate-pods.quarks.cloudfoundry.org"), "{msg}");
    assert!(pods.get_opt("job-pod-2").await.unwrap().is_none());

    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .delete(&registration.name, &DeleteParams::default())
        .await
        .unwrap();
    Api::<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration>::all(
        client.clone(),
    )
    .delete(&registration.name, &DeleteParams::default())
    .await
    .unwrap();
}

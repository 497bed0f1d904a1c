//! The bare admission responder the webhook is compared with: axum over rustls (same crates,
//! same TLS versions and certificate kind), on a runtime of its own with as many threads as the
//! operator's, that parses the AdmissionReview and allows it without a patch.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use quarks_job::certs::Authority;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tower::Service;

/// The running responder.
pub struct Bare {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The CA its certificate is signed by (PEM).
    pub ca: String,
}

async fn review(Json(review): Json<AdmissionReview<DynamicObject>>) -> Json<serde_json::Value> {
    let request: AdmissionRequest<DynamicObject> = review.try_into().expect("a request");
    let response = AdmissionResponse::from(&request);
    Json(serde_json::to_value(response.into_review()).expect("review"))
}

/// Start the responder on a thread and runtime of its own (for the rest of the process).
pub fn start() -> Bare {
    let now = SystemTime::now();
    let year = Duration::from_secs(365 * 24 * 3600);
    let ca = Authority::generate("bench-bare", now, year).expect("CA");
    let serving = ca
        .issue_serving(&["127.0.0.1".to_string()], now, year)
        .expect("serving certificate");
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(serving.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("certificate");
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes()).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("TLS configuration");
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let app = axum::Router::new().route("/mutate-pods", post(review));
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| app.clone().call(req));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
    });
    Bare {
        port,
        ca: ca.cert_pem,
    }
}

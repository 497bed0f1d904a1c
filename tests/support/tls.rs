//! The webhook's TLS server in-process, with a router of test endpoints and a CA of its own, and
//! TLS clients that trust only that CA. No control plane needed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use quarks_job::certs::{Authority, CA_LIFETIME, HotSwapResolver, SERVING_LIFETIME, server_config};
use quarks_job::webhook::{ConnectionLimits, serve_tls_with, with_limits};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub ca: Authority,
    pub resolver: Arc<HotSwapResolver>,
    pub stop: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<()>,
}

/// Serve, with the webhook's request limits and `limits` for connections: `GET /hello` ("hi"),
/// `POST /echo` (the body's length), `GET /slow` (500 ms, then "done").
pub async fn start_with(limits: ConnectionLimits) -> Server {
    quarks_job::install_crypto_provider();
    let ca = Authority::generate("test-ca", SystemTime::now(), CA_LIFETIME).unwrap();
    let serving = ca
        .issue_serving(&["127.0.0.1".into()], SystemTime::now(), SERVING_LIFETIME)
        .unwrap();
    let resolver = HotSwapResolver::new(&serving.cert_pem, &serving.key_pem).unwrap();
    let tls = Arc::new(server_config(resolver.clone()).unwrap());
    let app = with_limits(
        Router::new()
            .route("/hello", get(|| async { "hi" }))
            .route(
                "/echo",
                post(|body: Bytes| async move { body.len().to_string() }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    "done"
                }),
            ),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(serve_tls_with(listener, tls, app, limits, async {
        let _ = rx.await;
    }));
    Server {
        addr,
        ca,
        resolver,
        stop: Some(tx),
        done,
    }
}

/// A TLS client trusting only `trusted`, offering `alpn`.
pub fn connector(trusted: &Authority, alpn: &[u8]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(trusted.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    // Full handshakes only: a resumed session does not resend the server certificate.
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// A TLS connection to `addr` (certificate for 127.0.0.1).
pub async fn connect(addr: SocketAddr, connector: &TlsConnector) -> std::io::Result<TlsStream> {
    let tcp = TcpStream::connect(addr).await?;
    // as the apiserver's (Go's) client does
    tcp.set_nodelay(true)?;
    connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
}

/// An HTTP/2 connection (ALPN `h2`) to `server`: the request sender, and the task driving the
/// connection, which ends when the connection does.
pub async fn h2<B>(
    server: &Server,
) -> (
    hyper::client::conn::http2::SendRequest<B>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
)
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tls = connect(server.addr, &connector(&server.ca, b"h2"))
        .await
        .expect("TLS");
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("HTTP/2 handshake");
    (sender, tokio::spawn(conn))
}

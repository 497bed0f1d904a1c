//! The webhook's TLS serving with real HTTPS clients that trust only the generated CA:
//! HTTP/1.1 and HTTP/2, certificate rotation while clients keep sending requests, and graceful
//! shutdown. No control plane needed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use quarks_job::certs::{Authority, CA_LIFETIME, HotSwapResolver, SERVING_LIFETIME, server_config};
use quarks_job::webhook::{serve_tls, with_limits};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

struct Server {
    addr: SocketAddr,
    ca: Authority,
    resolver: Arc<HotSwapResolver>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

async fn start() -> Server {
    quarks_job::install_crypto_provider();
    let ca = Authority::generate("test-ca", SystemTime::now(), CA_LIFETIME).unwrap();
    let serving = ca
        .issue_serving(&["127.0.0.1".into()], SystemTime::now(), SERVING_LIFETIME)
        .unwrap();
    let resolver = HotSwapResolver::new(&serving.cert_pem, &serving.key_pem).unwrap();
    let tls = Arc::new(server_config(resolver.clone()).unwrap());
    let app = with_limits(Router::new().route("/hello", get(|| async { "hi" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            "done"
        }),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(serve_tls(listener, tls, app, async {
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

fn connector(trusted: &Authority, alpn: &[u8]) -> TlsConnector {
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

type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

async fn connect(addr: SocketAddr, connector: &TlsConnector) -> std::io::Result<TlsStream> {
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
}

/// One request on a fresh HTTP/1.1 connection; returns the body and the leaf certificate seen.
async fn get_once(
    addr: SocketAddr,
    connector: &TlsConnector,
    path: &str,
) -> Result<(String, Vec<u8>), String> {
    let tls = connect(addr, connector).await.map_err(|e| e.to_string())?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    if resp.status() != 200 {
        return Err(format!("status {}", resp.status()));
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((String::from_utf8_lossy(&body).into_owned(), leaf))
}

#[tokio::test]
async fn a_client_trusting_only_the_ca_gets_answers_others_are_refused() {
    let server = start().await;
    let (body, leaf) = get_once(server.addr, &connector(&server.ca, b"http/1.1"), "/hello")
        .await
        .unwrap();
    assert_eq!(body, "hi");
    assert_eq!(leaf, server.resolver.current_leaf().to_vec());

    let stranger = Authority::generate("someone-else", SystemTime::now(), CA_LIFETIME).unwrap();
    let err = get_once(server.addr, &connector(&stranger, b"http/1.1"), "/hello")
        .await
        .unwrap_err();
    assert!(err.contains("certificate"), "{err}");
}

#[tokio::test]
async fn http2_is_served() {
    let server = start().await;
    let tls = connect(server.addr, &connector(&server.ca, b"h2"))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    for _ in 0..3 {
        let req = hyper::Request::get("https://127.0.0.1/hello")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "hi");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_while_clients_keep_sending_loses_no_request() {
    let server = start().await;
    let connector = connector(&server.ca, b"http/1.1");
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let leaves = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    const CLIENTS: usize = 4;
    const REQUESTS: usize = 60;

    // a long-lived HTTP/2 connection that spans every rotation
    let tls = connect(server.addr, &connector_h2(&server.ca))
        .await
        .unwrap();
    let (h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);

    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (connector, ok, failures, leaves) = (
            connector.clone(),
            ok.clone(),
            failures.clone(),
            leaves.clone(),
        );
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            for _ in 0..REQUESTS {
                match get_once(addr, &connector, "/hello").await {
                    Ok((body, leaf)) if body == "hi" => {
                        ok.fetch_add(1, Ordering::SeqCst);
                        leaves.lock().unwrap().insert(leaf);
                    }
                    other => failures.lock().unwrap().push(format!("{other:?}")),
                }
            }
        }));
    }
    let mut h2_ok = 0;
    for round in 0..5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let next = server
            .ca
            .issue_serving(&["127.0.0.1".into()], SystemTime::now(), SERVING_LIFETIME)
            .unwrap();
        server.resolver.swap(&next.cert_pem, &next.key_pem).unwrap();
        let mut sender = h2.clone();
        let req = hyper::Request::get("https://127.0.0.1/hello")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender
            .send_request(req)
            .await
            .unwrap_or_else(|e| panic!("h2 request after rotation {round}: {e}"));
        assert_eq!(resp.status(), 200);
        h2_ok += 1;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(failures.lock().unwrap().as_slice(), &[] as &[String]);
    assert_eq!(ok.load(Ordering::SeqCst), CLIENTS * REQUESTS);
    assert_eq!(h2_ok, 5);
    // the clients saw more than one certificate, and new connections now get the newest
    assert!(
        leaves.lock().unwrap().len() > 1,
        "rotation happened while clients were connecting"
    );
    let (_, leaf) = get_once(server.addr, &connector, "/hello").await.unwrap();
    assert_eq!(leaf, server.resolver.current_leaf().to_vec());
}

fn connector_h2(ca: &Authority) -> TlsConnector {
    connector(ca, b"h2")
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_then_stops_listening() {
    let mut server = start().await;
    let connector = connector(&server.ca, b"http/1.1");
    let addr = server.addr;
    let slow = tokio::spawn({
        let connector = connector.clone();
        async move { get_once(addr, &connector, "/slow").await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await; // the slow request is being served
    server.stop.take().unwrap().send(()).unwrap();
    let (body, _) = slow
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(body, "done");
    tokio::time::timeout(Duration::from_secs(15), server.done)
        .await
        .expect("server stops")
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

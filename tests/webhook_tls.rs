//! The webhook's TLS serving with real HTTPS clients that trust only the generated CA:
//! HTTP/1.1 and HTTP/2, certificate rotation while clients keep sending requests, and graceful
//! shutdown. No control plane needed.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use quarks_job::certs::{Authority, CA_LIFETIME, SERVING_LIFETIME};
use quarks_job::webhook::ConnectionLimits;
use support::tls::{Server, connect, connector, h2, start_with};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

async fn start() -> Server {
    start_with(ConnectionLimits::default()).await
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
    let (sender, _) = h2(&server).await;

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
        let mut sender = sender.clone();
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

/// A body of `len` bytes in 64 KiB chunks, without a length up front.
fn streamed(len: usize) -> impl hyper::body::Body<Data = Bytes, Error = std::convert::Infallible> {
    let chunks: Vec<_> = (0..len.div_ceil(65536))
        .map(|i| {
            Ok(hyper::body::Frame::data(Bytes::from(vec![
                b' ';
                65536.min(
                    len - i * 65536
                )
            ])))
        })
        .collect();
    http_body_util::StreamBody::new(futures::stream::iter(chunks))
}

/// A body over the limit is answered 413 over HTTP/2 as over HTTP/1.1, not with a reset stream:
/// with its length declared or not.
#[tokio::test]
async fn an_oversized_body_gets_413_over_http2_and_http1() {
    let server = start().await;
    // well over the limit: the client is still sending when the server has seen enough
    let len = quarks_job::webhook::BODY_LIMIT + 4 * 1024 * 1024;
    // HTTP/2
    let (sender, _) = h2(&server).await;
    for declared in [true, false] {
        let req = hyper::Request::post("https://127.0.0.1/echo")
            .header("content-type", "application/json");
        let req = if declared {
            req.header("content-length", len)
        } else {
            req
        };
        let resp = sender
            .clone()
            .send_request(req.body(streamed(len)).unwrap())
            .await
            .unwrap_or_else(|e| panic!("length declared: {declared}: no answer: {e:?}"));
        assert_eq!(resp.status(), 413, "length declared: {declared}");
        let body = resp.into_body().collect().await;
        assert!(body.is_ok(), "length declared: {declared}: {body:?}");
    }
    let body = vec![b' '; len];
    // HTTP/1.1
    let tls = connect(server.addr, &connector(&server.ca, b"http/1.1"))
        .await
        .unwrap();
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post("/echo")
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap();
    let resp = h1.send_request(req).await.expect("an answer");
    assert_eq!(resp.status(), 413);
}

/// Clients that still upload when the answer comes (curl) treat a reset stream as a failure,
/// even after a complete 413: the rest of an oversized HTTP/2 body is read (and dropped) after
/// the answer, so the upload ends normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_http2_upload_ends_normally_after_the_413() {
    let server = start().await;
    let tls = connect(server.addr, &connector_h2(&server.ca))
        .await
        .unwrap();
    let (client, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let len = quarks_job::webhook::BODY_LIMIT + 4 * 1024 * 1024;
    let request = http::Request::post("https://127.0.0.1/echo")
        .header("content-length", len)
        .body(())
        .unwrap();
    let (response, mut upload) = client.send_request(request, false).unwrap();
    let sender = tokio::spawn(async move {
        let mut sent = 0;
        while sent < len {
            upload.reserve_capacity((len - sent).min(65536));
            let granted = std::future::poll_fn(|cx| upload.poll_capacity(cx))
                .await
                .ok_or(format!("the stream ended after {sent} bytes"))?
                .map_err(|e| format!("after {sent} bytes: {e}"))?;
            upload
                .send_data(Bytes::from(vec![b' '; granted]), sent + granted == len)
                .map_err(|e| format!("after {sent} bytes: {e}"))?;
            sent += granted;
        }
        Ok::<_, String>(())
    });
    let response = response.await.expect("an answer");
    assert_eq!(response.status(), 413);
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("the answer's body");
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    sender
        .await
        .unwrap()
        .expect("the whole body sent, the stream not reset");
}

//! The webhook's defences against slow, idle and too many clients (`webhook::ConnectionLimits`),
//! with short limits so that each is seen to act: a client that never finishes its TLS
//! handshake, never finishes its request headers, or keeps an HTTP/2 connection without
//! requests is disconnected; connections beyond the cap are closed at once, and served again
//! once one ends. No control plane needed; the production values are in docs/webhook.md, and
//! `tests/webhook_hardening.rs` holds 1,000 slow connections against the operator binary.

mod support;

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use quarks_job::webhook::ConnectionLimits;
use support::WAIT;
use support::tls::{Server, connect, connector, h2, start_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn short() -> ConnectionLimits {
    ConnectionLimits {
        handshake_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        max_connections: 8,
    }
}

/// Read until the server closes the connection (or resets it); panics if it does not within WAIT.
async fn closed_by_the_server(stream: &mut (impl AsyncReadExt + Unpin), what: &str) {
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "{what}: still open after {WAIT:?}");
}

async fn hello(server: &Server) -> Result<String, String> {
    let tls = connect(server.addr, &connector(&server.ca, b"http/1.1"))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::get("/hello")
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
}

#[tokio::test]
async fn slow_and_idle_clients_are_disconnected() {
    let server = start_with(short()).await;
    // connected, but no TLS handshake
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // TLS, then HTTP/1.1 headers that never end
    let mut partial = connect(server.addr, &connector(&server.ca, b"http/1.1"))
        .await
        .unwrap();
    partial
        .write_all(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
        .await
        .unwrap();
    partial.flush().await.unwrap();
    // TLS and HTTP/2, then no request at all
    let (_sender, idle) = h2::<Empty<Bytes>>(&server).await;

    closed_by_the_server(&mut silent, "a connection without TLS handshake").await;
    closed_by_the_server(&mut partial, "unfinished request headers").await;
    let ended = tokio::time::timeout(WAIT, idle).await;
    assert!(
        ended.is_ok(),
        "an idle HTTP/2 connection: still open after {WAIT:?}"
    );
    // and the server still answers
    assert_eq!(hello(&server).await.unwrap(), "hi");
}

#[tokio::test]
async fn a_keep_alive_connection_with_a_request_in_flight_is_not_idle() {
    let server = start_with(short()).await;
    let (sender, _) = h2(&server).await;
    // requests one after another, each shorter than the idle timeout, for longer than it
    for _ in 0..6 {
        let req = hyper::Request::get("https://127.0.0.1/slow")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender
            .clone()
            .send_request(req)
            .await
            .expect("the same connection serves");
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "done");
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once_and_served_once_one_ends() {
    let server = start_with(ConnectionLimits {
        idle_timeout: Duration::from_secs(600),
        header_read_timeout: Duration::from_secs(600),
        ..short()
    })
    .await;
    let limit = short().max_connections;
    let mut open = Vec::new();
    for _ in 0..limit {
        open.push(
            connect(server.addr, &connector(&server.ca, b"http/1.1"))
                .await
                .expect("a connection under the cap"),
        );
    }
    // the next one is closed by the server at once: its handshake fails, it does not hang
    let beyond = tokio::time::timeout(
        WAIT,
        connect(server.addr, &connector(&server.ca, b"http/1.1")),
    )
    .await
    .expect("an answer, not a hang");
    assert!(beyond.is_err(), "a connection beyond the cap was served");
    // one ends: a new one is served
    drop(open.pop());
    let served = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(body) = hello(&server).await {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("served again once a connection ended");
    assert_eq!(served, "hi");
}

//! Serving an axum router over TLS (tokio-rustls, ring) with HTTP/1.1 and HTTP/2, defended
//! against slow and idle clients ([`ConnectionLimits`]): a connection cap (connections beyond
//! it are closed at once), a TLS handshake timeout, an HTTP/1.1 header-read timeout (which is
//! also the keep-alive idle timeout), an idle timeout for connections with no request in flight
//! (HTTP/2, or a client that never sends a protocol), small per-connection buffers, and graceful
//! shutdown: on shutdown the listener closes, in-flight requests finish (bounded by
//! [`DRAIN_TIMEOUT`]), then the function returns. Request bodies are limited by
//! [`super::limits`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, info, warn};

/// A TLS handshake must finish within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An HTTP/1.1 request's headers must arrive within this time, counted from when the connection
/// waits for them (so a keep-alive connection idle this long is closed).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection without a request in flight for this long is closed (HTTP/2 connections, and
/// clients that never send a request).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Open connections at most; beyond, new ones are closed at once. The apiserver needs a handful.
pub const MAX_CONNECTIONS: usize = 2048;
/// On shutdown, open connections get this long to finish their requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// What one connection may make the server buffer before a handler reads it: the HTTP/2
/// flow-control windows (the protocol's default), the HTTP/2 header list and the HTTP/1.1 read
/// buffer, which holds the request headers (the apiserver's are far smaller).
const H2_WINDOW: u32 = 64 * 1024;
const H2_HEADER_LIST: u32 = 16 * 1024;
const H1_READ_BUFFER: usize = 16 * 1024;

/// The per-connection limits of [`serve_tls_with`].
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// [`HANDSHAKE_TIMEOUT`]
    pub handshake_timeout: Duration,
    /// [`HEADER_READ_TIMEOUT`]
    pub header_read_timeout: Duration,
    /// [`IDLE_TIMEOUT`]
    pub idle_timeout: Duration,
    /// [`MAX_CONNECTIONS`]
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Serve `app` on `listener` with TLS and the default [`ConnectionLimits`] until `shutdown`
/// resolves.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    serve_tls_with(listener, tls, app, ConnectionLimits::default(), shutdown).await
}

/// Serve `app` on `listener` with TLS and `limits` until `shutdown` resolves.
pub async fn serve_tls_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let at_cap = AtomicBool::new(false);
    let addr = listener.local_addr().ok();
    info!(
        "Webhook server listening on https://{}",
        addr.map(|a| a.to_string()).unwrap_or_default()
    );
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // e.g. too many open files: back off instead of spinning
                    warn!("Webhook server cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // refused at once: a client that retries (the apiserver does) gets a slot as soon as
            // one frees up, instead of waiting in the backlog for nothing
            if !at_cap.swap(true, Ordering::Relaxed) {
                warn!(
                    "Webhook server: {} connections open, closing new ones until some end",
                    limits.max_connections
                );
            }
            drop(tcp);
            continue;
        };
        if at_cap.swap(false, Ordering::Relaxed) {
            info!("Webhook server: accepting connections again");
        }
        let (acceptor, app, stopping) = (acceptor.clone(), app.clone(), stopping.clone());
        tokio::spawn(async move {
            serve_connection(tcp, peer, acceptor, app, limits, stopping).await;
            drop(slot);
        });
    }
    drop(listener);
    info!("Webhook server draining connections");
    let _ = stop.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all))
        .await
        .is_err()
    {
        warn!("Webhook server: connections still open after {DRAIN_TIMEOUT:?}, closing them");
    }
}

/// One connection: TLS handshake, then HTTP/1.1 or HTTP/2 as negotiated, closed when idle or
/// when the server stops (after its requests are answered).
async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
) {
    // small frames (HTTP/2 window updates, short answers) go out at once, not after a delayed
    // ACK from the peer
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return debug!("TLS handshake with {peer} failed: {e}"),
        Err(_) => return debug!("TLS handshake with {peer} timed out"),
    };
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(H1_READ_BUFFER);
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(H2_WINDOW)
        .initial_connection_window_size(H2_WINDOW)
        .max_header_list_size(H2_HEADER_LIST);
    // the protocol the client chose with ALPN, without waiting for it to say so again
    let builder = match alpn.as_deref() {
        Some(b"h2") => builder.http2_only(),
        Some(b"http/1.1") => builder.http1_only(),
        _ => builder,
    };
    let activity = Activity::new();
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = activity.begin();
            let answer = app.clone().oneshot(req.map(axum::body::Body::new));
            async move {
                let response = answer.await;
                drop(busy);
                response
            }
        })
    };
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            finished = conn.as_mut() => {
                if let Err(e) = finished {
                    debug!("Webhook connection from {peer} ended: {e}");
                }
                return;
            }
            _ = stopping.wait_for(|stop| *stop), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(activity.idle_since() + limits.idle_timeout), if !closing => {
                if activity.idle_for(limits.idle_timeout) {
                    debug!("Webhook connection from {peer} idle for {:?}, closing it", limits.idle_timeout);
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Requests in flight on one connection, and since when it has had none.
#[derive(Clone)]
struct Activity(Arc<Mutex<(usize, Instant)>>);

/// A request in flight; ends when dropped.
struct Busy(Activity);

impl Activity {
    fn new() -> Activity {
        Activity(Arc::new(Mutex::new((0, Instant::now()))))
    }

    fn begin(&self) -> Busy {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0 += 1;
        Busy(self.clone())
    }

    /// When the connection last had no request in flight (now, while one is).
    fn idle_since(&self) -> Instant {
        let (in_flight, since) = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        if in_flight > 0 { Instant::now() } else { since }
    }

    fn idle_for(&self, timeout: Duration) -> bool {
        let (in_flight, since) = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        in_flight == 0 && since.elapsed() >= timeout
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        state.0 -= 1;
        state.1 = Instant::now();
    }
}

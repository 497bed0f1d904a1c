//! Serving an axum router over TLS (tokio-rustls, ring) with HTTP/1.1 and HTTP/2, a handshake
//! timeout, and graceful shutdown: on shutdown the listener closes, in-flight requests finish
//! (bounded by [`DRAIN_TIMEOUT`]), then the function returns.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower_http::timeout::TimeoutLayer;
use tracing::{debug, info, warn};

/// A TLS handshake must finish within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// On shutdown, open connections get this long to finish their requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// An admission request must be answered within this time (the apiserver waits at most 30 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body accepted: the apiserver's own limit for an object is 3 MiB, and an
/// AdmissionReview carries the object (and the old object on updates).
pub const BODY_LIMIT: usize = 7 * 1024 * 1024;

/// The router with the limits every endpoint of the webhook shares.
pub fn with_limits(router: Router) -> Router {
    router
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
}

/// Serve `app` on `listener` with TLS until `shutdown` resolves.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
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
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return debug!("TLS handshake with {peer} failed: {e}"),
                Err(_) => return debug!("TLS handshake with {peer} timed out"),
            };
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn).await {
                debug!("Webhook connection from {peer} ended: {e}");
            }
        });
    }
    drop(listener);
    info!("Webhook server draining connections");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("Webhook server: connections still open after {DRAIN_TIMEOUT:?}, closing them");
    }
}

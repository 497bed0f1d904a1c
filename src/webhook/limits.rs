//! The limits every admission endpoint shares, applied before a handler sees a request
//! ([`with_limits`]):
//!
//! * a body over [`BODY_LIMIT`] gets a 413 over HTTP/2 as over HTTP/1.1, never a reset stream:
//!   over HTTP/1.1 at once, over HTTP/2 once the rest of the body has been read and dropped
//!   (within bounds, see [`too_large`]);
//! * at most [`BODY_BUDGET`] bytes of bodies are read and handled at once; requests beyond it wait
//!   for their turn (within [`REQUEST_TIMEOUT`]);
//! * a body holding more than [`JSON_VALUE_LIMIT`] JSON values gets a 413 before it is parsed:
//!   parsing one into `serde_json::Value` costs up to ~50 bytes per value, so a 7 MiB body of
//!   `0,0,0,…` would take hundreds of MiB;
//! * every request is answered within [`REQUEST_TIMEOUT`] (408 otherwise).
//!
//! Together they bound the memory admission requests can take, whatever clients send
//! (`tests/webhook_hardening.rs` measures it).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tower_http::timeout::TimeoutLayer;

/// An admission request must be answered within this time (the apiserver waits at most 30 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body accepted: the apiserver's own limit for an object is 3 MiB, and an
/// AdmissionReview carries the object (and the old object on updates).
pub const BODY_LIMIT: usize = 7 * 1024 * 1024;
/// Bytes of request bodies read and handled at once: two of the largest, or thousands of the
/// usual few-KiB reviews.
pub const BODY_BUDGET: usize = 2 * BODY_LIMIT;
/// JSON values (objects, arrays, strings, numbers, …) one request body may hold: a pod with a
/// thousand environment variables has a few thousand.
pub const JSON_VALUE_LIMIT: usize = 100_000;

/// The router with the limits every endpoint of the webhook shares.
pub fn with_limits(router: Router) -> Router {
    with_budget(router, BODY_BUDGET)
}

/// [`with_limits`] with a budget of `budget` bytes.
fn with_budget(router: Router, budget: usize) -> Router {
    let budget = Arc::new(Budget {
        permits: Semaphore::new(budget),
        total: budget,
    });
    router
        // (bodies reach the handlers already read and within the limit; this stays as a net)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(budget, read_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
}

/// Bytes of bodies that may be read and handled at once.
struct Budget {
    permits: Semaphore,
    total: usize,
}

/// Read the body within the limits, then hand the request on with the body in memory.
async fn read_body(State(budget): State<Arc<Budget>>, req: Request, next: Next) -> Response {
    let declared = req.body().size_hint().exact();
    let (parts, body) = req.into_parts();
    let drain = parts.version == axum::http::Version::HTTP_2;
    if let Some(n) = declared.filter(|n| *n > BODY_LIMIT as u64) {
        let drain = drain && n <= DRAIN_LIMIT as u64;
        return too_large(body.into_data_stream(), drain).await;
    }
    // the declared length, or the most a body may be (never more than the whole budget)
    let cost = declared
        .map_or(BODY_LIMIT, |n| n as usize)
        .min(budget.total);
    let Ok(_turn) = budget.permits.acquire_many(cost as u32).await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    };
    let mut stream = body.into_data_stream();
    // a body that comes in one chunk (the usual review) is handed on as it is, without a copy
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut len = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                )
                    .into_response();
            }
        };
        len += chunk.len();
        if len > BODY_LIMIT {
            return too_large(stream, drain).await;
        }
        match first.take() {
            None if joined.is_empty() => first = Some(chunk),
            earlier => {
                if joined.is_empty() {
                    joined.reserve(cost.min(64 * 1024).max(len));
                }
                joined.extend_from_slice(earlier.as_deref().unwrap_or_default());
                joined.extend_from_slice(&chunk);
            }
        }
    }
    let bytes = first.unwrap_or_else(|| Bytes::from(joined));
    if let Err(TooMany) = json_values_within(&bytes, JSON_VALUE_LIMIT) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body holds more than {JSON_VALUE_LIMIT} JSON values"),
        )
            .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The most of an oversized HTTP/2 request body read (and dropped) before its 413, and for how
/// long at most.
const DRAIN_LIMIT: usize = 4 * BODY_LIMIT;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A 413. Over HTTP/2 (`drain`) the rest of the body (`rest`) is first read and dropped, up to
/// [`DRAIN_LIMIT`] bytes within [`DRAIN_TIMEOUT`]: clients that are still uploading when an
/// error comes stop and treat the stream as failed (curl), or a reset stream as a failure. What
/// is left unread is kept until the answer has been sent: dropping it earlier makes HTTP/2 reset
/// the stream (`CANCEL`) before the response, and clients see no answer; dropped with the
/// response body, it ends the stream with `NO_ERROR` after it. Over HTTP/1.1 nothing is read (a
/// client waiting for `100 Continue` sends nothing), and the connection closes after the answer.
async fn too_large(mut rest: axum::body::BodyDataStream, drain: bool) -> Response {
    if drain {
        let mut read = 0usize;
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while let Some(Ok(chunk)) = rest.next().await {
                read += chunk.len();
                if read > DRAIN_LIMIT {
                    break;
                }
            }
        })
        .await;
    }
    let message = futures::stream::iter([Ok::<_, std::convert::Infallible>(Bytes::from(format!(
        "request body over the limit of {BODY_LIMIT} bytes"
    )))])
    .map(move |chunk| {
        let _ = &rest;
        chunk
    });
    let mut response = Response::new(Body::from_stream(message));
    *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The body holds more JSON values than allowed.
#[derive(Debug)]
pub struct TooMany;

/// Count the JSON values of `body` without parsing it: `Err(TooMany)` past `limit`. A body
/// that is not JSON passes (its handler says what is wrong with it).
///
/// One scan of the bytes, no parser: every value but the first follows a `[`, `{`, `,` or `:`
/// outside a string (`[` and `{` of an empty container count nothing), so the count is exact
/// for JSON and, for a body that is not, never below what a parser builds before it fails
/// (it stops at the first error, and up to there it reads the same structure).
pub fn json_values_within(body: &[u8], limit: usize) -> Result<usize, TooMany> {
    // the top value
    let mut count = 1usize;
    let (mut in_string, mut escaped, mut opened) = (false, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b' ' | b'\n' | b'\r' | b'\t' => continue,
            b'[' | b'{' | b',' | b':' => count += 1,
            // `[]`, `{}`: the value counted at `[` or `{` is not there
            b']' | b'}' if opened => count -= 1,
            b'"' => in_string = true,
            _ => {}
        }
        opened = matches!(b, b'[' | b'{');
        // (the value counted at a `[` or `{` only once it is seen not to be empty)
        if count - usize::from(opened) > limit {
            return Err(TooMany);
        }
    }
    Ok(count)
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;

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
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
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
    let mut bytes = Vec::with_capacity(cost.min(64 * 1024));
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
        if bytes.len() + chunk.len() > BODY_LIMIT {
            return too_large(stream, drain).await;
        }
        bytes.extend_from_slice(&chunk);
    }
    if let Err(TooMany) = json_values_within(&bytes, JSON_VALUE_LIMIT) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body holds more than {JSON_VALUE_LIMIT} JSON values"),
        )
            .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(Bytes::from(bytes))))
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

/// Count the JSON values of `body` without building them: `Err(TooMany)` past `limit`. A body
/// that is not JSON passes (its handler says what is wrong with it).
pub fn json_values_within(body: &[u8], limit: usize) -> Result<usize, TooMany> {
    let mut count = 0usize;
    let mut de = serde_json::Deserializer::from_slice(body);
    match (Counter {
        count: &mut count,
        limit,
    })
    .deserialize(&mut de)
    {
        Err(_) if count > limit => Err(TooMany),
        _ => Ok(count),
    }
}

/// Counts every value it visits; fails once past the limit.
struct Counter<'a> {
    count: &'a mut usize,
    limit: usize,
}

impl Counter<'_> {
    fn one<E: de::Error>(&mut self) -> Result<(), E> {
        *self.count += 1;
        if *self.count > self.limit {
            Err(E::custom("too many JSON values"))
        } else {
            Ok(())
        }
    }

    fn again(&mut self) -> Counter<'_> {
        Counter {
            count: self.count,
            limit: self.limit,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Counter<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Counter<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(mut self, _: bool) -> Result<(), E> {
        self.one()
    }
    fn visit_i64<E: de::Error>(mut self, _: i64) -> Result<(), E> {
        self.one()
    }
    fn visit_u64<E: de::Error>(mut self, _: u64) -> Result<(), E> {
        self.one()
    }
    fn visit_f64<E: de::Error>(mut self, _: f64) -> Result<(), E> {
        self.one()
    }
    fn visit_str<E: de::Error>(mut self, _: &str) -> Result<(), E> {
        self.one()
    }
    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.one()
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.one()?;
        while seq.next_element_seed(self.again())?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.one()?;
        while map.next_key::<IgnoredAny>()?.is_some() {
            // the key is a string value too
            self.one()?;
            map.next_value_seed(self.again())?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;

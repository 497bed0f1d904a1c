//! Unit tests of the request limits: status codes, the JSON value count, the body budget.
use super::*;
use axum::routing::post;
use tower::ServiceExt;

fn app(budget: usize) -> Router {
    with_budget(
        Router::new().route(
            "/echo",
            post(|body: Bytes| async move { body.len().to_string() }),
        ),
        budget,
    )
}

async fn send(app: Router, body: Body) -> (StatusCode, String) {
    let resp = app
        .oneshot(Request::post("/echo").body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let text = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&text).into_owned())
}

/// A body of `len` bytes in 64 KiB chunks, its length not declared.
fn streamed(len: usize) -> Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..len.div_ceil(65536))
        .map(|i| Ok(Bytes::from(vec![b' '; 65536.min(len - i * 65536)])))
        .collect();
    Body::from_stream(futures::stream::iter(chunks))
}

#[test]
fn json_values_are_counted_without_being_built() {
    assert_eq!(
        json_values_within(br#"{"a": [1, "x", null]}"#, 10).unwrap(),
        6
    );
    assert_eq!(json_values_within(b"[]", 1).unwrap(), 1);
    assert!(json_values_within(b"[0,0,0]", 3).is_err());
    assert!(json_values_within(b"[0,0,0]", 4).is_ok());
    // keys count: an object of many short keys is as costly as an array of many values
    assert!(json_values_within(br#"{"a":0,"b":0}"#, 4).is_err());
    // not JSON, or too deep for serde_json: the handler says what is wrong with it
    assert!(json_values_within(b"not json", 10).is_ok());
    assert!(json_values_within(&[b'['; 1000], 10_000).is_ok());
}

/// The values a parser builds of `v`: the value itself, and for an object each key too.
fn parsed_values(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(parsed_values).sum::<usize>(),
        serde_json::Value::Object(m) => 1 + m.values().map(|v| 1 + parsed_values(v)).sum::<usize>(),
        _ => 1,
    }
}

#[test]
fn the_count_is_that_of_the_parsed_document_whatever_the_strings_hold() {
    let bodies: [&[u8]; 5] = [
        br#"["a,b:[{", "\"]}", {}]"#,
        br#"{"k\\": "\\", "e": [], "o": {}, "n": [[], [{}], -1.5e3, true, null]}"#,
        b" \n[ 1 ,\t2 ] ",
        br#""just a string with , and :""#,
        br#"{"apiVersion":"admission.k8s.io/v1","request":{"uid":"u","object":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","args":["x","y"],"env":[]}]}}}}"#,
    ];
    for body in bodies {
        let parsed: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            json_values_within(body, usize::MAX).unwrap(),
            parsed_values(&parsed),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[tokio::test]
async fn bodies_within_the_limits_reach_the_handler() {
    assert_eq!(
        send(app(BODY_BUDGET), Body::from(r#"{"a": 1}"#)).await,
        (StatusCode::OK, "8".into())
    );
    let exactly = BODY_LIMIT;
    assert_eq!(
        send(app(BODY_BUDGET), streamed(exactly)).await,
        (StatusCode::OK, exactly.to_string())
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_declared_or_not() {
    let over = BODY_LIMIT + 1;
    for body in [Body::from(vec![b' '; over]), streamed(over)] {
        let (status, text) = send(app(BODY_BUDGET), body).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(text.contains("over the limit of 7340032 bytes"), "{text}");
    }
}

#[tokio::test]
async fn a_body_with_too_many_json_values_is_413_before_it_is_parsed() {
    let many = format!("[{}0]", "0,".repeat(JSON_VALUE_LIMIT));
    let (status, text) = send(app(BODY_BUDGET), Body::from(many)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text.contains("more than 100000 JSON values"), "{text}");
}

#[tokio::test]
async fn requests_beyond_the_budget_wait_for_their_turn() {
    let app = app(10);
    // a first request takes the whole budget and holds it while its body is being sent
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, std::io::Error>>();
    let held = Body::new(http_body_util::StreamBody::new(
        rx.map(|c| c.map(hyper::body::Frame::data)),
    ));
    let first = tokio::spawn(send(app.clone(), held));
    tokio::task::yield_now().await;
    let second = tokio::spawn(send(app.clone(), Body::from("[1]")));
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(!second.is_finished(), "the second request did not wait");
    tx.unbounded_send(Ok(Bytes::from("[2]"))).unwrap();
    drop(tx);
    assert_eq!(first.await.unwrap(), (StatusCode::OK, "3".into()));
    assert_eq!(second.await.unwrap(), (StatusCode::OK, "3".into()));
}

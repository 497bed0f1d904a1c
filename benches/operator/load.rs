//! Webhook load: AdmissionReviews sent straight to `/mutate-pods` over TLS on keep-alive
//! HTTP/1.1 connections, to the operator and to the bare responder ([`crate::bare`]) in turns:
//! saturation (N requests in flight for a while) and a fixed rate of 1,000 per second.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::cluster::{NS, Operator};
use crate::{Row, Stats};

/// How long each saturation measurement lasts.
const SATURATION: Duration = Duration::from_secs(2);

/// A TLS endpoint serving `/mutate-pods`.
#[derive(Clone)]
pub struct Endpoint {
    addr: SocketAddr,
    tls: TlsConnector,
}

impl Endpoint {
    pub fn new(port: u16, ca: &str) -> Endpoint {
        Endpoint {
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            tls: crate::hostile::connector(ca),
        }
    }

    /// The operator's webhook (its CA from the certificate Secret in `operator_ns`).
    pub async fn operator(client: &Client, operator_ns: &str, port: u16) -> Endpoint {
        let secret = Api::<Secret>::namespaced(client.clone(), operator_ns)
            .get("quarks-job-webhook-cert")
            .await
            .expect("the certificate Secret");
        let ca = String::from_utf8(secret.data.expect("data")["ca.crt"].0.clone()).expect("PEM");
        Endpoint::new(port, &ca)
    }

    async fn connect(&self) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let stream = self
            .tls
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .expect("TLS handshake");
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("HTTP handshake");
        tokio::spawn(conn);
        sender
    }
}

/// An AdmissionReview of a pod of QuarksJob `qjob` in the bench namespace that mounts the
/// versioned secret `creds-v1`.
pub fn review(qjob: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","kind":{{"group":"","version":"v1","kind":"Pod"}},"resource":{{"group":"","version":"v1","resource":"pods"}},"operation":"CREATE","userInfo":{{}},"namespace":"{NS}","object":{{"apiVersion":"v1","kind":"Pod","metadata":{{"generateName":"p-","namespace":"{NS}","labels":{{"quarks.cloudfoundry.org/qjob-name":"{qjob}"}}}},"spec":{{"containers":[{{"name":"c","image":"busybox","volumeMounts":[{{"name":"creds","mountPath":"/creds"}}]}}],"volumes":[{{"name":"creds","secret":{{"secretName":"creds-v1"}}}}]}}}}}}}}"#
    ))
}

async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    body: &Bytes,
) -> Vec<u8> {
    sender.ready().await.expect("connection");
    let req = hyper::Request::post("/mutate-pods")
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .unwrap();
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200, "admission answered with an error");
    resp.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec()
}

/// `in_flight` connections sending `body` back to back for `duration`: (requests per second,
/// latencies).
pub async fn saturate(
    endpoint: &Endpoint,
    in_flight: usize,
    duration: Duration,
    body: &Bytes,
) -> (f64, Stats) {
    let mut senders = Vec::new();
    for _ in 0..in_flight {
        senders.push(endpoint.connect().await);
    }
    let start = Instant::now();
    let end = start + duration;
    let workers: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            let body = body.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < end {
                    let t = Instant::now();
                    send(&mut sender, &body).await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    (all.len() as f64 / elapsed, Stats::of(all))
}

/// `rate` requests per second for `duration`, spread over 8 connections; each latency counts
/// from when the request was due (a late start counts against the server).
pub async fn paced(endpoint: &Endpoint, rate: u32, duration: Duration, body: &Bytes) -> Stats {
    let connections = 8;
    let period = Duration::from_secs_f64(connections as f64 / rate as f64);
    let count = (duration.as_secs_f64() / period.as_secs_f64()) as usize;
    let mut workers = Vec::new();
    for c in 0..connections {
        let mut sender = endpoint.connect().await;
        let body = body.clone();
        let first = Instant::now() + period.mul_f64(c as f64 / connections as f64);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for i in 0..count {
                let due = first + period * i as u32;
                tokio::time::sleep_until(due.into()).await;
                send(&mut sender, &body).await;
                latencies.push(due.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    Stats::of(all)
}

/// Saturation at 8 and 32 in flight against the bare responder, two rounds in turns: (bare
/// rates, operator rates, operator p99s), per concurrency.
pub async fn compare(
    bare: &Endpoint,
    operator: &Endpoint,
    body: &Bytes,
) -> Vec<(usize, f64, f64, Stats)> {
    let mut out = Vec::new();
    for in_flight in [8, 32] {
        let (mut b, mut o, mut last) = (0.0, 0.0, None);
        for _ in 0..2 {
            b += saturate(bare, in_flight, SATURATION, body).await.0 / 2.0;
            let (rate, stats) = saturate(operator, in_flight, SATURATION, body).await;
            o += rate / 2.0;
            last = Some(stats);
        }
        out.push((in_flight, b, o, last.unwrap()));
    }
    out
}

/// The webhook section.
pub async fn rows(client: &Client, operator_ns: &str, operator: &Operator) -> Vec<Row> {
    crate::trigger::ensure_qjob(client, "w0").await;
    let bare = crate::bare::start();
    let bare = Endpoint::new(bare.port, &bare.ca);
    let webhook = Endpoint::operator(client, operator_ns, operator.webhook).await;
    let body = review("w0");
    {
        let answer = send(&mut webhook.connect().await, &body).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.contains("\"patch\""),
            "the webhook did not mutate the pod: {answer}"
        );
    }
    let mut rows = Vec::new();
    for (in_flight, b, o, stats) in compare(&bare, &webhook, &body).await {
        rows.push(Row::rate(
            format!(
                "webhook `/mutate-pods` saturation, {in_flight} in flight (operator p99 {})",
                crate::fmt_duration(stats.p99)
            ),
            "/s",
            b,
            o,
            0.8,
        ));
    }
    let second = Duration::from_secs(3);
    let b = paced(&bare, 1000, second, &body).await;
    let o = paced(&webhook, 1000, second, &body).await;
    let mut row = Row::slower("webhook p99 at 1,000 admissions/s", b.p99, o.p99, 0.0);
    row.target = "< 5 ms".into();
    row.met = Some(o.p99 < Duration::from_millis(5));
    rows.push(row);
    rows
}

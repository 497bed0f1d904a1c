//! Hostile clients of the webhook's TLS port, for the tests and `make bench`: connections that
//! stall at each step, and the largest bodies a client may send built to cost the most memory
//! once parsed. Self-contained (the bench includes this file on its own).

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The body limit of the webhook (`webhook::BODY_LIMIT`, 7 MiB).
const BODY_LIMIT: usize = 7 * 1024 * 1024;

/// Connections held open, each stalled somewhere before a complete request.
pub struct Held {
    tcp: Vec<TcpStream>,
    tls: Vec<tokio_rustls::client::TlsStream<TcpStream>>,
}

impl Held {
    /// How many are held.
    pub fn len(&self) -> usize {
        self.tcp.len() + self.tls.len()
    }

    /// How many the server has closed: each is probed with a read that must not block.
    pub async fn closed_by_the_server(&mut self) -> usize {
        use tokio::io::AsyncReadExt;
        let mut closed = 0;
        let mut buf = [0u8; 64];
        for s in &mut self.tcp {
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(std::time::Duration::from_millis(1), s.read(&mut buf)).await
            {
                closed += 1;
            }
        }
        for s in &mut self.tls {
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(std::time::Duration::from_millis(1), s.read(&mut buf)).await
            {
                closed += 1;
            }
        }
        closed
    }
}

/// A TLS client trusting only the PEM CA `ca_pem`, offering HTTP/1.1.
pub fn connector(ca_pem: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("a CA certificate")).expect("a root");
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// Open `n` connections to `addr` and leave each stalled: a third connected without a byte
/// sent, a third in the middle of a TLS ClientHello, a third with TLS done and HTTP/1.1 request
/// headers that never end.
pub async fn hold_slow_connections(addr: SocketAddr, n: usize, tls: &TlsConnector) -> Held {
    let mut held = Held {
        tcp: Vec::new(),
        tls: Vec::new(),
    };
    for i in 0..n {
        match i % 3 {
            0 => held
                .tcp
                .push(TcpStream::connect(addr).await.expect("connect")),
            1 => {
                let mut s = TcpStream::connect(addr).await.expect("connect");
                // a TLS handshake record header announcing 512 bytes, and 4 of them
                s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
                    .await
                    .expect("write");
                held.tcp.push(s);
            }
            _ => {
                let tcp = TcpStream::connect(addr).await.expect("connect");
                let mut s = tls
                    .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
                    .await
                    .expect("TLS handshake");
                s.write_all(b"POST /mutate-pods HTTP/1.1\r\nHost: quarks-job\r\nContent-Ty")
                    .await
                    .expect("write");
                s.flush().await.expect("flush");
                held.tls.push(s);
            }
        }
    }
    held
}

/// An AdmissionReview of a pod of QuarksJob `q` in namespace `ns` whose pod carries `extra`
/// (raw JSON) in an annotation-like place of the object: `{"…pod…", "x": <extra>}`.
fn review(ns: &str, extra: &str) -> Vec<u8> {
    format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","kind":{{"group":"","version":"v1","kind":"Pod"}},"resource":{{"group":"","version":"v1","resource":"pods"}},"operation":"CREATE","userInfo":{{}},"namespace":"{ns}","object":{{"apiVersion":"v1","kind":"Pod","metadata":{{"generateName":"p-","labels":{{"quarks.cloudfoundry.org/qjob-name":"q"}}}},"spec":{{"containers":[{{"name":"c","image":"busybox"}}]}},"x":{extra}}}}}}}"#
    )
    .into_bytes()
}

/// Bodies of (just under) the webhook's limit that cost the most to parse, by name:
/// `numbers` (an array of single-digit numbers: the most values per byte), `strings` (as many
/// short strings as the JSON value limit allows, the rest of the bytes in them), `one string`
/// (one string filling the body), `keys` (an object of short keys, `"00000001":0`).
pub fn adversarial_bodies(ns: &str) -> Vec<(&'static str, Vec<u8>)> {
    let room = BODY_LIMIT - 1024;
    let numbers = format!("[{}0]", "0,".repeat(room / 2 - 1));
    let count = 95_000;
    let each = room / count - 3;
    let strings = format!(
        "[{}]",
        vec![format!("\"{}\"", "s".repeat(each)); count].join(",")
    );
    let one = format!("\"{}\"", "s".repeat(room - 2));
    let keys = format!(
        "{{{}}}",
        (0..room / 13)
            .map(|i| format!("\"{i:08}\":0"))
            .collect::<Vec<_>>()
            .join(",")
    );
    vec![
        ("numbers", review(ns, &numbers)),
        ("strings", review(ns, &strings)),
        ("one string", review(ns, &one)),
        ("keys", review(ns, &keys)),
    ]
}

/// `VmHWM` (peak resident memory) of process `pid`, in bytes.
pub fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// POST `body` to `https://127.0.0.1:<port><path>` over a fresh HTTP/1.1 connection; the status.
pub async fn post(
    addr: SocketAddr,
    tls: &TlsConnector,
    path: &str,
    body: Vec<u8>,
) -> Result<u16, String> {
    use http_body_util::BodyExt;
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let stream = tls
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Ok(status)
}

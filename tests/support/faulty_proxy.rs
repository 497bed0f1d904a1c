//! A loopback HTTP proxy in front of the real apiserver that injects faults: it answers chosen
//! requests with an error status, closes the connection without answering (before or after
//! passing the request on), and counts what it saw. Everything else goes to the apiserver
//! unchanged (over TLS, checked against the control plane's CA); answers, watch streams
//! included, are streamed back. The code under test talks plain HTTP to it through an ordinary
//! kubeconfig: nothing of the product is mocked.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};

use super::controlplane::ControlPlane;

/// What the proxy does to a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a `Status` body; the apiserver never sees the request.
    Status(u16),
    /// Close the connection without an answer; the apiserver never sees the request.
    Drop,
    /// Pass the request on, wait for the apiserver's answer, then close the connection without
    /// passing it back: the write happened, the client does not know.
    ForwardThenDrop,
}

/// Which requests a rule or a count is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// A part of the path, e.g. `/secrets`.
    pub path: String,
    /// A part of the request body, e.g. `"name":"b"`.
    pub body: Option<String>,
}

impl Match {
    /// `method` requests whose path contains `path`.
    pub fn new(method: &str, path: &str) -> Match {
        Match {
            method: method.into(),
            path: path.into(),
            body: None,
        }
    }

    /// ... whose body also contains `part`.
    pub fn body(mut self, part: &str) -> Match {
        self.body = Some(part.into());
        self
    }

    fn matches(&self, method: &str, path: &str, body: &[u8]) -> bool {
        self.method == method
            && path.contains(&self.path)
            && self
                .body
                .as_ref()
                .is_none_or(|b| String::from_utf8_lossy(body).contains(b.as_str()))
    }
}

struct Rule {
    when: Match,
    fault: Fault,
    remaining: u32,
}

/// One request the proxy saw, and the fault it injected (if any).
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The body.
    pub body: Bytes,
    /// The injected fault.
    pub fault: Option<Fault>,
}

#[derive(Default)]
struct Shared {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
}

/// The running proxy; it stops with the test process.
pub struct FaultyProxy {
    /// `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    dir: PathBuf,
}

impl FaultyProxy {
    /// Start a proxy in front of `cp`'s apiserver, on its own thread and runtime.
    pub fn start(cp: &ControlPlane) -> FaultyProxy {
        let upstream: SocketAddr = cp
            .server
            .trim_start_matches("https://")
            .parse()
            .expect("apiserver address");
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(cp.ca_pem.as_bytes()).expect("CA"))
            .unwrap();
        let tls = Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let (state, tls) = (state.clone(), tls.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            handle(req, upstream, tls.clone(), state.clone())
                        });
                        // an injected drop ends the connection with an error: expected
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        FaultyProxy {
            addr,
            shared,
            dir: cp.dir.clone(),
        }
    }

    /// Inject `fault` into the next `times` requests matching `when` (rules are tried in the
    /// order they were added; `u32::MAX` means always).
    pub fn fail(&self, when: Match, fault: Fault, times: u32) {
        self.shared.lock().unwrap().rules.push(Rule {
            when,
            fault,
            remaining: times,
        });
    }

    /// How many requests matching `m` the proxy saw (faulted or passed on).
    pub fn count(&self, m: &Match) -> usize {
        let shared = self.shared.lock().unwrap();
        shared
            .seen
            .iter()
            .filter(|s| m.matches(&s.method, &s.path, &s.body))
            .count()
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.lock().unwrap().seen.clone()
    }

    /// A kubeconfig that reaches the apiserver through this proxy with `token`.
    pub fn kubeconfig_for_token(&self, name: &str, token: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}-via-proxy.kubeconfig"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: proxy\n  cluster:\n    server: http://{}\n\
             users:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: proxy\n  context:\n    \
             cluster: proxy\n    user: u\ncurrent-context: proxy\n",
            self.addr
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn status_answer(code: u16) -> Response<Body> {
    let reason = StatusCode::from_u16(code)
        .ok()
        .and_then(|c| c.canonical_reason())
        .unwrap_or("Injected")
        .replace(' ', "");
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("injected by the test proxy: {code}"), "reason": reason, "code": code,
    });
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(full(body.to_string()))
        .unwrap()
}

async fn handle(
    req: Request<Incoming>,
    upstream: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    state: Arc<Mutex<Shared>>,
) -> Result<Response<Body>, Box<dyn std::error::Error + Send + Sync>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let method = parts.method.to_string();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let fault = {
        let mut s = state.lock().unwrap();
        let fault = s
            .rules
            .iter_mut()
            .find(|r| r.remaining > 0 && r.when.matches(&method, &path, &body))
            .map(|r| {
                r.remaining = r.remaining.saturating_sub(1);
                r.fault
            });
        s.seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            body: body.clone(),
            fault,
        });
        fault
    };
    match fault {
        Some(Fault::Status(code)) => return Ok(status_answer(code)),
        Some(Fault::Drop) => return Err("injected: connection dropped".into()),
        _ => {}
    }
    let mut forward = Request::builder().method(parts.method).uri(path);
    for (k, v) in &parts.headers {
        if k != "host" {
            forward = forward.header(k, v);
        }
    }
    let forward = forward
        .header("host", upstream.to_string())
        .body(Full::new(body))?;
    let tcp = TcpStream::connect(upstream).await?;
    let server_name = ServerName::IpAddress(upstream.ip().into());
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(server_name, tcp)
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let answer = sender.send_request(forward).await?;
    if fault == Some(Fault::ForwardThenDrop) {
        let _ = answer.into_body().collect().await;
        return Err("injected: answer dropped".into());
    }
    Ok(answer.map(|b| b.boxed()))
}

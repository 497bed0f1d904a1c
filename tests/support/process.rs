//! Running the real `quarks-job` binary as a child process and reading its log lines.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quarks_job::cli::{ENV_VARS, PERSIST_OUTPUT_ENV_VARS};

/// A `Command` for the quarks-job binary with a clean environment for its own variables.
pub fn quarks_job() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quarks-job"));
    // the caller's shell must not leak into the binary's settings
    for var in ENV_VARS
        .iter()
        .chain(PERSIST_OUTPUT_ENV_VARS)
        .chain(&["RUST_LOG"])
    {
        cmd.env_remove(var);
    }
    cmd
}

/// A running binary whose stderr is collected line by line.
pub struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Start `cmd` with stderr captured. The process is killed when this is dropped, and also
    /// when the test process ends (`PR_SET_PDEATHSIG`), even if this is never dropped (e.g. held
    /// in a `static`).
    pub fn start(mut cmd: Command) -> Running {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = super::controlplane::spawn_tied_to_process(cmd).expect("start quarks-job");
        let pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Running {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait until stderr contains `needle`; panic with the log after `timeout` or if the process
    /// exits first.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        let what = format!("logging {needle:?}");
        self.wait_until(&what, timeout, |r| r.stderr().contains(needle));
    }

    /// Wait until `GET http://<addr><path>` answers 200; panic with the log after `timeout` or if
    /// the process exits first.
    pub fn wait_for_http_ok(&mut self, addr: &str, path: &str, timeout: Duration) {
        let what = format!("{path} answering 200");
        self.wait_until(&what, timeout, |_| {
            http_get(addr, path).is_some_and(|r| r.starts_with("HTTP/1.1 200"))
        });
    }

    /// Poll `done` until it holds; panic naming `what`, with the log, after `timeout` or when
    /// the process has exited and `done` still does not hold.
    fn wait_until(&mut self, what: &str, timeout: Duration, done: impl Fn(&Running) -> bool) {
        let start = Instant::now();
        while !done(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100)); // let the reader drain
                if done(self) {
                    return;
                }
                panic!(
                    "quarks-job exited ({status}) before {what}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                start.elapsed() < timeout,
                "not {what} after {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Check that the log has no `forbidden` (its RBAC was enough), then stop it with SIGTERM
    /// and check it exits cleanly.
    pub fn stop_never_denied(self) {
        let log = self.stderr();
        assert!(
            !log.to_lowercase().contains("forbidden"),
            "the operator was denied something:\n{log}"
        );
        let status = self.terminate();
        assert!(status.success(), "exit {status:?}\n{log}");
    }

    /// Like [`Self::stop_never_denied`], except for log lines that contain `expected`: every
    /// `forbidden` must be on such a line (a denial the test provoked).
    pub fn stop_denied_only(self, expected: &str) {
        let log = self.stderr();
        let unexpected: Vec<&str> = log
            .lines()
            .filter(|l| l.to_lowercase().contains("forbidden") && !l.contains(expected))
            .collect();
        assert!(
            unexpected.is_empty(),
            "the operator was denied something else:\n{}",
            unexpected.join("\n")
        );
        let status = self.terminate();
        assert!(status.success(), "exit {status:?}\n{log}");
    }

    /// Wait until it exits by itself; return the status and the whole log. Panics with the log
    /// if it still runs after `timeout`.
    pub fn wait_exit(mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for quarks-job") {
                break status;
            }
            assert!(
                start.elapsed() < timeout,
                "still running after {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, self.stderr())
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(self) -> std::process::ExitStatus {
        self.stop().0
    }

    /// Send SIGTERM, wait for the exit status, and return it with the whole log (read to the
    /// end of the pipe).
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("wait for quarks-job");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, self.stderr())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET over a TCP socket (the health port has no TLS); None if it cannot connect.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// The operator binary as run outside the cluster against the local control plane: webhook
/// served on 127.0.0.1 and registered by URL, free webhook and health ports.
pub struct Operator {
    /// The command; add flags or environment variables before [`Operator::start`].
    pub cmd: Command,
    health: String,
    webhook: String,
}

impl Operator {
    /// `quarks-job` with `kubeconfig`, its operator namespace and monitored id.
    pub fn out_of_cluster(kubeconfig: &Path, operator_ns: &str, monitored_id: &str) -> Operator {
        let health_port = super::free_port();
        let webhook_port = super::free_port();
        let mut cmd = quarks_job();
        cmd.args([
            "--webhook-server-host",
            "127.0.0.1",
            "--webhook-server-port",
            &webhook_port,
            "--health-port",
            &health_port,
            "--operator-namespace",
            operator_ns,
            "--monitored-id",
            monitored_id,
            "--kubeconfig",
        ])
        .arg(kubeconfig);
        Operator {
            cmd,
            health: format!("127.0.0.1:{health_port}"),
            webhook: format!("127.0.0.1:{webhook_port}"),
        }
    }

    /// `127.0.0.1:<health port>`.
    pub fn health(&self) -> &str {
        &self.health
    }

    /// `127.0.0.1:<webhook port>`.
    pub fn webhook(&self) -> &str {
        &self.webhook
    }

    /// Start it and wait until `/readyz` answers 200: CRD applied, certificates stored,
    /// webhooks registered, caches synced.
    pub fn start(self) -> Running {
        let mut running = Running::start(self.cmd);
        running.wait_for_http_ok(&self.health, "/readyz", Duration::from_secs(90));
        running
    }
}

//! Running the real `quarks-job` binary as a child process and reading its log lines.

use std::io::{BufRead, BufReader};
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
}

impl Running {
    /// Start `cmd` with stderr captured.
    pub fn start(mut cmd: Command) -> Running {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start quarks-job");
        let pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Running { child, stderr }
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait until stderr contains `needle`; panic with the log after `timeout` or if the process
    /// exits first.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100)); // let the reader drain
                if self.stderr().contains(needle) {
                    return;
                }
                panic!(
                    "quarks-job exited ({status}) before logging {needle:?}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                start.elapsed() < timeout,
                "no {needle:?} in the log after {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until the operator's `/readyz` on `127.0.0.1:<health_port>` answers 200 (CRD
    /// applied, certificates stored, webhooks registered, caches synced); panic with the log
    /// after `timeout`.
    pub async fn wait_ready(&self, health_port: &str, timeout: Duration) {
        let addr = format!("127.0.0.1:{health_port}");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if http_get(&addr, "/readyz")
                .await
                .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "operator not ready after {timeout:?}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
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

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().expect("wait for quarks-job")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET over a TCP socket (the health port has no TLS); None if it cannot connect.
pub async fn http_get(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}

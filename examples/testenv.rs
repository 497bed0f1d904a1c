//! `make testenv` / `make run`: a real local control plane (etcd + kube-apiserver +
//! kube-controller-manager on loopback), the same one the integration tests use.
//!
//!     cargo run --example testenv                  # start it, print the KUBECONFIG, wait for Ctrl-C
//!     cargo run --example testenv -- CMD [ARGS..]  # start it, run CMD with KUBECONFIG set, stop after
//!
//! The kubeconfig is also copied to `.testenv/kubeconfig` in the working directory while it runs.

#[allow(dead_code)] // the tests use more of it than this tool
#[path = "../tests/support/controlplane.rs"]
mod controlplane;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    quarks_job::install_crypto_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    eprintln!("testenv: starting etcd, kube-apiserver and kube-controller-manager ...");
    let cp = match controlplane::ControlPlane::start() {
        Ok(cp) => cp,
        Err(e) => {
            eprintln!("testenv: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stable = std::path::Path::new(".testenv/kubeconfig");
    let _ = std::fs::create_dir_all(".testenv");
    let _ = std::fs::copy(&cp.kubeconfig, stable);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let code = if args.is_empty() {
        println!(
            "export KUBECONFIG={}",
            std::fs::canonicalize(stable)
                .unwrap_or(cp.kubeconfig.clone())
                .display()
        );
        eprintln!(
            "testenv: Kubernetes 1.20 serving at {} (logs in {}). Ctrl-C stops it.",
            cp.server,
            cp.dir.display()
        );
        rt.block_on(quarks_job::runtime::shutdown_signal()).ok();
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "testenv: serving at {}; running {}",
            cp.server,
            args.join(" ")
        );
        let mut child = match Command::new(&args[0])
            .args(&args[1..])
            .env("KUBECONFIG", &cp.kubeconfig)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("testenv: cannot run {}: {e}", args[0]);
                return ExitCode::FAILURE;
            }
        };
        let pid = child.id() as i32;
        let status = rt.block_on(async {
            let wait = tokio::task::spawn_blocking(move || child.wait());
            tokio::pin!(wait);
            tokio::select! {
                status = &mut wait => status,
                _ = quarks_job::runtime::shutdown_signal() => {
                    // SAFETY: kill(2) on our own child's pid.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                    wait.await
                }
            }
        });
        match status {
            Ok(Ok(s)) if s.success() => ExitCode::SUCCESS,
            Ok(Ok(s)) => ExitCode::from(s.code().unwrap_or(1).clamp(1, 255) as u8),
            _ => ExitCode::FAILURE,
        }
    };
    let _ = std::fs::remove_file(stable);
    eprintln!("testenv: stopping");
    drop(cp);
    code
}

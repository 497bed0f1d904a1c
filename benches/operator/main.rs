//! `make bench`: speed and memory of quarks-job, measured on the real local control plane with
//! the release binary, printed as a table and written to `docs/benchmarks.md`.
//!
//! Targets are goals to compare against, not assertions: a slow machine prints a miss, it does
//! not fail a build. `QUARKS_BENCH_RUNS` sets the number of samples (default 30).

#[allow(dead_code)] // the tests use more of it than the benchmark
#[path = "../../tests/support/controlplane.rs"]
mod controlplane;

#[allow(dead_code)] // the tests use more of it than the benchmark
#[path = "../../tests/support/hostile.rs"]
mod hostile;

mod cluster;
mod hostile_rows;
mod pure;

use std::fmt::Write as _;
use std::time::Duration;

/// One line of the table.
pub struct Row {
    /// What was measured.
    pub what: String,
    /// The measurement.
    pub value: String,
    /// The goal, as text.
    pub target: String,
    /// Whether the goal was met.
    pub met: bool,
}

impl Row {
    /// A duration measured against an upper bound.
    pub fn time(what: impl Into<String>, value: Duration, target: Duration) -> Row {
        Row {
            what: what.into(),
            value: fmt_duration(value),
            target: format!("< {}", fmt_duration(target)),
            met: value < target,
        }
    }

    /// A size in bytes measured against an upper bound.
    pub fn bytes(what: impl Into<String>, value: u64, target: u64) -> Row {
        Row {
            what: what.into(),
            value: fmt_bytes(value),
            target: format!("< {}", fmt_bytes(target)),
            met: value < target,
        }
    }
}

/// Median, 95th percentile and maximum of some samples.
pub struct Stats {
    /// 50th percentile.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// The largest sample.
    pub max: Duration,
}

impl Stats {
    /// The statistics of `samples` (at least one).
    pub fn of(mut samples: Vec<Duration>) -> Stats {
        assert!(!samples.is_empty(), "no samples");
        samples.sort();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Stats {
            p50: at(0.5),
            p95: at(0.95),
            max: *samples.last().unwrap(),
        }
    }
}

/// `1.23 ms`, `45.6 µs`, `2.50 s`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// `12.3 MiB`.
pub fn fmt_bytes(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// The number of samples per measurement.
pub fn runs() -> usize {
    std::env::var("QUARKS_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0)
        .unwrap_or(30)
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from("| measurement | result | target | met |\n|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            r.what,
            r.value,
            r.target,
            if r.met { "yes" } else { "**no**" }
        );
    }
    out
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs ({model}), {}", std::env::consts::ARCH)
}

fn main() {
    quarks_job::install_crypto_provider();
    let runs = runs();
    eprintln!("bench: {runs} samples per measurement");
    let mut rows = pure::rows();
    eprintln!("bench: starting the control plane ...");
    let mut cp =
        controlplane::ControlPlane::start().unwrap_or_else(|e| panic!("control plane: {e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rows.extend(runtime.block_on(cluster::rows(&cp.kubeconfig, runs)));
    cp.stop();

    let table = table(&rows);
    println!("{table}");
    let doc = format!(
        "# Benchmarks\n\n\
         Written by `make bench` (`benches/operator/`): the release binary against the local \
         control plane (etcd, kube-apiserver and kube-controller-manager 1.20.2 on loopback), \
         {runs} samples per measurement. Targets are goals, not test assertions; a loaded or \
         slow machine misses them without failing anything.\n\n\
         Machine: {}.\n\n{table}\n\
         How each is measured:\n\n\
         * **pod mutation**: the pure function `webhook::mutate` on a pod with two containers, an \
           init container and a versioned secret reference among 20 versions.\n\
         * **trigger → Job**: creating a `strategy: now` QuarksJob until its Job is seen by a watch. \
           Upstream waited a fixed 10 s (\"meltdown\") before every Job.\n\
         * **pod admission**: a pod create through the apiserver that calls the mutating webhook \
           (TLS, the operator's caches), compared with a pod the webhook is not called for.\n\
         * **memory**: resident set of the operator process (`VmRSS`; peak `VmHWM`) when idle, and \
           with 500 QuarksJobs in its caches.\n\
         * **hostile clients**: the same pod admission while 1,000 connections to the webhook port \
           are held open, stalled before a complete request (a third without a byte, a third in \
           the TLS handshake, a third in the request headers); then the largest bodies \
           (7 MiB: numbers, short strings, one string, short keys) sent to `/mutate-pods` 4 at a \
           time, and the process's peak resident memory (the Deployment's limit is 256 MiB).\n",
        machine()
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
    std::fs::write(&path, doc).expect("write docs/benchmarks.md");
    eprintln!("bench: wrote {}", path.display());
}

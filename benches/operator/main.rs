//! `make bench`: speed and memory of quarks-job, measured on the real local control plane with
//! the release binary, each figure next to a bare kube-rs client (or a bare axum+rustls
//! responder) doing the same work, interleaved in the same run, and written to
//! `docs/benchmarks.md`.
//!
//! Goals are for humans and the record, not assertions: a loaded machine prints a miss, it does
//! not fail a build. `BENCH=trigger,webhook` selects sections (default: all of them, see
//! [`SECTIONS`]); `QUARKS_BENCH_RUNS` sets the number of latency samples (default 30, 50 for
//! `output`);
//! `QUARKS_BENCH_SCALES` the sizes of the scale table (default `1,3,10`);
//! `QUARKS_BENCH_WORKERS` passes `--max-workers` to the operator (default: its default);
//! `QUARKS_BENCH_BIN` runs another build of the operator (e.g. the one before a change).

#[allow(dead_code)] // the tests use more of it than the benchmark
#[path = "../../tests/support/controlplane.rs"]
mod controlplane;

#[allow(dead_code)] // the tests use more of it than the benchmark
#[path = "../../tests/support/hostile.rs"]
mod hostile;

mod bare;
mod cluster;
mod doc;
mod hostile_rows;
mod load;
mod output;
mod pure;
mod scale;
mod trigger;

use std::time::Duration;

/// The sections `BENCH` can select, in the order they run.
pub const SECTIONS: [&str; 7] = [
    "pure", "trigger", "burst", "webhook", "hostile", "output", "scale",
];

/// One line of a table.
pub struct Row {
    /// What was measured.
    pub what: String,
    /// The bare client's or responder's figure from the same run, if there is one.
    pub bare: String,
    /// quarks-job's figure.
    pub value: String,
    /// quarks-job against the bare figure.
    pub ratio: String,
    /// The goal, as text.
    pub target: String,
    /// Whether the goal was met (`None`: a figure without a goal).
    pub met: Option<bool>,
}

impl Row {
    fn new(what: impl Into<String>, value: String, target: String, met: Option<bool>) -> Row {
        Row {
            what: what.into(),
            bare: "—".into(),
            value,
            ratio: "—".into(),
            target,
            met,
        }
    }

    /// A duration measured against an upper bound.
    pub fn time(what: impl Into<String>, value: Duration, target: Duration) -> Row {
        Row::new(
            what,
            fmt_duration(value),
            format!("< {}", fmt_duration(target)),
            Some(value < target),
        )
    }

    /// A size in bytes measured against an upper bound.
    pub fn bytes(what: impl Into<String>, value: u64, target: u64) -> Row {
        Row::new(
            what,
            fmt_bytes(value),
            format!("< {}", fmt_bytes(target)),
            Some(value < target),
        )
    }

    /// A figure without a goal.
    pub fn info(what: impl Into<String>, value: impl Into<String>) -> Row {
        Row::new(what, value.into(), "—".into(), None)
    }

    /// A latency against the bare one: met if at most `max` times it.
    pub fn slower(what: impl Into<String>, bare: Duration, value: Duration, max: f64) -> Row {
        let ratio = value.as_secs_f64() / bare.as_secs_f64().max(1e-9);
        Row {
            what: what.into(),
            bare: fmt_duration(bare),
            value: fmt_duration(value),
            ratio: format!("{ratio:.2}× slower"),
            target: format!("≤ {max}×"),
            met: Some(ratio <= max),
        }
    }

    /// A latency against the bare one, without a goal on the ratio (`target` says why).
    pub fn compared(what: impl Into<String>, bare: Duration, value: Duration, target: &str) -> Row {
        let ratio = value.as_secs_f64() / bare.as_secs_f64().max(1e-9);
        Row {
            what: what.into(),
            bare: fmt_duration(bare),
            value: fmt_duration(value),
            ratio: format!("{ratio:.2}× slower"),
            target: target.into(),
            met: None,
        }
    }

    /// A rate (per second) against the bare one: met if at least `min` times it.
    pub fn rate(what: impl Into<String>, unit: &str, bare: f64, value: f64, min: f64) -> Row {
        let ratio = value / bare.max(1e-9);
        Row {
            what: what.into(),
            bare: format!("{bare:.0} {unit}"),
            value: format!("{value:.0} {unit}"),
            ratio: format!("{ratio:.2}×"),
            target: format!("≥ {min}×"),
            met: Some(ratio >= min),
        }
    }
}

/// Percentiles of some samples.
pub struct Stats {
    /// 50th percentile.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
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
            p99: at(0.99),
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

/// The number of latency samples per measurement.
pub fn runs() -> usize {
    env_number("QUARKS_BENCH_RUNS").unwrap_or(30)
}

/// The number of latency samples of `section`: `QUARKS_BENCH_RUNS`, else 30, or 50 for `output`
/// (issue 12 goal 5 is a p50 over 50 runs).
pub fn samples(section: &str) -> usize {
    let default = if section == "output" { 50 } else { 30 };
    env_number("QUARKS_BENCH_RUNS").unwrap_or(default)
}

fn env_number(name: &str) -> Option<usize> {
    std::env::var(name)
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0)
}

/// Whether `BENCH` selects `section` (unset, empty or `all`: every section).
pub fn wants(section: &str) -> bool {
    let selected = std::env::var("BENCH").unwrap_or_default();
    let selected = selected.trim();
    selected.is_empty() || selected == "all" || selected.split(',').any(|s| s.trim() == section)
}

fn main() {
    quarks_job::install_crypto_provider();
    let runs = runs();
    let unknown: Vec<String> = std::env::var("BENCH")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s != "all" && !SECTIONS.contains(&s.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "BENCH: unknown sections {unknown:?}; known: {SECTIONS:?}"
    );
    eprintln!("bench: {runs} samples per latency");
    let mut sections: Vec<(&'static str, Vec<Row>)> = Vec::new();
    if wants("pure") {
        sections.push(("pure", pure::rows()));
    }
    if SECTIONS[1..].iter().any(|s| wants(s)) {
        eprintln!("bench: starting the control plane ...");
        let mut cp =
            controlplane::ControlPlane::start().unwrap_or_else(|e| panic!("control plane: {e}"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        sections.extend(runtime.block_on(cluster::sections(&cp.kubeconfig, runs)));
        cp.stop();
    }
    for (name, rows) in &sections {
        println!("## {name}\n\n{}", doc::table(rows));
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
    doc::update(&path, &sections);
    eprintln!("bench: updated {}", path.display());
}

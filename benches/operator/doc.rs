//! The tables and `docs/benchmarks.md`: each section of a run replaces its own block (between
//! `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`), so `BENCH=webhook` leaves the others and
//! the hand-written parts (before/after, the profile) as they are.

use std::fmt::Write as _;
use std::path::Path;

use crate::Row;

/// A markdown table of `rows`.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| measurement | bare client / server | quarks-job | ratio | goal | met |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {met} |",
            r.what, r.bare, r.value, r.ratio, r.target
        );
    }
    out
}

/// `2 CPUs (model), x86_64`.
pub fn machine() -> String {
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

/// The load averages (1, 5, 15 min) from `/proc/loadavg`.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

fn block(name: &str, rows: &[Row]) -> String {
    format!(
        "<!-- bench:{name} -->\n### {name}\n\n{}, load average {} at the end of the section, \
         `QUARKS_BENCH_RUNS={}`.\n\n{}<!-- /bench:{name} -->",
        machine(),
        load(),
        crate::samples(name),
        table(rows)
    )
}

/// Replace the blocks of `sections` in the document at `path` (appending missing ones at the
/// end of the measured part, before `<!-- bench:end -->` if there is one).
pub fn update(path: &Path, sections: &[(&'static str, Vec<Row>)]) {
    let mut doc = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n\n".into());
    for (name, rows) in sections {
        let new = block(name, rows);
        let (open, close) = (
            format!("<!-- bench:{name} -->"),
            format!("<!-- /bench:{name} -->"),
        );
        match (doc.find(&open), doc.find(&close)) {
            (Some(a), Some(b)) if a < b => doc.replace_range(a..b + close.len(), &new),
            _ => match doc.find("<!-- bench:end -->") {
                Some(at) => doc.insert_str(at, &format!("{new}\n\n")),
                None => doc.push_str(&format!("\n{new}\n")),
            },
        }
    }
    std::fs::write(path, doc).expect("write docs/benchmarks.md");
}

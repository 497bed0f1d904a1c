//! What the plugin prints (pure): tables as kubectl's (columns padded, three spaces apart),
//! the summary of a run, log line prefixes, ages. Never Secret data: only names and versions.

use k8s_openapi::jiff::Timestamp;

use crate::core::api::{QuarksJob, RunRecord};
use crate::core::lenient::Lenient;

/// Columns padded to their widest cell, three spaces apart, as `kubectl get`.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// A duration as kubectl shows ages: `45s`, `3m12s`, `25m`, `5h`, `3d`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{}m{}s", s / 60, s % 60),
        600..10_800 => format!("{}m", s / 60),
        10_800..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn seconds(from: Timestamp, to: Timestamp) -> i64 {
    to.as_second() - from.as_second()
}

/// How long the run took (or runs so far, at `now`).
pub fn duration(r: &RunRecord, now: Timestamp) -> String {
    match (&r.started, &r.finished) {
        (Some(s), Some(f)) => age(seconds(s.0, f.0)),
        (Some(s), None) => age(seconds(s.0, now)),
        _ => "-".into(),
    }
}

/// `Failed (BackoffLimitExceeded, container 'c' exited with 3)`, `Succeeded`, `Running`.
pub fn result(r: &RunRecord) -> String {
    let mut why = Vec::new();
    if let Some(reason) = &r.reason {
        why.push(reason.clone());
    }
    if let (Some(c), Some(code)) = (&r.container, r.exit_code) {
        why.push(format!("container '{c}' exited with {code}"));
    }
    if why.is_empty() {
        r.result.clone()
    } else {
        format!("{} ({})", r.result, why.join(", "))
    }
}

/// `now by kubectl-qjob`, `configChange: ConfigMap/a`.
pub fn trigger(r: &RunRecord) -> String {
    let mut t = r.trigger.clone();
    if let Some(by) = &r.triggered_by {
        t.push_str(&format!(" by {by}"));
    }
    if !r.changed.is_empty() {
        t.push_str(&format!(": {}", r.changed.join(", ")));
    }
    t
}

/// `db-creds-v3 (version 3)` or `plain`.
pub fn output_names(r: &RunRecord) -> Vec<String> {
    let mut names: Vec<String> = r
        .outputs
        .iter()
        .map(|o| match o.version {
            Some(v) => format!("{} (version {v})", o.name),
            None => o.name.clone(),
        })
        .collect();
    if r.outputs_omitted > 0 {
        names.push(format!("... and {} more", r.outputs_omitted));
    }
    names
}

/// The summary after `run --wait`.
pub fn summary(namespace: &str, name: &str, r: &RunRecord, now: Timestamp) -> String {
    let mut out = format!(
        "run {} of quarksjob {namespace}/{name}: {} after {}\n",
        r.run,
        result(r),
        duration(r, now)
    );
    let mut field = |k: &str, v: &str| out.push_str(&format!("  {k:<9}{v}\n"));
    field("trigger:", &trigger(r));
    field("job:", &r.job_name);
    field("pod:", r.pod_name.as_deref().unwrap_or("-"));
    let outputs = output_names(r);
    if outputs.is_empty() {
        field("secrets:", "none written");
    } else {
        for (i, o) in outputs.iter().enumerate() {
            field(if i == 0 { "secrets:" } else { "" }, o);
        }
    }
    out
}

/// `status`: the runs, newest first.
pub fn runs_table(runs: &[RunRecord], now: Timestamp) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.run.to_string(),
                trigger(r),
                result(r),
                r.started
                    .as_ref()
                    .map(|s| age(seconds(s.0, now)))
                    .unwrap_or_else(|| "-".into()),
                duration(r, now),
                r.job_name.clone(),
                r.pod_name.clone().unwrap_or_else(|| "-".into()),
                if r.outputs.is_empty() {
                    "-".into()
                } else {
                    output_names(r).join(", ")
                },
            ]
        })
        .collect();
    table(
        &[
            "RUN", "TRIGGER", "RESULT", "STARTED", "DURATION", "JOB", "POD", "SECRETS",
        ],
        &rows,
    )
}

/// `outputs`: the Secrets of one run, and how to look at them.
pub fn outputs_table(namespace: &str, r: &RunRecord) -> String {
    if r.outputs.is_empty() {
        return format!("run {} wrote no Secrets\n", r.run);
    }
    let rows: Vec<Vec<String>> = r
        .outputs
        .iter()
        .map(|o| {
            vec![
                o.name.clone(),
                o.version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut out = table(&["SECRET", "VERSION"], &rows);
    if r.outputs_omitted > 0 {
        out.push_str(&format!("... and {} more\n", r.outputs_omitted));
    }
    out.push_str(&format!(
        "\nrun {}: look at them with\n  kubectl get secret {} -n {namespace} -o yaml\n",
        r.run,
        r.outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    ));
    out
}

/// `kubectl qjob list`: one row per QuarksJob, with its namespace under `-A`. One that cannot
/// be read as a QuarksJob (a hand-edited template, say) still gets its row, `unreadable` as its
/// last run, so that it never hides the others; [`unreadable_notes`] says why.
pub fn list_table(qjobs: &[Lenient<QuarksJob>], all_namespaces: bool, now: Timestamp) -> String {
    let rows: Vec<Vec<String>> = qjobs
        .iter()
        .map(|item| {
            let meta = kube::Resource::meta(item);
            let mut row = Vec::new();
            if all_namespaces {
                row.push(meta.namespace.clone().unwrap_or_default());
            }
            row.push(meta.name.clone().unwrap_or_default());
            let Some(q) = item.get() else {
                row.extend(["-", "unreadable", "-", "-"].map(String::from));
                return row;
            };
            let st = q.status.clone().unwrap_or_default();
            let newest = st.runs.first();
            row.extend([
                q.strategy()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                newest.map(result).unwrap_or_else(|| "-".into()),
                newest
                    .and_then(|r| r.finished.as_ref())
                    .map(|f| age(seconds(f.0, now)))
                    .unwrap_or_else(|| "-".into()),
                st.created_run.to_string(),
            ]);
            row
        })
        .collect();
    let mut header = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "STRATEGY", "LAST RUN", "FINISHED", "RUNS"]);
    table(&header, &rows)
}

/// One line per listed object that cannot be read: its name and where the mistake is (never the
/// value found there).
pub fn unreadable_notes(qjobs: &[Lenient<QuarksJob>]) -> Vec<String> {
    qjobs
        .iter()
        .filter_map(|item| {
            let meta = kube::Resource::meta(item);
            item.error().map(|e| {
                format!(
                    "warning: quarksjob {}/{} cannot be read: {e}",
                    meta.namespace.as_deref().unwrap_or_default(),
                    meta.name.as_deref().unwrap_or_default()
                )
            })
        })
        .collect()
}

/// A log line as `kubectl logs --prefix` prints it: `[pod/<pod>/<container>] <line>`.
pub fn log_line(pod: &str, container: &str, line: &str) -> String {
    format!("[pod/{pod}/{container}] {line}")
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;

//! The layers of `src/` (docs/architecture.md), checked on the source text: every top-level
//! module has a layer, imports only its own layer and the ones below, the module graph has no
//! cycle, and the core does no I/O. Plain `cargo test` runs it, so CI does.
//!
//! The scan is textual: comments and string literals are dropped, then every `crate::` path
//! (including `use crate::{a, b::c}` groups) is an edge from the file's top-level module to the
//! path's first segment. Items re-exported at the crate root (`pub use error::{Error, Result}` in
//! lib.rs) count as their module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may import its own layer and the ones below it.
const LAYERS: &[(&str, &[&str])] = &[
    ("core", &["core"]),
    ("runtime", &["runtime", "metrics", "telemetry"]),
    (
        "features",
        &[
            "reconcile",
            "webhook",
            "certs",
            "leader",
            "persist",
            "health",
            "plugin",
        ],
    ),
    ("wiring", &["operator", "error", "cli"]),
];

/// Paths the core must not use: the kube client and runtime, async runtimes, servers, TLS.
const IO_IN_CORE: &[&str] = &[
    "kube::Api",
    "kube::api",
    "kube::Client",
    "kube::client",
    "kube::config",
    "kube::runtime",
    "kube_client",
    "kube_runtime",
    "tokio",
    "hyper",
    "axum",
    "reqwest",
    "rustls",
    "tower",
    "std::fs",
    "std::net",
    "std::process",
];

/// A `.rs` file of `src/` with its comments and string literals blanked out.
struct Source {
    /// Path below `src/`.
    path: String,
    /// The top-level module it belongs to (`None` for lib.rs and main.rs).
    module: Option<String>,
    code: String,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn sources(root: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let first = rel.split('/').next().unwrap();
            let first = first.strip_suffix(".rs").unwrap_or(first);
            let module = (!matches!(first, "lib" | "main")).then(|| first.to_string());
            let code = strip(&std::fs::read_to_string(&path).unwrap());
            Source {
                path: rel,
                module,
                code,
            }
        })
        .collect()
}

/// `text` without comments, string literals and char literals (each replaced by a space), so
/// that only code is scanned.
fn strip(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        match c[i] {
            '/' if next == Some('/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            'r' if (next == Some('"') || next == Some('#'))
                && !c[..i]
                    .last()
                    .is_some_and(|p| p.is_alphanumeric() || *p == '_') =>
            {
                // a raw string r"…", r#"…"#, …
                let mut j = i + 1;
                let mut hashes = 0;
                while c.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if c.get(j) != Some(&'"') {
                    out.push(c[i]);
                    i += 1;
                    continue;
                }
                j += 1;
                loop {
                    if j >= c.len() {
                        break;
                    }
                    if c[j] == '"' && (1..=hashes).all(|k| c.get(j + k) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                i = j;
                out.push(' ');
            }
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    i += if c[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push(' ');
            }
            '\'' => {
                // a char literal ('x', '\n', '\''), or a lifetime ('a), which is kept
                if next == Some('\\') {
                    i += 2;
                    while i < c.len() && c[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                    out.push(' ');
                } else if c.get(i + 2) == Some(&'\'') {
                    i += 3;
                    out.push(' ');
                } else {
                    out.push('\'');
                    i += 1;
                }
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    out
}

/// The paths written after `prefix` (e.g. `crate::`), with `{…}` groups expanded one level:
/// `crate::{a, b::c}` gives `a` and `b::c`.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(at) = code[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        // `$crate::` and `foo_crate::` are other paths
        if start > 0 && {
            let p = bytes[start - 1];
            p.is_ascii_alphanumeric() || p == b'_' || p == b'$'
        } {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        out.push(item.trim().to_string());
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(ch);
            }
            out.push(item.trim().to_string());
        } else {
            let path: String = rest
                .chars()
                .take_while(|ch| ch.is_alphanumeric() || *ch == '_' || *ch == ':')
                .collect();
            out.push(path);
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

/// `code` without its `#[cfg(test)] mod … { … }` blocks (tests may read files).
fn without_tests(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find(['{', ';']) else {
            rest = "";
            break;
        };
        if after.as_bytes()[open] == b';' {
            // `#[cfg(test)] mod tests;`: the file is scanned on its own
            rest = &after[open + 1..];
            continue;
        }
        let mut depth = 0;
        let mut end = after.len();
        for (i, ch) in after[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn first_segment(path: &str) -> &str {
    path.split("::").next().unwrap().trim()
}

/// Who imports whom among the top-level modules, with the files that make each edge.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn module_graph(sources: &[Source]) -> (BTreeSet<String>, Graph) {
    let modules: BTreeSet<String> = sources.iter().filter_map(|s| s.module.clone()).collect();
    // names the crate root re-exports from a module: `pub use error::{Error, Result};`
    let mut root_items: BTreeMap<String, String> = BTreeMap::new();
    let lib = sources.iter().find(|s| s.path == "lib.rs").unwrap();
    for line in lib.code.lines() {
        if let Some(rest) = line.trim().strip_prefix("pub use ") {
            let module = first_segment(rest).to_string();
            let items = rest[module.len()..].trim_start_matches("::");
            for item in items
                .trim_matches(|c| matches!(c, '{' | '}' | ';'))
                .split(',')
            {
                root_items.insert(item.trim().to_string(), module.clone());
            }
        }
    }
    let mut graph = Graph::new();
    for s in sources {
        let Some(from) = &s.module else { continue };
        graph.entry(from.clone()).or_default();
        for path in paths_after(&s.code, "crate::") {
            let first = first_segment(&path);
            let to = if modules.contains(first) {
                first
            } else if let Some(m) = root_items.get(first) {
                m.as_str()
            } else {
                continue;
            };
            if to != from {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to.to_string())
                    .or_default()
                    .insert(s.path.clone());
            }
        }
    }
    (modules, graph)
}

/// A cycle of the graph, as the modules along it (first = last), or `None`.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| visit(start, graph, &mut done, &mut Vec::new()))
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// Each edge of `cycle`, with the files that make it.
fn describe_cycle(cycle: &[String], graph: &Graph) -> String {
    cycle
        .windows(2)
        .map(|w| {
            let files = &graph[&w[0]][&w[1]];
            format!("  {} -> {}  ({})", w[0], w[1], join(files))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn join(items: &BTreeSet<String>) -> String {
    items.iter().cloned().collect::<Vec<_>>().join(", ")
}

#[test]
fn the_module_graph_has_no_cycle() {
    let (_, graph) = module_graph(&sources(&src_dir()));
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the top-level modules import each other in a cycle: {}\n{}",
            cycle.join(" -> "),
            describe_cycle(&cycle, &graph)
        );
    }
}

#[test]
fn every_module_imports_only_its_layer_and_below() {
    let (modules, graph) = module_graph(&sources(&src_dir()));
    let unplaced: Vec<_> = modules.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "top-level modules without a layer (add them to LAYERS and docs/architecture.md): {unplaced:?}"
    );
    let mut upward = Vec::new();
    for (from, edges) in &graph {
        for (to, files) in edges {
            let (f, t) = (layer_of(from).unwrap(), layer_of(to).unwrap());
            if t > f {
                upward.push(format!(
                    "{from} ({}) imports {to} ({}) in {}",
                    LAYERS[f].0,
                    LAYERS[t].0,
                    join(files)
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports from a lower layer into a higher one:\n{}",
        upward.join("\n")
    );
}

/// What the core (`src/core/`) imports from above it, and the I/O paths it uses.
fn core_violations(sources: &[Source]) -> Vec<String> {
    let mut found = Vec::new();
    for s in sources
        .iter()
        .filter(|s| s.module.as_deref() == Some("core"))
    {
        for path in paths_after(&s.code, "crate::") {
            if first_segment(&path) != "core" {
                found.push(format!("{}: crate::{path}", s.path));
            }
        }
        // `kube::{Api, Client}` counts as `kube::Api` and `kube::Client`; tests may read files
        let code = without_tests(&s.code);
        let mut used = Vec::new();
        for krate in [
            "kube", "tokio", "hyper", "axum", "reqwest", "rustls", "tower", "std",
        ] {
            used.extend(
                paths_after(&code, &format!("{krate}::"))
                    .into_iter()
                    .map(|p| format!("{krate}::{p}")),
            );
        }
        for path in used {
            if IO_IN_CORE
                .iter()
                .any(|io| path == *io || path.starts_with(&format!("{io}::")))
            {
                found.push(format!("{}: {path}", s.path));
            }
        }
    }
    found
}

#[test]
fn the_core_imports_nothing_above_it_and_does_no_io() {
    let found = core_violations(&sources(&src_dir()));
    assert!(
        found.is_empty(),
        "the core (src/core/) must import nothing above it and do no I/O:\n{}",
        found.join("\n")
    );
}

/// The checks above would see a violation: a made-up tree with a cycle and a core that uses the
/// kube client and a feature module.
#[test]
fn the_checks_see_cycles_and_io_in_a_made_up_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |path: &str, text: &str| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "lib.rs",
        "pub mod core;\npub mod webhook;\npub use error::{Error, Result};\n",
    );
    write(
        "core/mod.rs",
        "// crate::webhook in a comment is no import\nconst S: &str = \"crate::webhook\";\n\
         use kube::{Client, api::Api};\nuse crate::{webhook::x, core::y};\n\
         #[cfg(test)]\nmod tests {\n    fn read() { std::fs::read(\"f\"); }\n}\n",
    );
    write(
        "webhook/mod.rs",
        "use crate::core::api;\nfn f() -> crate::Error {}\n",
    );
    write("error.rs", "use crate::webhook::WebhookError;\n");
    let sources = sources(root);
    let (_, graph) = module_graph(&sources);
    let cycle = find_cycle(&graph).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert!(cycle.len() >= 3, "{cycle:?}");
    assert!(graph["core"].contains_key("webhook"));
    assert!(
        graph["webhook"].contains_key("error"),
        "crate::Error is error's"
    );
    assert_eq!(
        core_violations(&sources),
        [
            "core/mod.rs: crate::webhook::x",
            "core/mod.rs: kube::Client",
            "core/mod.rs: kube::api::Api",
        ],
        "the comment and the string are not code; the core may use itself"
    );
}

//! The output files of one run (reading is I/O, the checks are pure): which containers have
//! output, that mapped file names stay inside their container's directory, and reading and
//! checking every file into planned Secrets before anything is written.

use std::collections::BTreeSet;
use std::path::{Component, Path};

use k8s_openapi::api::core::v1::Pod;
use tracing::warn;

use crate::core::api::Output;
use crate::core::api::labels::ENV_REMOTE_ID;

use super::PersistError;
use super::parse::MAX_FILE_BYTES;
use super::plan::{self, PlannedSecret};
use super::wait::{self, AwaitedContainer, OutputVerdict};
use crate::core::api::labels::OUTPUT_PERSIST_CONTAINER;

/// A mapped file name must stay inside its container's output directory.
fn check_file_name(file: &str) -> Result<(), &'static str> {
    let path = Path::new(file);
    let inside = path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if file.is_empty() || !inside {
        return Err("is not a relative path inside the container's output directory");
    }
    Ok(())
}

fn remote_id(pod: &Pod, container: &str) -> Option<String> {
    let c = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == container)?;
    c.env
        .iter()
        .flatten()
        .find(|e| e.name == ENV_REMOTE_ID)
        .and_then(|e| e.value.clone())
}

/// The containers of the pod with an `outputMap` entry (other containers are not waited for).
pub fn targets(
    pod: &Pod,
    pod_ref: &str,
    output: &Output,
) -> Result<Vec<AwaitedContainer>, PersistError> {
    let containers: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| c.name.as_str())
        .collect();
    for name in output
        .output_map
        .keys()
        .filter(|n| !containers.contains(&n.as_str()))
    {
        warn!("outputMap names container '{name}', which pod '{pod_ref}' does not have");
    }
    let mut problems = Vec::new();
    let mut found = Vec::new();
    for name in containers
        .into_iter()
        .filter(|n| *n != OUTPUT_PERSIST_CONTAINER)
    {
        let Some(files) = output.output_map.get(name) else {
            continue;
        };
        for file in files.keys() {
            if let Err(e) = check_file_name(file) {
                problems.push(format!("container '{name}', file '{file}' {e}"));
            }
        }
        found.push(AwaitedContainer {
            container: name.to_string(),
            files: files.keys().cloned().collect(),
        });
    }
    if !problems.is_empty() {
        return Err(PersistError::InvalidOutput {
            pod: pod_ref.to_string(),
            problems,
        });
    }
    Ok(found)
}

fn read_output(path: &Path) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot be read: {e}"))?
        .len();
    if size > MAX_FILE_BYTES as u64 {
        return Err(format!(
            "is {size} bytes, more than the {MAX_FILE_BYTES} bytes (1 MiB) a Secret can hold"
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))
}

/// Read and check every file of every container to be written; any problem in any file fails
/// the run before a single Secret is written.
pub fn plan_all(
    pod: &Pod,
    pod_ref: &str,
    output: &Output,
    decided: &[(String, OutputVerdict)],
    dir: &Path,
) -> Result<Vec<PlannedSecret>, PersistError> {
    let mut planned = Vec::new();
    let mut problems = Vec::new();
    for (container, readiness) in decided {
        if !matches!(readiness, OutputVerdict::Write { .. }) {
            continue;
        }
        let remote_id = remote_id(pod, container);
        for (file, options) in &output.output_map[container] {
            let path = wait::file_path(dir, container, file);
            let result = read_output(&path).and_then(|bytes| {
                plan::plan_file(
                    output,
                    container,
                    remote_id.as_deref(),
                    file,
                    options,
                    &bytes,
                )
                .map_err(|e| e.to_string())
            });
            match result {
                Ok(p) => planned.extend(p),
                Err(reason) => problems.push(format!(
                    "container '{container}', file '{}' {reason}",
                    path.display()
                )),
            }
        }
    }
    let mut seen = BTreeSet::new();
    for p in &planned {
        if !seen.insert((p.name.as_str(), p.versioned)) {
            problems.push(format!(
                "secret '{}' would be written twice (last from container '{}', file '{}')",
                p.name, p.container, p.file
            ));
        }
    }
    if !problems.is_empty() {
        return Err(PersistError::InvalidOutput {
            pod: pod_ref.to_string(),
            problems,
        });
    }
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_stay_inside_the_output_directory() {
        for ok in ["output.json", "sub/dir/out.json", "./out.json"] {
            assert!(check_file_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../other/out.json", "a/../../b"] {
            assert!(check_file_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_mapped_containers_are_targets() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "mapped", "env": [{"name": "REMOTE_ID", "value": "r1"}]},
                {"name": "unmapped"},
                {"name": "output-persist"},
            ]},
        }))
        .unwrap();
        let output: Output = serde_json::from_value(serde_json::json!({"outputMap": {
            "mapped": {"o.json": {"name": "s"}},
            "output-persist": {"x.json": {"name": "x"}},
            "absent": {"a.json": {"name": "a"}},
        }}))
        .unwrap();
        let t = targets(&pod, "n/p", &output).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].container.as_str(), t[0].files.as_slice()),
            ("mapped", &["o.json".to_string()][..])
        );
        assert_eq!(remote_id(&pod, "mapped").as_deref(), Some("r1"));
        assert_eq!(remote_id(&pod, "unmapped"), None);

        let bad: Output = serde_json::from_value(
            serde_json::json!({"outputMap": {"mapped": {"../o.json": {"name": "s"}}}}),
        )
        .unwrap();
        let err = targets(&pod, "n/p", &bad).unwrap_err().to_string();
        assert!(
            err.contains("container 'mapped', file '../o.json' is not a relative path"),
            "{err}"
        );
    }
}

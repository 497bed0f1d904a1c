//! The `persist-output` I/O shell: find the pod and its QuarksJob, wait for the output, check
//! every file, then write the Secrets and prune old versions.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use crate::api::labels::{ENV_REMOTE_ID, LABEL_QJOB_NAME};
use crate::api::{Output, QuarksJob};

use super::parse::MAX_FILE_BYTES;
use super::plan::{self, PlannedSecret};
use super::secrets::{self, Outcome};
use super::wait::{self, Readiness, Target};
use super::{CONTAINER_NAME, PersistError, retention};

/// What one run needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod_name: String,
    /// Where each container's files are, as `<dir>/<container>/<file>`.
    pub output_dir: PathBuf,
    /// Longest wait for the output; `None` waits as long as the containers run.
    pub timeout: Option<Duration>,
    /// Versions kept per versioned secret; 0 keeps all.
    pub versioned_secret_history: usize,
}

/// The pod name from the hostname (upstream's only source; wrong when the pod sets
/// `spec.hostname`, hence `POD_NAME` first).
pub fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn kube_err(action: String) -> impl FnOnce(kube::Error) -> PersistError {
    move |source| PersistError::Kube {
        action,
        source: Box::new(source),
    }
}

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
fn targets(pod: &Pod, pod_ref: &str, output: &Output) -> Result<Vec<Target>, PersistError> {
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
    for name in containers.into_iter().filter(|n| *n != CONTAINER_NAME) {
        let Some(files) = output.output_map.get(name) else {
            continue;
        };
        for file in files.keys() {
            if let Err(e) = check_file_name(file) {
                problems.push(format!("container '{name}', file '{file}' {e}"));
            }
        }
        found.push(Target {
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
fn plan_all(
    pod: &Pod,
    pod_ref: &str,
    output: &Output,
    decided: &[(String, Readiness)],
    dir: &Path,
) -> Result<Vec<PlannedSecret>, PersistError> {
    let mut planned = Vec::new();
    let mut problems = Vec::new();
    for (container, readiness) in decided {
        if !matches!(readiness, Readiness::Write { .. }) {
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

/// Run `persist-output` with a client; returns the one-line summary.
pub async fn persist(client: Client, s: &Settings) -> Result<String, PersistError> {
    let ns = s.namespace.as_str();
    let pod_ref = format!("{ns}/{}", s.pod_name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = pods
        .get(&s.pod_name)
        .await
        .map_err(kube_err(format!("get pod '{pod_ref}'")))?;
    let qjob_name = pod.labels().get(LABEL_QJOB_NAME).cloned().ok_or_else(|| {
        PersistError::NotAQuarksJobPod {
            pod: pod_ref.clone(),
            label: LABEL_QJOB_NAME,
        }
    })?;
    let qjobs: Api<QuarksJob> = Api::namespaced(client.clone(), ns);
    let qjob = qjobs
        .get(&qjob_name)
        .await
        .map_err(kube_err(format!("get QuarksJob '{ns}/{qjob_name}'")))?;
    let Some(output) = qjob.spec.output.as_ref() else {
        return Ok(format!(
            "QuarksJob '{ns}/{qjob_name}' has no output: nothing to persist for pod '{pod_ref}'"
        ));
    };
    let targets = targets(&pod, &pod_ref, output)?;
    if targets.is_empty() {
        return Ok(format!(
            "no container of pod '{pod_ref}' has an outputMap entry: nothing to persist"
        ));
    }
    info!(
        "waiting for the output of {} container(s) of pod '{pod_ref}'",
        targets.len()
    );
    let decided = wait::wait_for_output(
        &pods,
        &s.pod_name,
        &pod_ref,
        &targets,
        &s.output_dir,
        output.write_on_failure,
        s.timeout,
    )
    .await?;
    let decided: Vec<(String, Readiness)> = decided.into_iter().collect();
    let planned = plan_all(&pod, &pod_ref, output, &decided, &s.output_dir)?;

    let secrets_api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let plain_owner = secrets::owner_reference(&qjob, false);
    let version_owner = secrets::owner_reference(&qjob, true);
    let mut written = Vec::new();
    let mut report = Vec::new();
    for p in &planned {
        let result = if p.versioned {
            secrets::write_versioned(&secrets_api, ns, p, version_owner.as_ref()).await
        } else {
            secrets::write_plain(&secrets_api, ns, p, plain_owner.as_ref()).await
        };
        let outcome = result.map_err(|source| PersistError::Write {
            pod: pod_ref.clone(),
            container: p.container.clone(),
            file: p.file.clone(),
            secret: format!("{ns}/{}", p.name),
            written: written.clone().into_boxed_slice(),
            source: Box::new(source),
        })?;
        let (secret, version, verb) = match outcome {
            Outcome::Created => (p.name.clone(), None, "created"),
            Outcome::Updated => (p.name.clone(), None, "updated"),
            Outcome::NewVersion(n) => (format!("{}-v{n}", p.name), Some(n), "created"),
            Outcome::Unchanged(n) => (format!("{}-v{n}", p.name), Some(n), "unchanged"),
        };
        let line = format!("'{secret}' {verb}");
        // one line per secret, naming it as namespace/name (and its version), for log-based
        // accounting of what persist-output wrote
        info!(
            object = %format!("{ns}/{qjob_name}"),
            secret = %format!("{ns}/{secret}"),
            version,
            outcome = verb,
            "secret '{ns}/{secret}' {verb} from file '{}' of container '{}' in pod '{pod_ref}'",
            p.file,
            p.container
        );
        if verb != "unchanged" {
            written.push(format!("{ns}/{secret}"));
        }
        report.push(line);
    }

    let prefixes: BTreeSet<&str> = planned
        .iter()
        .filter(|p| p.versioned)
        .map(|p| p.name.as_str())
        .collect();
    for prefix in prefixes {
        let pruned = retention::prune(&secrets_api, &pods, prefix, s.versioned_secret_history)
            .await
            .map_err(|source| PersistError::Prune {
                secret: format!("{ns}/{prefix}"),
                source: Box::new(source),
            })?;
        if !pruned.is_empty() {
            report.push(format!(
                "pruned {}",
                pruned
                    .iter()
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    for (container, r) in &decided {
        if let Readiness::Skip { exit_code } = r {
            report.push(format!(
                "container '{container}' skipped (exit code {exit_code}, writeOnFailure is false)"
            ));
        }
    }
    if report.is_empty() {
        report.push("nothing to write".into());
    }
    Ok(format!(
        "persisted output of pod '{pod_ref}' (QuarksJob '{ns}/{qjob_name}'): {}",
        report.join(", ")
    ))
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

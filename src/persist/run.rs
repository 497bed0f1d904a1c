//! The `persist-output` I/O shell: find the pod and its QuarksJob, wait for the output, check
//! every file, check that every Secret may be written, then write them (all or nothing) and
//! prune old versions. A run that fails after the QuarksJob is known leaves a Warning event on
//! it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::runtime::events::Reporter;
use kube::{Api, Client, Resource, ResourceExt};
use tracing::info;

use crate::core::api::QuarksJob;
use crate::core::api::labels::LABEL_QJOB_NAME;
use crate::runtime::events::{self, Recorder};

use super::files::{plan_all, targets};
use super::ownership::Owner;
use super::secrets::Outcome;
use super::wait::{self, OutputVerdict};
use super::write::{Done, Writer};
use super::{PersistError, retention, retry};

/// Event reason: a Secret of the output is not this QuarksJob's; nothing was written.
pub const OUTPUT_REFUSED: &str = "OutputRefused";
/// Event reason: persist-output failed for another reason (the message says which).
pub const OUTPUT_FAILED: &str = "OutputFailed";
/// The `reportingController` of persist-output's events.
pub const REPORTING_CONTROLLER: &str = "quarks-job-persist-output";

/// What one run needs to know.
#[derive(Debug, Clone)]
pub struct PersistSettings {
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

/// Run `persist-output` with a client; returns the one-line summary.
pub async fn persist(client: Client, s: &PersistSettings) -> Result<String, PersistError> {
    let ns = s.namespace.as_str();
    let pod_ref = format!("{ns}/{}", s.pod_name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let action = format!("get pod '{pod_ref}'");
    let pod = retry::call(&action, || pods.get(&s.pod_name))
        .await
        .map_err(kube_err(action))?;
    let qjob_name = pod.labels().get(LABEL_QJOB_NAME).cloned().ok_or_else(|| {
        PersistError::NotAQuarksJobPod {
            pod: pod_ref.clone(),
            label: LABEL_QJOB_NAME,
        }
    })?;
    let qjobs: Api<QuarksJob> = Api::namespaced(client.clone(), ns);
    let action = format!("get QuarksJob '{ns}/{qjob_name}'");
    let qjob = retry::call(&action, || qjobs.get(&qjob_name))
        .await
        .map_err(kube_err(action))?;
    let result = persist_for(&client, s, &pods, &pod, &pod_ref, &qjob).await;
    if let Err(e) = &result {
        let reason = match e {
            PersistError::Refused { .. } => OUTPUT_REFUSED,
            _ => OUTPUT_FAILED,
        };
        let reporter = Reporter {
            controller: REPORTING_CONTROLLER.into(),
            instance: Some(s.pod_name.clone()),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        let note = format!("persist-output of pod '{pod_ref}' failed: {e}");
        events::publish(
            &recorder,
            &qjob.object_ref(&()),
            events::EventType::Warning,
            reason,
            "PersistOutput",
            note,
        )
        .await;
    }
    result
}

/// The part of a run that happens once the QuarksJob is known.
async fn persist_for(
    client: &Client,
    s: &PersistSettings,
    pods: &Api<Pod>,
    pod: &Pod,
    pod_ref: &str,
    qjob: &QuarksJob,
) -> Result<String, PersistError> {
    let ns = s.namespace.as_str();
    let qjob_name = qjob.name_any();
    let Some(output) = qjob.spec.output.as_ref() else {
        return Ok(format!(
            "QuarksJob '{ns}/{qjob_name}' has no output: nothing to persist for pod '{pod_ref}'"
        ));
    };
    let targets = targets(pod, pod_ref, output)?;
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
        pods,
        &s.pod_name,
        pod_ref,
        &targets,
        &s.output_dir,
        output.write_on_failure,
        s.timeout,
    )
    .await?;
    let decided: Vec<(String, OutputVerdict)> = decided.into_iter().collect();
    let planned = plan_all(pod, pod_ref, output, &decided, &s.output_dir)?;

    let owner = Owner::of(qjob).ok_or_else(|| PersistError::Kube {
        action: format!("read the uid of QuarksJob '{ns}/{qjob_name}'"),
        source: Box::new(kube::Error::Api(
            kube::core::Status::failure("no metadata.uid", "Invalid")
                .with_code(500)
                .boxed(),
        )),
    })?;
    let secrets_api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let writer = Writer {
        api: &secrets_api,
        owner: &owner,
    };
    let steps = match writer.preflight(&planned).await {
        Ok(steps) => steps,
        Err(Ok(refusals)) => {
            return Err(PersistError::Refused {
                pod: pod_ref.to_string(),
                refusals,
            });
        }
        Err(Err(e)) => {
            return Err(PersistError::Preflight {
                pod: pod_ref.to_string(),
                source: Box::new(e),
            });
        }
    };
    let mut done: Vec<Done> = Vec::new();
    let mut report = Vec::new();
    for (p, step) in planned.iter().zip(steps) {
        let (outcome, undo) = match writer.apply(p, step).await {
            Ok(ok) => ok,
            Err(source) => {
                let rollback = writer.rollback(&done).await;
                return Err(PersistError::Write {
                    pod: pod_ref.to_string(),
                    container: p.container.clone(),
                    file: p.file.clone(),
                    secret: format!("{ns}/{}", p.name),
                    rollback: Box::new(rollback),
                    source: Box::new(source),
                });
            }
        };
        done.push(undo);
        let (secret, version, verb) = match outcome {
            Outcome::Created => (p.name.clone(), None, "created"),
            Outcome::Updated => (p.name.clone(), None, "updated"),
            Outcome::Unchanged => (p.name.clone(), None, "unchanged"),
            Outcome::NewVersion(n) => (format!("{}-v{n}", p.name), Some(n), "created"),
            Outcome::UnchangedVersion(n) => (format!("{}-v{n}", p.name), Some(n), "unchanged"),
        };
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
        report.push(format!("'{secret}' {verb}"));
    }

    let prefixes: BTreeSet<&str> = planned
        .iter()
        .filter(|p| p.versioned)
        .map(|p| p.name.as_str())
        .collect();
    for prefix in prefixes {
        let pruned = retention::prune(client, &writer, prefix, s.versioned_secret_history)
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
        if let OutputVerdict::Skip { exit_code } = r {
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

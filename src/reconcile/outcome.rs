//! Completing a run's record when its Job finished (I/O around [`super::runs`]): the Job's
//! pods (for the pod name and the failing container's exit code) and the metadata of the
//! QuarksJob's Secrets (for the outputs; never their data), then the story's events.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::error::Result;
use super::events::{self, EventType, job_reference, publish_about};
use super::run::QJobRun;
use super::runs;
use crate::core::api::QuarksJobStatus;
use crate::core::api::labels::LABEL_QJOB_NAME;

/// If the record of the finished `job` waits for its outcome, complete it in `st` and say what
/// the run wrote (`OutputWritten`). Returns whether the record changed.
pub async fn complete(
    t: &QJobRun<'_>,
    st: &mut QuarksJobStatus,
    job: &Job,
    now: Timestamp,
) -> Result<bool> {
    let job_name = job.name_any();
    if !runs::awaits_outcome(&st.runs, &job_name) {
        return Ok(false);
    }
    let owner = t.owner();
    let pods: Api<Pod> = Api::namespaced(t.ctx.client.clone(), owner.namespace);
    let lp =
        ListParams::default().labels(&format!("controller-uid={}", job.uid().unwrap_or_default()));
    let action = format!("list pods of Job '{job_name}'");
    let pods = t.ctx.api(&t.object, &action, pods.list(&lp)).await?.items;
    let Some(outcome) = runs::outcome(job, &pods) else {
        return Ok(false);
    };
    let secrets: Api<Secret> = Api::namespaced(t.ctx.client.clone(), owner.namespace);
    let lp = ListParams::default().labels(&format!("{LABEL_QJOB_NAME}={}", owner.name));
    let metas: Vec<_> = t
        .ctx
        .api(&t.object, "list output Secrets", secrets.list_metadata(&lp))
        .await?
        .items
        .into_iter()
        .map(|s| s.metadata)
        .collect();
    let from = st
        .runs
        .iter()
        .find(|r| r.job_name == job_name)
        .and_then(|r| r.started.as_ref().map(|s| s.0));
    let after = runs::previous_end(&st.runs, &job_name);
    let outputs = runs::outputs(
        &metas,
        owner.name,
        (from, after),
        outcome.finished.unwrap_or(now),
    );
    let written = outputs.0.clone();
    let changed = runs::merge_outcome(&mut st.runs, &job_name, outcome, outputs, now);
    if changed && !written.is_empty() {
        let list: Vec<String> = written
            .iter()
            .map(|o| match o.version {
                Some(v) => format!("'{}' (version {v})", o.name),
                None => format!("'{}'", o.name),
            })
            .collect();
        let note = format!(
            "Job '{job_name}' of '{}' wrote Secret{} {}",
            t.object,
            if list.len() == 1 { "" } else { "s" },
            list.join(", ")
        );
        publish_about(
            &t.ctx.recorder,
            &t.regarding,
            Some(&job_reference(job)),
            EventType::Normal,
            events::OUTPUT_WRITTEN,
            "Complete",
            note,
        )
        .await;
    }
    Ok(changed)
}

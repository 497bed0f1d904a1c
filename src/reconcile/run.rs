//! Steps 1–3 of a run (see [`super::state`]): create the Job, consume the trigger, record the
//! run; one function per write (`create_job`, `set_strategy`, `record`). The Job is the only
//! write before the Job exists. The QuarksJob writes are merge patches of the fields they are
//! about; consuming the trigger carries the `resourceVersion` it was decided on, so a decision
//! made on a stale read fails with a conflict and is made again (the Job it created is then
//! found by the next reconcile: the run is pending and is resumed).

use futures::FutureExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use serde_json::{Value, json};

use super::context::{Context, is_already_exists, kube_error};
use super::error::{Error, Result};
use super::events::{self, EventType, job_named, publish, publish_about};
use super::job::{JobPhase, Owner, build_job};
use super::runs;
use super::state::{RunPlan, RunReason};
use super::status;
use crate::core::api::{QuarksJob, QuarksJobStatus, Strategy};
use crate::core::lenient::decode;

/// The QuarksJob being run, as read at the start of the reconcile (kept up to date with the
/// answers of the writes).
pub struct QJobRun<'a> {
    /// Shared context.
    pub ctx: &'a Context,
    /// The QuarksJob (typed).
    pub qjob: QuarksJob,
    /// The raw `spec.template`.
    pub template: Value,
    /// `namespace/name`.
    pub object: String,
    /// Reference for events.
    pub regarding: ObjectReference,
}

impl QJobRun<'_> {
    /// Namespace, name, uid.
    pub fn owner(&self) -> Owner<'_> {
        Owner {
            name: self.qjob.metadata.name.as_deref().unwrap_or_default(),
            namespace: self.qjob.metadata.namespace.as_deref().unwrap_or_default(),
            uid: self.qjob.metadata.uid.as_deref().unwrap_or_default(),
        }
    }

    fn api(&self) -> Api<QuarksJob> {
        Api::namespaced(self.ctx.client.clone(), self.owner().namespace)
    }

    fn resource_version(&self) -> String {
        self.qjob.resource_version().unwrap_or_default()
    }

    /// Merge-patch `body` into the status subresource (with the current `resourceVersion` as
    /// precondition if `guarded`); the QuarksJob is updated with the answer.
    pub async fn patch_status(&mut self, what: &str, mut body: Value, guarded: bool) -> Result<()> {
        if guarded {
            body["metadata"] = json!({"resourceVersion": self.resource_version()});
        }
        self.merge_patch(&format!("update status ({what})"), &body, true)
            .await
    }

    /// Set `spec.trigger.strategy` (guarded by the current `resourceVersion`).
    async fn set_strategy(&mut self, to: Strategy) -> Result<()> {
        let body = json!({"metadata": {"resourceVersion": self.resource_version()}, "spec": {"trigger": {"strategy": to}}});
        self.merge_patch(&format!("set 'trigger.strategy={to}'"), &body, false)
            .await
    }

    /// Merge-patch `body` into the QuarksJob (its status subresource if `status`) and keep the
    /// answer's `resourceVersion`. A failure other than a conflict is also an `UpdateError`
    /// event.
    async fn merge_patch(&mut self, action: &str, body: &Value, status: bool) -> Result<()> {
        let name = self.owner().name.to_string();
        let (api, params, patch) = (self.api(), PatchParams::default(), Patch::Merge(body));
        let request = if status {
            api.patch_status(&name, &params, &patch).boxed()
        } else {
            api.patch(&name, &params, &patch).boxed()
        };
        let uid = self.owner().uid.to_string();
        let answer = self.ctx.call(&self.object, action, request).await;
        if !matches!(answer, Ok(Ok(_))) {
            // (a timed-out write may have happened: the cache cannot be trusted any more)
            self.ctx.versions.unsure(&uid);
        }
        match answer? {
            Ok(q) => {
                self.ctx
                    .versions
                    .saw(&uid, q.metadata.resource_version.as_deref());
                self.qjob.metadata.resource_version = q.metadata.resource_version;
                Ok(())
            }
            Err(e) => {
                let err = kube_error(&self.object, action, e);
                if !matches!(err, Error::Conflict { .. }) {
                    let note = format!("Failed to {action} on QuarksJob '{}': {err}", self.object);
                    publish(
                        &self.ctx.recorder,
                        &self.regarding,
                        EventType::Warning,
                        events::UPDATE_ERROR,
                        "Update",
                        note,
                    )
                    .await;
                }
                Err(err)
            }
        }
    }

    /// Run `plan` for the Job `job_name`; `exists` if the Job is already there. `digest` is the
    /// config digest the Job is created from; `start` what goes into the run's record. Returns
    /// after step 3.
    pub async fn run(
        &mut self,
        plan: RunPlan,
        job_name: &str,
        exists: bool,
        digest: Option<String>,
        start: runs::Start,
    ) -> Result<()> {
        let created = if exists {
            false
        } else {
            self.create_job(job_name).await?
        };
        if let Some(to) = plan.flip_to {
            self.set_strategy(to).await?;
        }
        self.record(plan.run, job_name, digest, &start).await?;
        // (the story, after the writes: events never delay the Job)
        self.announce_start(&plan, job_name, &start).await;
        if created {
            let note = format!("Created errand job '{job_name}' for '{}'", self.object);
            publish_about(
                &self.ctx.recorder,
                &self.regarding,
                Some(&job_named(&self.regarding, job_name)),
                EventType::Normal,
                events::CREATE_JOB,
                "CreateJob",
                note,
            )
            .await;
        } else {
            self.already_running(job_name).await;
        }
        Ok(())
    }

    /// Say why run `plan.run` starts: `Triggered` (by whom, if known) or `ConfigChanged` (which
    /// references), naming the run's Job.
    async fn announce_start(&self, plan: &RunPlan, job_name: &str, start: &runs::Start) {
        let (reason, note) = if plan.reason == RunReason::ConfigChange {
            let what = if start.changed.is_empty() {
                String::new()
            } else {
                format!(" ({})", start.changed.join(", "))
            };
            let note = format!(
                "Referenced configuration of '{}'{what} changed, running it again (run {}, job '{job_name}')",
                self.object, plan.run
            );
            (events::CONFIG_CHANGED, note)
        } else {
            let by = start
                .triggered_by
                .as_deref()
                .map(|m| format!(" by {m}"))
                .unwrap_or_default();
            let note = if start.trigger == "resumed" {
                format!(
                    "Run {} of '{}' resumed (started before, its Job not recorded yet), job '{job_name}'",
                    plan.run, self.object
                )
            } else {
                format!(
                    "Run {} of '{}' triggered (strategy '{}'{by}), job '{job_name}'",
                    plan.run, self.object, start.trigger
                )
            };
            (events::TRIGGERED, note)
        };
        publish_about(
            &self.ctx.recorder,
            &self.regarding,
            Some(&job_named(&self.regarding, job_name)),
            EventType::Normal,
            reason,
            "CreateJob",
            note,
        )
        .await;
    }

    /// The Job of this run exists already: say so (upstream's `AlreadyRunning`).
    async fn already_running(&self, job_name: &str) {
        let note = format!(
            "Skip '{}': job '{job_name}' already exists (already running)",
            self.object
        );
        publish_about(
            &self.ctx.recorder,
            &self.regarding,
            Some(&job_named(&self.regarding, job_name)),
            EventType::Normal,
            events::ALREADY_RUNNING,
            "CreateJob",
            note,
        )
        .await;
    }

    /// Step 1: create the Job `job_name`. Returns whether it was created now (false:
    /// `AlreadyExists`, created before).
    async fn create_job(&self, job_name: &str) -> Result<bool> {
        let owner = self.owner();
        let job = build_job(&owner, &self.template, job_name);
        let obj: DynamicObject = decode(&job).map_err(|source| Error::Decode {
            object: self.object.clone(),
            source,
        })?;
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.ctx.client.clone(),
            owner.namespace,
            &ApiResource::erase::<Job>(&()),
        );
        let action = format!("create Job '{job_name}'");
        match self
            .ctx
            .call(
                &self.object,
                &action,
                api.create(&PostParams::default(), &obj),
            )
            .await?
        {
            Ok(_) => {
                self.ctx.config.metrics.jobs.created.inc();
                self.ctx.jobs().created(owner.uid, job_name);
                Ok(true)
            }
            Err(e) if is_already_exists(&e) => {
                self.ctx.jobs().created(owner.uid, job_name);
                Ok(false)
            }
            Err(e) => {
                let note = format!(
                    "Failed to create job '{job_name}' for '{}': {e}",
                    self.object
                );
                publish_about(
                    &self.ctx.recorder,
                    &self.regarding,
                    Some(&job_named(&self.regarding, job_name)),
                    EventType::Warning,
                    events::CREATE_JOB_ERROR,
                    "CreateJob",
                    note,
                )
                .await;
                Err(kube_error(&self.object, &action, e))
            }
        }
    }

    /// Step 3: the Job of run `run` exists; also marks the reconcile as succeeded so far (the
    /// `Reconciled` condition), which usually spares the reconcile's closing status patch.
    async fn record(
        &mut self,
        run: i64,
        job_name: &str,
        digest: Option<String>,
        start: &runs::Start,
    ) -> Result<()> {
        let now = Timestamp::now();
        let generation = self.qjob.metadata.generation;
        let mut st: QuarksJobStatus = self.qjob.status.clone().unwrap_or_default();
        status::set_references(&mut st.conditions, &[], generation, now);
        status::set_job_phase(
            &mut st.conditions,
            job_name,
            &JobPhase::Running,
            generation,
            now,
        );
        status::set_reconciled(&mut st.conditions, Ok(()), generation, now);
        st.requested_run = st.requested_run.max(run);
        st.created_run = run;
        st.last_job_name = Some(job_name.to_string());
        st.last_reconcile = Some(Time(now));
        if digest.is_some() {
            st.config_digest = digest;
        }
        st.observed_generation = generation;
        // the run history (`runs`): one small hook
        let keep = self.ctx.config.run_history;
        runs::record(&mut st.runs, runs::started(run, job_name, start, now), keep);
        // (a merge patch: references gone are written as null)
        let mut refs_patch = serde_json::Map::new();
        if let Some(refs) = start.reference_digests.clone() {
            for gone in st
                .reference_digests
                .keys()
                .filter(|k| !refs.contains_key(*k))
            {
                refs_patch.insert(gone.clone(), Value::Null);
            }
            for (k, v) in &refs {
                refs_patch.insert(k.clone(), json!(v));
            }
            st.reference_digests = refs;
        }
        let body = json!({"status": {
            "runs": st.runs,
            "referenceDigests": refs_patch,
            "requestedRun": st.requested_run,
            "createdRun": st.created_run,
            "lastJobName": st.last_job_name,
            "lastReconcile": st.last_reconcile,
            "configDigest": st.config_digest,
            "conditions": st.conditions,
            "observedGeneration": st.observed_generation,
        }});
        self.patch_status("record created Job", body, false).await?;
        self.qjob.status = Some(st);
        Ok(())
    }
}

//! One reconcile of one QuarksJob: gate on the namespace, read it fresh, decide and run the
//! trigger, then look after its Jobs (cleanup of succeeded ones, status of the last one).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::debug;

use super::cleanup::{cleanup_succeeded, prune_history};
use super::context::{Context, Watched};
use super::digest::{Resolved, config_digest, missing};
use super::error::{Error, Result, backoff};
use super::events::{self, EventType, job_reference, publish, publish_about};
use super::job::{JobPhase, phase};
use super::mapping::pod_spec;
use super::outcome;
use super::refs::resolve;
use super::report::{self, Subject};
use super::run::QJobRun;
use super::runs;
use super::state::{ConfigState, Decision, TriggerInput, decide, needs_references};
use super::status;
use crate::core::api::{QuarksJob, QuarksJobStatus};
use crate::core::job_names::{check_qjob_name, job_name};
use crate::core::lenient::decode;
use crate::core::podrefs;

/// Safety-net resync of every QuarksJob (watches drive everything; this catches the unexpected).
pub const RESYNC: Duration = Duration::from_secs(600);

/// Reconcile one QuarksJob. A failure is shown on the QuarksJob ([`report`]); one that cannot
/// work as written (a spec that cannot be read, a name that cannot work) is not retried: only a
/// change of it, which triggers a reconcile by itself, can help.
pub async fn reconcile(obj: Arc<Watched>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let object = format!("{namespace}/{name}");
    debug!(%object, "reconciling");
    // (the namespace cache is filled before the controller starts)
    if !ctx.is_monitored(&namespace) {
        debug!(%object, "namespace is not monitored, ignoring");
        return Ok(Action::await_change());
    }
    // The cached QuarksJob if it is as new as what this process last read or wrote (its raw
    // template kept, see `watched`); otherwise a fresh read, raw, so that the template keeps
    // the fields the Rust types do not know.
    let (mut subject, read) = match cached(&ctx, &obj, &object) {
        Some(target) => (Subject::of_typed(&target.qjob, &object), Ok(target)),
        None => {
            let Some(raw) = get_raw(&ctx, &namespace, &name, &object).await? else {
                debug!(%object, "QuarksJob is gone");
                if let Some(uid) = obj.meta().uid.as_deref() {
                    ctx.versions.forget(uid);
                }
                return Ok(Action::await_change());
            };
            if raw.metadata.deletion_timestamp.is_some() {
                return Ok(Action::await_change());
            }
            (Subject::of(&raw, &object), read(&ctx, raw, &object))
        }
    };
    let outcome = match read {
        Ok(mut target) => {
            if target.qjob.metadata.deletion_timestamp.is_some() {
                return Ok(Action::await_change());
            }
            let outcome = reconcile_fresh(&mut target).await;
            subject.update(&target.qjob);
            outcome
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(action) => {
            ctx.succeeded(&ObjectRef::from_obj(&*obj));
            Ok(action)
        }
        Err(e) => {
            report::failure(&ctx, &subject, &e).await;
            if e.is_permanent() {
                // (counted here: `error_policy` sees retried failures only)
                ctx.config.metrics.reconcile.failed(e.metric_label());
                ctx.succeeded(&ObjectRef::from_obj(&*obj));
                return Ok(Action::await_change());
            }
            Err(e)
        }
    }
}

/// The cached QuarksJob as the reconcile's [`QJobRun`], if it can stand in for a fresh read: it
/// could be read, and it is not older than what this process last read or wrote
/// ([`super::context::Versions`]).
fn cached<'a>(ctx: &'a Context, obj: &Watched, object: &str) -> Option<QJobRun<'a>> {
    let qjob = obj.get()?;
    let uid = qjob.metadata.uid.as_deref()?;
    if !ctx
        .versions
        .is_current(uid, qjob.metadata.resource_version.as_deref())
    {
        return None;
    }
    check_qjob_name(&qjob.name_any()).ok()?;
    Some(QJobRun {
        ctx,
        regarding: report::reference(&qjob.metadata),
        qjob: qjob.clone(),
        template: obj.template().unwrap_or_else(|| json!({})),
        object: object.to_string(),
    })
}

/// A fresh read of the QuarksJob, raw (`None`: it is gone); remembered as the version last seen.
async fn get_raw(
    ctx: &Context,
    namespace: &str,
    name: &str,
    object: &str,
) -> Result<Option<DynamicObject>> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        namespace,
        &ApiResource::erase::<QuarksJob>(&()),
    );
    let raw = ctx.api(object, "get QuarksJob", api.get_opt(name)).await?;
    if let Some(raw) = &raw
        && let Some(uid) = raw.metadata.uid.as_deref()
    {
        ctx.versions
            .saw(uid, raw.metadata.resource_version.as_deref());
    }
    Ok(raw)
}

/// The QuarksJob read raw, as the reconcile's [`QJobRun`]: it must decode and its name must work.
fn read<'a>(ctx: &'a Context, raw: DynamicObject, object: &str) -> Result<QJobRun<'a>> {
    let template = raw
        .data
        .get("spec")
        .and_then(|s| s.get("template"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let value = serde_json::to_value(&raw).unwrap_or_default();
    let qjob: QuarksJob = decode(&value).map_err(|source| Error::Decode {
        object: object.to_string(),
        source,
    })?;
    check_qjob_name(&qjob.name_any()).map_err(|reason| Error::InvalidName {
        object: object.to_string(),
        reason,
    })?;
    Ok(QJobRun {
        ctx,
        regarding: report::reference(&qjob.metadata),
        qjob,
        template,
        object: object.to_string(),
    })
}

async fn reconcile_fresh(t: &mut QJobRun<'_>) -> Result<Action> {
    let ctx = t.ctx;
    let before: QuarksJobStatus = t.qjob.status.clone().unwrap_or_default();
    let (name, namespace, uid) = {
        let o = t.owner();
        (
            o.name.to_string(),
            o.namespace.to_string(),
            o.uid.to_string(),
        )
    };
    // (from the Job index: no request)
    let owned = ctx.jobs().view(&uid);
    let jobs = &owned.jobs;
    let next_job = job_name(&name, &uid, before.created_run + 1);

    let tracks = t.qjob.spec.update_on_config_change
        && t.qjob.strategy().is_some_and(|s| s.is_auto_errand());
    let mut input = TriggerInput {
        strategy: t.qjob.strategy(),
        requested_run: before.requested_run,
        created_run: before.created_run,
        next_job_exists: owned.has(&next_job),
        update_on_config_change: t.qjob.spec.update_on_config_change,
        config: ConfigState::NotTracked,
        since_last_job: before.last_reconcile.as_ref().map(|lr| since(lr.0)),
        meltdown: ctx.config.meltdown,
    };
    let resolved: Option<Vec<Resolved>> = if needs_references(&input) {
        let refs = pod_spec(&t.qjob)
            .map(podrefs::references)
            .unwrap_or_default();
        Some(resolve(ctx, &t.object, &namespace, &refs).await?)
    } else {
        None
    };
    let digest = resolved.as_deref().map(config_digest);
    if tracks && let Some(d) = &digest {
        input.config = match &before.config_digest {
            None => ConfigState::NoBaseline,
            Some(recorded) if recorded == d => ConfigState::Unchanged,
            Some(_) => ConfigState::Changed,
        };
    }

    let mut st = before.clone();
    let generation = t.qjob.metadata.generation;
    let now = Timestamp::now();
    let mut requeue = RESYNC;
    let mut created_now: Option<String> = None;
    let decision = decide(&input);
    debug!(object = %t.object, ?decision, config = ?input.config, "decided");
    match decision {
        Decision::Run(plan) => {
            let job = job_name(&name, &uid, plan.run);
            let exists = owned.has(&job);
            let missing: Vec<String> = resolved
                .as_deref()
                .map(missing)
                .unwrap_or_default()
                .iter()
                .map(|r| r.describe())
                .collect();
            if !exists && !missing.is_empty() {
                if status::set_references(&mut st.conditions, &missing, generation, now) {
                    let note = format!(
                        "Skip create job '{}': waiting for {}",
                        t.object,
                        missing.join(", ")
                    );
                    publish(
                        &ctx.recorder,
                        &t.regarding,
                        EventType::Normal,
                        events::WAITING_FOR_REFERENCES,
                        "CreateJob",
                        note,
                    )
                    .await;
                }
                let waiting = status::get(&st.conditions, status::REFERENCES_FOUND)
                    .map(|c| since(c.last_transition_time.0));
                requeue = (waiting.unwrap_or_default() / 2)
                    .clamp(Duration::from_secs(1), Duration::from_secs(30));
            } else {
                let start = runs::start_of(
                    plan.reason,
                    input.strategy,
                    t.qjob
                        .metadata
                        .managed_fields
                        .as_deref()
                        .unwrap_or_default(),
                    &before.reference_digests,
                    resolved.as_deref(),
                    tracks,
                );
                t.run(plan, &job, exists, digest.clone(), start).await?;
                st = t.qjob.status.clone().unwrap_or_default();
                created_now = Some(job);
            }
        }
        Decision::AdoptDigest => {
            if resolved.as_deref().is_some_and(|r| missing(r).is_empty()) {
                st.config_digest = digest.clone();
            }
        }
        Decision::Delay(d) => requeue = d.max(Duration::from_millis(100)),
        Decision::Idle => {}
    }

    // Jobs are only looked after when no run is pending (see `state`).
    if st.requested_run <= st.created_run {
        for job in jobs {
            track_job(t, &mut st, job, generation, now).await?;
        }
        let present = |j: &str| owned.has(j) || created_now.as_deref() == Some(j);
        runs::mark_lost(&mut st.runs, present, now);
        let last = st.last_job_name.as_deref();
        // (pods are kept only of succeeded Jobs: none before the first success)
        let kept_pods = st.completed && ctx.needs_pruning(&uid);
        let last_run = (last, st.created_run);
        prune_history(ctx, &t.owner(), &t.regarding, jobs, last_run, kept_pods).await?;
        if let Some(last) = st.last_job_name.clone()
            && !present(&last)
        {
            status::set_job_gone(&mut st.conditions, &last, generation, now);
        }
    }

    st.observed_generation = generation;
    status::set_reconciled(&mut st.conditions, Ok(()), generation, now);
    let written = t.qjob.status.clone().unwrap_or_default();
    if st != written {
        let body = json!({"status": {
            "runs": st.runs,
            "completed": st.completed,
            "conditions": st.conditions,
            "observedGeneration": st.observed_generation,
            "configDigest": st.config_digest,
        }});
        t.patch_status("conditions", body, false).await?;
        if status::newly_failed(&written.conditions, &st.conditions) {
            ctx.config.metrics.jobs.failed.inc();
        }
    }
    Ok(Action::requeue(requeue))
}

/// Cleanup of a succeeded Job, status from the last Job, a Warning when it failed.
async fn track_job(
    t: &QJobRun<'_>,
    st: &mut QuarksJobStatus,
    job: &Job,
    generation: Option<i64>,
    now: Timestamp,
) -> Result<()> {
    let job_name = job.name_any();
    let is_last = st.last_job_name.as_deref() == Some(job_name.as_str());
    let phase = phase(job);
    if phase != JobPhase::Running {
        // (before a succeeded Job and its pods are cleaned up)
        outcome::complete(t, st, job, now).await?;
    }
    match &phase {
        JobPhase::Succeeded => {
            // (the conditions also change with the generation: announce the outcome once)
            let known = status::is_true(&st.conditions, status::SUCCEEDED);
            if is_last
                && status::set_job_phase(&mut st.conditions, &job_name, &phase, generation, now)
                && !known
            {
                let note = format!("Job '{job_name}' of '{}' succeeded", t.object);
                publish_about(
                    &t.ctx.recorder,
                    &t.regarding,
                    Some(&job_reference(job)),
                    EventType::Normal,
                    events::JOB_SUCCEEDED,
                    "Complete",
                    note,
                )
                .await;
            }
            st.completed = true;
            if job.metadata.deletion_timestamp.is_none()
                && cleanup_succeeded(t.ctx, &t.owner(), &t.regarding, job).await?
            {
                t.ctx.config.metrics.jobs.succeeded.inc();
            }
        }
        JobPhase::Failed { reason, message } => {
            let known = status::is_true(&st.conditions, status::FAILED);
            if is_last
                && status::set_job_phase(&mut st.conditions, &job_name, &phase, generation, now)
                && !known
            {
                let exit = runs::exit_note(&st.runs, &job_name);
                let note = format!(
                    "Job '{job_name}' of '{}' failed ({reason}{exit}): {message}; it is kept for inspection",
                    t.object
                );
                publish_about(
                    &t.ctx.recorder,
                    &t.regarding,
                    Some(&job_reference(job)),
                    EventType::Warning,
                    events::JOB_FAILED,
                    "Complete",
                    note,
                )
                .await;
            }
        }
        JobPhase::Running => {
            if is_last {
                status::set_job_phase(&mut st.conditions, &job_name, &phase, generation, now);
            }
        }
    }
    Ok(())
}

fn since(t: Timestamp) -> Duration {
    Duration::try_from(Timestamp::now().duration_since(t)).unwrap_or_default()
}

/// The requeue after a failed reconcile: exponential per QuarksJob, fast for conflicts.
pub fn error_policy(obj: Arc<Watched>, err: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.failed(ObjectRef::from_obj(&*obj));
    let delay = backoff(failures, matches!(err, Error::Conflict { .. }));
    ctx.config.metrics.reconcile.failed(err.metric_label());
    tracing::warn!(
        object = %format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()),
        error.kind = err.metric_label(),
        failures,
        "reconcile failed, retrying in {delay:?}: {err}"
    );
    Action::requeue(delay)
}

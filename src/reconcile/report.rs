//! A failing reconcile is shown on the QuarksJob, not only in the log: condition
//! `Reconciled=False` with the error's reason and message, and a Warning event, each once per
//! distinct failure (the stored condition is the memory, so also across restarts). Conflicts are
//! not reported: they are retried at once with a fresh read.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use serde_json::json;
use tracing::debug;

use super::context::{Context, is_not_found};
use super::error::Error;
use super::events::{self, EventType, publish};
use super::status;
use crate::core::api::{QuarksJob, QuarksJobStatus};
use crate::core::lenient::decode;

/// What is known of the QuarksJob a failure is reported on.
pub struct Subject {
    /// `namespace/name`.
    pub object: String,
    /// Its metadata as last read or written.
    pub metadata: ObjectMeta,
    /// Its conditions as last read or written.
    pub conditions: Vec<Condition>,
}

impl Subject {
    /// The QuarksJob as read raw (its status is read on its own: a spec that cannot be read
    /// does not hide the conditions).
    pub fn of(raw: &DynamicObject, object: &str) -> Subject {
        let status: QuarksJobStatus = raw
            .data
            .get("status")
            .and_then(|s| decode(s).ok())
            .unwrap_or_default();
        Subject {
            object: object.to_string(),
            metadata: raw.metadata.clone(),
            conditions: status.conditions,
        }
    }

    /// The QuarksJob as read from the cache.
    pub fn of_typed(qjob: &QuarksJob, object: &str) -> Subject {
        let mut subject = Subject {
            object: object.to_string(),
            metadata: ObjectMeta::default(),
            conditions: Vec::new(),
        };
        subject.update(qjob);
        subject
    }

    /// The QuarksJob as the reconcile last read or wrote it.
    pub fn update(&mut self, qjob: &QuarksJob) {
        self.metadata = qjob.metadata.clone();
        self.conditions = qjob.status.clone().unwrap_or_default().conditions;
    }
}

/// The reference of events about the QuarksJob with `meta`.
pub fn reference(meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some(QuarksJob::api_version(&()).into_owned()),
        kind: Some(QuarksJob::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        ..ObjectReference::default()
    }
}

/// The reason of the Warning event for `err`: the condition's reason for a QuarksJob that
/// cannot work as written, `ReconcileError` otherwise.
pub fn event_reason(err: &Error) -> &'static str {
    if err.is_permanent() {
        err.reason()
    } else {
        events::RECONCILE_ERROR
    }
}

/// Show `err` on the QuarksJob, unless its condition says so already.
pub async fn failure(ctx: &Context, subject: &Subject, err: &Error) {
    if matches!(err, Error::Conflict { .. }) {
        return;
    }
    let mut conditions = subject.conditions.clone();
    let message = err.to_string();
    let generation = subject.metadata.generation;
    if !status::set_reconciled(
        &mut conditions,
        Err((err.reason(), &message)),
        generation,
        Timestamp::now(),
    ) {
        debug!(object = %subject.object, "failure already reported");
        return;
    }
    let namespace = subject.metadata.namespace.as_deref().unwrap_or_default();
    let name = subject.metadata.name.as_deref().unwrap_or_default();
    // (a write the reconcile's cache check does not follow: the next reconcile reads fresh)
    ctx.versions
        .unsure(subject.metadata.uid.as_deref().unwrap_or_default());
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        namespace,
        &ApiResource::erase::<QuarksJob>(&()),
    );
    // guarded: a QuarksJob changed meanwhile is reconciled (and reported) again anyway
    let body = json!({
        "metadata": {"resourceVersion": subject.metadata.resource_version},
        "status": {"conditions": conditions},
    });
    let written = ctx
        .call(
            &subject.object,
            "report the failure",
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body)),
        )
        .await;
    match written {
        Ok(Err(kube::Error::Api(s))) if s.is_conflict() => return,
        Ok(Err(e)) if is_not_found(&e) => return,
        Ok(Err(e)) => {
            tracing::warn!(object = %subject.object, "cannot write the failure into the status: {e}")
        }
        Err(e) => tracing::warn!(object = %subject.object, "{e}"),
        Ok(Ok(_)) => {}
    }
    publish(
        &ctx.recorder,
        &reference(&subject.metadata),
        EventType::Warning,
        event_reason(err),
        "Reconcile",
        message,
    )
    .await;
}

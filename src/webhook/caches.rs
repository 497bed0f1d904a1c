//! The in-memory caches the webhook answers from (kube reflectors; metadata-only where the
//! webhook needs no more, so no secret data is held in memory):
//! monitored namespaces (their service account label), service accounts, versioned secrets
//! (label-filtered, held in a [`VersionedIndex`] by namespace and base name, so that an
//! admission reads only the versions of the names its pod references), and QuarksJobs (whether
//! they have `spec.output`). `Api<PartialObjectMeta<K>>` makes metadata-only requests.
//!
//! Every object is slimmed before it is stored (`slim_namespace`, `slim_identity`,
//! `slim_qjob`): only what the webhook reads stays (names, the one namespace label, a
//! QuarksJob's `spec.output`); `managedFields`, other labels, annotations (the
//! last-applied-configuration among them), a QuarksJob's template and status are dropped.
//!
//! No single object can keep a cache from filling: metadata always decodes, and QuarksJobs are
//! read one by one ([`Lenient`]); one that cannot be read is logged once, naming it (never its
//! contents), and its pods are treated as those of a QuarksJob not in the cache. Why a cache
//! cannot be filled (a failing list, e.g. forbidden) is logged once per change and shown by
//! `/readyz`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use futures::{Stream, StreamExt, future};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{debug, info, warn};

use super::versioned_index::VersionedIndex;
use crate::core::api::QuarksJob;
use crate::core::api::labels::{
    LABEL_MONITORED, LABEL_QJOB_SERVICE_ACCOUNT, LABEL_SECRET_KIND, SECRET_KIND_VERSIONED,
};
use crate::core::lenient::{Lenient, ReportOnce};
use crate::health::Readiness;
use crate::runtime::watch::describe_watch_error;

/// Readers of the caches; cheap to clone.
#[derive(Clone)]
pub struct Caches {
    namespaces: Store<PartialObjectMeta<Namespace>>,
    service_accounts: Store<PartialObjectMeta<ServiceAccount>>,
    versioned_secrets: Arc<Versioned>,
    qjobs: Store<Lenient<QuarksJob>>,
}

/// The versioned-secret index and whether its first list is in.
struct Versioned {
    index: RwLock<VersionedIndex>,
    ready: tokio::sync::watch::Sender<bool>,
}

impl Versioned {
    fn new() -> Arc<Versioned> {
        Arc::new(Versioned {
            index: RwLock::default(),
            ready: tokio::sync::watch::channel(false).0,
        })
    }

    fn apply(&self, event: watcher::Event<PartialObjectMeta<Secret>>) {
        let event = match event {
            watcher::Event::Apply(s) => watcher::Event::Apply(s.metadata),
            watcher::Event::Delete(s) => watcher::Event::Delete(s.metadata),
            watcher::Event::Init => watcher::Event::Init,
            watcher::Event::InitApply(s) => watcher::Event::InitApply(s.metadata),
            watcher::Event::InitDone => watcher::Event::InitDone,
        };
        let ready = {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            index.apply(event);
            index.is_ready()
        };
        self.ready.send_if_modified(|r| {
            let changed = *r != ready;
            *r = ready;
            changed
        });
    }
}

/// What one admission request needs, copied out of the caches.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The pod's QuarksJob.
    pub qjob: Option<Arc<QuarksJob>>,
    /// The namespace's output service account label.
    pub output_service_account: Option<String>,
    /// Whether that service account exists.
    pub service_account_exists: bool,
    /// The newest version of each versioned secret the pod references (name and
    /// versioned-secret labels), all that pointing its references at the newest needs.
    pub versioned_secrets: Vec<ObjectMeta>,
}

impl Caches {
    /// The caches and the future that fills them (run it until shutdown). While they are not
    /// filled, why not is the reason of the readiness check `check`.
    pub fn new(
        client: Client,
        monitored_id: &str,
        readiness: Readiness,
        check: &'static str,
    ) -> (Caches, impl Future<Output = ()> + Send + 'static) {
        let monitored =
            watcher::Config::default().labels(&format!("{LABEL_MONITORED}={monitored_id}"));
        let versioned = watcher::Config::default()
            .labels(&format!("{LABEL_SECRET_KIND}={SECRET_KIND_VERSIONED}"));
        let (namespaces, ns_writer) = reflector::store();
        let (service_accounts, sa_writer) = reflector::store();
        let versioned_secrets = Versioned::new();
        let (qjobs, qj_writer) = reflector::store();
        let problems = Problems::new(readiness, check);
        let ns = reflector::reflector(
            ns_writer,
            problems
                .watch(
                    "namespaces",
                    watcher(
                        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                        monitored,
                    ),
                )
                .modify(slim_namespace),
        );
        let sa = reflector::reflector(
            sa_writer,
            problems
                .watch(
                    "service accounts",
                    watcher(
                        Api::<PartialObjectMeta<ServiceAccount>>::all(client.clone()),
                        watcher::Config::default(),
                    ),
                )
                .modify(slim_identity),
        );
        let vs = {
            let index = versioned_secrets.clone();
            problems
                .watch(
                    "versioned secrets",
                    watcher(
                        Api::<PartialObjectMeta<Secret>>::all(client.clone()),
                        versioned,
                    ),
                )
                .default_backoff()
                .for_each(move |event| {
                    if let Ok(event) = event {
                        index.apply(event);
                    }
                    future::ready(())
                })
        };
        let mut unreadable = ReportOnce::default();
        let qj = reflector::reflector(
            qj_writer,
            problems
                .watch(
                    "QuarksJobs",
                    watcher(
                        Api::<Lenient<QuarksJob>>::all(client),
                        watcher::Config::default(),
                    ),
                )
                .inspect(move |event| report_unreadable(&mut unreadable, event))
                .modify(slim_qjob),
        );
        let drive = async move {
            // errors are retried with backoff inside; the streams end only when dropped
            future::join4(
                ns.default_backoff().for_each(|_| future::ready(())),
                sa.default_backoff().for_each(|_| future::ready(())),
                vs,
                qj.default_backoff().for_each(|_| future::ready(())),
            )
            .await;
        };
        (
            Caches {
                namespaces,
                service_accounts,
                versioned_secrets,
                qjobs,
            },
            drive,
        )
    }

    /// Caches that nothing fills (for tests of the handlers).
    #[cfg(test)]
    pub(crate) fn unfilled() -> Caches {
        Caches {
            namespaces: reflector::store().0,
            service_accounts: reflector::store().0,
            versioned_secrets: Versioned::new(),
            qjobs: reflector::store().0,
        }
    }

    /// Resolves once every cache has its first full list.
    pub async fn wait_ready(&self) {
        let _ = future::join4(
            self.namespaces.wait_until_ready(),
            self.service_accounts.wait_until_ready(),
            async {
                let mut ready = self.versioned_secrets.ready.subscribe();
                let _ = ready.wait_for(|r| *r).await;
            },
            self.qjobs.wait_until_ready(),
        )
        .await;
    }

    /// What a request for a pod of QuarksJob `qjob` in `namespace` that references the Secrets
    /// `secrets` needs: its cost grows with the pod's references, not with the namespace.
    pub fn snapshot<'a>(
        &self,
        namespace: &str,
        qjob: &str,
        secrets: impl IntoIterator<Item = &'a str>,
    ) -> Snapshot {
        let output_service_account =
            self.namespaces
                .get(&ObjectRef::new(namespace))
                .and_then(|ns| {
                    ns.metadata
                        .labels
                        .as_ref()?
                        .get(LABEL_QJOB_SERVICE_ACCOUNT)
                        .cloned()
                });
        let service_account_exists = output_service_account.as_deref().is_some_and(|sa| {
            self.service_accounts
                .get(&ObjectRef::new(sa).within(namespace))
                .is_some()
        });
        let versioned_secrets = {
            let index = self
                .versioned_secrets
                .index
                .read()
                .unwrap_or_else(|e| e.into_inner());
            let mut newest: Vec<ObjectMeta> = Vec::new();
            for reference in secrets {
                if let Some(meta) = index.newest(namespace, reference)
                    && !newest.iter().any(|m| m.name == meta.name)
                {
                    newest.push(meta.clone());
                }
            }
            newest
        };
        Snapshot {
            qjob: self
                .qjobs
                .get(&ObjectRef::new(qjob).within(namespace))
                .and_then(|q| q.shared()),
            output_service_account,
            service_account_exists,
            versioned_secrets,
        }
    }
}

/// Only the identity of an object: its name and namespace (what a store is keyed by).
fn identity(meta: &mut ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        ..ObjectMeta::default()
    }
}

/// Keep of a namespace its name and the output service account label, all the webhook reads.
fn slim_namespace(ns: &mut PartialObjectMeta<Namespace>) {
    let label = ns
        .metadata
        .labels
        .as_mut()
        .and_then(|l| l.remove_entry(LABEL_QJOB_SERVICE_ACCOUNT));
    ns.metadata = ObjectMeta {
        labels: label.map(|l| BTreeMap::from([l])),
        ..identity(&mut ns.metadata)
    };
}

/// Keep of an object only its identity (the webhook asks whether it exists).
fn slim_identity<K>(object: &mut PartialObjectMeta<K>) {
    object.metadata = identity(&mut object.metadata);
}

/// Keep of a QuarksJob its identity and `spec.output`, all the pod mutation reads: its template
/// (a whole Job spec), trigger and status go.
fn slim_qjob(qjob: &mut Lenient<QuarksJob>) {
    match qjob {
        Lenient::Read(q) => {
            // (no copy: the watcher has just decoded it, nothing else holds it yet)
            let q = Arc::make_mut(q);
            q.metadata = identity(&mut q.metadata);
            q.spec.template = Default::default();
            q.spec.trigger = None;
            q.status = None;
        }
        Lenient::Unreadable { metadata, .. } => **metadata = identity(metadata),
    }
}

/// Log each version of a QuarksJob that cannot be read once, naming it and the mistake.
fn report_unreadable(
    once: &mut ReportOnce,
    event: &Result<watcher::Event<Lenient<QuarksJob>>, watcher::Error>,
) {
    let (Ok(watcher::Event::Apply(q)) | Ok(watcher::Event::InitApply(q))) = event else {
        if let Ok(watcher::Event::Delete(q)) = event {
            once.forget(q.meta());
        }
        return;
    };
    match q.error() {
        Some(error) if once.first_time(q.meta()) => {
            let object = format!("{}/{}", q.namespace().unwrap_or_default(), q.name_any());
            debug!(
                %object,
                "QuarksJob '{object}' cannot be read ({error}); the webhook treats its pods as \
                 those of a QuarksJob it does not know"
            );
        }
        Some(_) => {}
        None => once.forget(q.meta()),
    }
}

/// Why the caches are not filled: the last error of each watch that has one.
#[derive(Clone)]
struct Problems {
    readiness: Readiness,
    check: &'static str,
    current: Arc<Mutex<BTreeMap<&'static str, String>>>,
}

impl Problems {
    fn new(readiness: Readiness, check: &'static str) -> Problems {
        Problems {
            readiness,
            check,
            current: Arc::default(),
        }
    }

    /// `events` of the watch of `what`, its errors recorded (logged once per change, and the
    /// readiness reason) and its successes clearing them.
    fn watch<K, S>(&self, what: &'static str, events: S) -> impl Stream<Item = S::Item> + use<K, S>
    where
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    {
        let problems = self.clone();
        events.inspect(move |event| {
            let error = event.as_ref().err().map(describe_watch_error);
            problems.record(what, error);
        })
    }

    fn record(&self, what: &'static str, error: Option<String>) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let changed = match &error {
            Some(e) => current.insert(what, e.clone()).as_ref() != Some(e),
            None => current.remove(what).is_some(),
        };
        if !changed {
            return;
        }
        match &error {
            Some(e) => warn!("Webhook cache of {what}: {e}; retrying"),
            None => info!("Webhook cache of {what} recovered"),
        }
        let why = (!current.is_empty()).then(|| {
            current
                .iter()
                .map(|(what, e)| format!("{what}: {e}"))
                .collect::<Vec<_>>()
                .join("; ")
        });
        self.readiness.set_reason(self.check, why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_what_the_webhook_reads_is_stored() {
        let meta = json!({
            "name": "n", "namespace": "ns", "uid": "u", "resourceVersion": "7",
            "labels": {LABEL_QJOB_SERVICE_ACCOUNT: "sa", "other": "x"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
        });
        let mut ns: PartialObjectMeta<Namespace> =
            serde_json::from_value(json!({"metadata": meta})).unwrap();
        slim_namespace(&mut ns);
        assert_eq!(
            serde_json::to_value(&ns.metadata).unwrap(),
            json!({"name": "n", "namespace": "ns", "labels": {LABEL_QJOB_SERVICE_ACCOUNT: "sa"}})
        );
        let mut sa: PartialObjectMeta<ServiceAccount> =
            serde_json::from_value(json!({"metadata": meta})).unwrap();
        slim_identity(&mut sa);
        assert_eq!(
            serde_json::to_value(&sa.metadata).unwrap(),
            json!({"name": "n", "namespace": "ns"})
        );
        let qjob = json!({
            "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
            "metadata": meta,
            "spec": {
                "trigger": {"strategy": "manual"},
                "template": {"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}},
                "output": {"outputMap": {"c": {"o.json": {"name": "out"}}}}
            },
            "status": {"completed": true}
        });
        let mut q = Lenient::<QuarksJob>::from_value(&qjob);
        slim_qjob(&mut q);
        let q = q.get().unwrap();
        assert_eq!(
            serde_json::to_value(&q.metadata).unwrap(),
            json!({"name": "n", "namespace": "ns"})
        );
        assert!(q.spec.output.is_some(), "what the mutation reads stays");
        assert_eq!(q.spec.template, Default::default());
        assert!(q.status.is_none());
        // an unreadable one keeps its identity only
        let mut bad = qjob.clone();
        bad["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["name"] = json!(5);
        let mut q = Lenient::<QuarksJob>::from_value(&bad);
        assert!(q.error().is_some());
        slim_qjob(&mut q);
        assert_eq!(q.meta().name.as_deref(), Some("n"));
        assert_eq!(q.meta().managed_fields, None);
        assert_eq!(q.meta().annotations, None);
    }

    #[test]
    fn why_the_caches_are_not_filled_is_the_readiness_reason() {
        let readiness = Readiness::default();
        readiness.register("caches");
        let problems = Problems::new(readiness.clone(), "caches");
        problems.record("QuarksJobs", Some("forbidden".into()));
        problems.record("namespaces", Some("timed out".into()));
        assert_eq!(
            readiness.pending_with_reasons(),
            ["caches (QuarksJobs: forbidden; namespaces: timed out)"]
        );
        problems.record("namespaces", None);
        problems.record("QuarksJobs", Some("forbidden".into()));
        assert_eq!(
            readiness.pending_with_reasons(),
            ["caches (QuarksJobs: forbidden)"]
        );
        problems.record("QuarksJobs", None);
        assert_eq!(readiness.pending_with_reasons(), ["caches"]);
    }
}

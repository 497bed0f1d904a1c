//! Wiring: one cluster-wide controller for QuarksJobs, triggered by
//!
//! * QuarksJobs themselves, read one by one ([`crate::core::lenient::Lenient`]): one that cannot be read never fails
//!   the watch of the others, it is reconciled (and reported) like any other;
//! * Jobs carrying the `qjob-name` label, mapped to their controlling QuarksJob; the same watch
//!   keeps the Job index the reconciles read ([`JobIndex`], slimmed Jobs);
//! * namespaces (metadata only; a reflector that is also the namespace cache of the monitored
//!   check), mapped to every QuarksJob in them, so labelling a namespace later picks up its
//!   QuarksJobs;
//! * ConfigMaps and Secrets, watched **metadata only**, mapped to the QuarksJobs of their
//!   namespace that reference them (exact names; other versions of a versioned secret) through
//!   an index kept from the QuarksJob watch ([`RefIndex`]), and only while those references can
//!   change what the reconcile does.
//!
//! The QuarksJob and namespace caches are slimmed ([`super::slim`]): no `managedFields` beyond
//! who wrote the trigger, no `last-applied-configuration`.
//!
//! The namespace gate is applied in the reconcile (against the cache), so one watch per kind
//! serves every namespace.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::{FutureExt, Stream, StreamExt, TryStreamExt, future, stream};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use super::context::{Config, Context, Watched, lock};
use super::error::Error;
use super::index::RefIndex;
use super::jobs::JobIndex;
use super::mapping;
use super::reconciler::{error_policy, reconcile};
use super::slim::{slim_job, slim_meta, slim_qjob};
use crate::core::api::QuarksJob;
use crate::core::api::labels::LABEL_QJOB_NAME;
use crate::core::podrefs::RefKind;
use crate::runtime::watch::describe_watch_error;

/// Run the reconciler until `shutdown` resolves; reconciles in flight then finish (graceful
/// shutdown).
pub async fn run_controller(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    run_controller_until(client, config, future::ready(()), shutdown).await
}

/// Like [`run_controller`], but the controller starts only once QuarksJobs are served *and* `ready`
/// resolved — in the operator, once the webhook that mutates the Jobs' pods is registered and
/// serving (a pod admitted before that would lack its output volume and container).
pub async fn run_controller_until(
    client: Client,
    config: Config,
    ready: impl Future<Output = ()>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    // Without the CRD, the QuarksJob watch cannot list, the controller's store never becomes
    // ready, and kube-runtime's controller then does not finish on shutdown: start it only once
    // QuarksJobs are served.
    let shutdown = shutdown.shared();
    let started = async {
        quarksjobs_served(&client).await;
        ready.await;
    };
    tokio::select! {
        _ = started => {}
        _ = shutdown.clone() => {
            info!("reconciler stopped");
            return;
        }
    }
    let (ns_reader, ns_writer) = reflector::store::<PartialObjectMeta<Namespace>>();
    config.metrics.reconcile.init_errors(&Error::KINDS);
    let ctx = Arc::new(Context::new(
        client.clone(),
        config.clone(),
        ns_reader.clone(),
        Arc::new(Mutex::new(JobIndex::default())),
    ));
    let forget = ctx.clone();
    // The QuarksJob cache: slimmed (`slim`), and every event also keeps the reference index
    // up to date (`index`).
    let (qjob_store, qjob_writer) = reflector::store::<Watched>();
    let index = Arc::new(Mutex::new(RefIndex::default()));
    let indexer = index.clone();
    let qjob_events = reflector(
        qjob_writer,
        watcher(
            Api::<Watched>::all(client.clone()),
            watcher::Config::default().any_semantic(),
        )
        .default_backoff()
        .modify(slim_qjob)
        .inspect_ok(move |event| {
            lock(&indexer).event(event);
            // (what this process kept about a deleted QuarksJob goes with it)
            if let watcher::Event::Delete(q) = event
                && let Some(uid) = q.meta().uid.as_deref()
            {
                forget.forget(uid);
            }
        }),
    )
    .applied_objects();

    // The Jobs: one watch, slimmed (`slim_job`), feeding the Job index the reconciles read
    // (instead of a LIST per reconcile) and mapped to their QuarksJob by owner reference. It
    // runs as its own task so that the controller starts only once the index holds a first
    // full list (a reconcile on an empty index would take its runs' Jobs for lost).
    let (job_tx, job_rx) = futures::channel::mpsc::unbounded::<Result<Job, watcher::Error>>();
    let job_index = ctx.jobs.clone();
    let jobs = watcher(
        Api::<Job>::all(client.clone()),
        watcher::Config::default().labels(LABEL_QJOB_NAME),
    )
    .default_backoff()
    .modify(slim_job)
    .inspect_ok(move |event| lock(&job_index).apply(event.clone()))
    .touched_objects();
    let _job_task = AbortOnDrop(tokio::spawn(jobs.for_each(move |job| {
        let _ = job_tx.unbounded_send(job);
        future::ready(())
    })));
    let controller = Controller::for_stream(qjob_events, qjob_store.clone())
        .with_config(ControllerConfig::default().concurrency(config.max_workers))
        .owns_stream(job_rx.filter_map(|job| {
            future::ready(match job {
                Ok(job) => Some(Ok(job)),
                Err(e) => {
                    warn!("Job watch: {}", describe_watch_error(&e));
                    None
                }
            })
        }));

    // The namespace reflector runs as its own task, and the controller starts only once its
    // cache is filled: `Store::wait_until_ready` wakes a single waiter, so reconciles must not
    // wait on it concurrently.
    let (ns_tx, ns_rx) =
        futures::channel::mpsc::unbounded::<Result<PartialObjectMeta<Namespace>, watcher::Error>>();
    let namespaces = reflector::reflector(
        ns_writer,
        watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            watcher::Config::default(),
        )
        .modify(|ns: &mut PartialObjectMeta<Namespace>| slim_meta(&mut ns.metadata, false)),
    )
    .default_backoff()
    .touched_objects();
    let _ns_task = AbortOnDrop(tokio::spawn(namespaces.for_each(move |ns| {
        let _ = ns_tx.unbounded_send(ns);
        future::ready(())
    })));
    if ns_reader.wait_until_ready().await.is_err() {
        warn!("namespace cache could not be filled");
        return;
    }
    while !ctx.jobs().is_ready() {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
            _ = shutdown.clone() => {
                info!("reconciler stopped");
                return;
            }
        }
    }
    let store = qjob_store.clone();
    let ns_triggers = map_stream(
        ns_rx,
        "namespace",
        move |ns: PartialObjectMeta<Namespace>| {
            mapping::in_namespace(store.state().iter().map(|q| &**q), &ns.name_any())
        },
    );
    let cm_triggers = map_stream(
        watcher(
            Api::<PartialObjectMeta<ConfigMap>>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .touched_objects(),
        "ConfigMap",
        referencing(index.clone(), RefKind::ConfigMap),
    );
    let secret_triggers = map_stream(
        watcher(
            Api::<PartialObjectMeta<Secret>>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .touched_objects(),
        "Secret",
        referencing(index.clone(), RefKind::Secret),
    );

    let in_flight = Arc::new(AtomicUsize::new(0));
    let counter = in_flight.clone();
    info!(monitored_id = %config.monitored_id, workers = config.max_workers, "Waiting for Quarks job resources...");
    let controller = controller
        .reconcile_on(ns_triggers)
        .reconcile_on(cm_triggers)
        .reconcile_on(secret_triggers)
        .graceful_shutdown_on(shutdown.clone())
        .run(
            move |obj, ctx| {
                let guard = InFlight::enter(counter.clone());
                async move {
                    let measurer = ctx.config.metrics.reconcile.measure();
                    let result = reconcile(obj, ctx).await;
                    drop(measurer);
                    drop(guard);
                    result
                }
            },
            error_policy,
            ctx,
        )
        .for_each(|res| {
            if let Err(e) = res {
                match e {
                    // (a failed reconcile is logged by `error_policy`, naming the QuarksJob)
                    kube::runtime::controller::Error::ObjectNotFound(_)
                    | kube::runtime::controller::Error::ReconcilerFailed(..) => {}
                    kube::runtime::controller::Error::QueueError(e) => {
                        warn!("controller: {}", describe_watch_error(&e))
                    }
                    e => warn!("controller: {e}"),
                }
            }
            future::ready(())
        });
    // kube-runtime's controller ends by itself after a graceful shutdown, except when the
    // shutdown came before its store was first filled: then it waits for that forever. So after
    // the shutdown signal, stop as soon as no reconcile is in flight.
    tokio::select! {
        _ = controller => {}
        _ = async {
            shutdown.await;
            let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
            while in_flight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        } => {}
    }
    info!("reconciler stopped");
}

/// After a shutdown signal, reconciles in flight get at most this long to finish.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// Counts a reconcile as in flight while it lives.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Resolves once the apiserver lists QuarksJobs (the CRD is installed and established).
async fn quarksjobs_served(client: &Client) {
    let api: Api<QuarksJob> = Api::all(client.clone());
    let mut warned = false;
    loop {
        match api
            .list_metadata(&kube::api::ListParams::default().limit(1))
            .await
        {
            Ok(_) => return,
            Err(e) if !warned => {
                warn!(
                    "Cannot list QuarksJobs yet ({e}); is the CRD installed? Run with --apply-crd or \
                     kubectl apply -f manifests/crd.yaml. Retrying."
                );
                warned = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// The QuarksJobs a `kind` object's event concerns, from the reference index.
fn referencing<K: Resource>(
    index: Arc<Mutex<RefIndex>>,
    kind: RefKind,
) -> impl Fn(K) -> Vec<ObjectRef<Watched>> {
    move |obj: K| match obj.meta().namespace.as_deref() {
        Some(ns) => {
            lock(&index).referencing(ns, kind, obj.meta().name.as_deref().unwrap_or_default())
        }
        None => Vec::new(),
    }
}

/// Map a watch stream of `K` to reconcile requests; watch errors are logged (the watcher backs
/// off and retries by itself).
fn map_stream<K, S, F>(
    input: S,
    what: &'static str,
    map: F,
) -> impl Stream<Item = ObjectRef<Watched>> + Send + 'static
where
    K: Resource + Send + 'static,
    S: Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    F: Fn(K) -> Vec<ObjectRef<Watched>> + Send + 'static,
{
    input.flat_map(move |res| {
        let refs = match res {
            Ok(obj) => map(obj),
            Err(e) => {
                warn!("{what} watch: {}", describe_watch_error(&e));
                Vec::new()
            }
        };
        stream::iter(refs)
    })
}

/// Stops the namespace reflector task with the controller, also when the controller future is
/// dropped (aborted) instead of shut down.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

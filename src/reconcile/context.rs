//! What every reconcile shares (layer: feature): the client, settings, event recorder, namespace cache, and the
//! per-QuarksJob failure counts for back-off.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};

use super::error::{Error, Result};
use super::jobs::JobIndex;
use super::mapping;
use crate::metrics::Metrics;
use crate::runtime::events::Recorder;

pub use super::watched::Watched;

/// The default of `--job-history`.
pub const DEFAULT_JOB_HISTORY: u32 = 5;

/// The default of `--max-workers`: measured with `make bench BENCH=burst` (1, 4, 16, 32
/// workers; see docs/benchmarks.md). A reconcile mostly waits for the apiserver, so one worker
/// serialises the round-trips of every trigger; 16 let a burst go at the apiserver's pace, and
/// more add nothing measurable on a small control plane while allowing more requests in flight.
pub const DEFAULT_MAX_WORKERS: u16 = 16;

/// The default of `--run-history`.
pub const DEFAULT_RUN_HISTORY: u32 = 5;

/// The reconciler's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Act only in namespaces labelled `quarks.cloudfoundry.org/monitored=<monitored_id>`.
    pub monitored_id: String,
    /// At most this many QuarksJobs are reconciled at the same time (`--max-workers`).
    pub max_workers: u16,
    /// Each API call is abandoned after this long (`--ctx-timeout`).
    pub ctx_timeout: Duration,
    /// Minimum time between a Job and a config-change re-run of the same QuarksJob
    /// (`--meltdown-duration`).
    pub meltdown: Duration,
    /// Per QuarksJob, at most this many pods kept of succeeded Jobs, and this many failed Jobs,
    /// are kept; the oldest are deleted first (`--job-history`; 0 keeps all).
    pub job_history: usize,
    /// Runs kept in `status.runs` (`--run-history`; at most [`super::runs::MAX_RUNS`]).
    pub run_history: usize,
    /// `reportingController` of the events.
    pub reporter: String,
    /// Where reconciles and Job transitions are counted ([`Config::new`] makes a registry of its
    /// own; the operator passes the one it serves at `/metrics`).
    pub metrics: Metrics,
}

impl Config {
    /// Defaults for a monitored id (upstream defaults: 300 s, 60 s; [`DEFAULT_MAX_WORKERS`]
    /// workers, where upstream had 1; a job history of [`DEFAULT_JOB_HISTORY`]).
    pub fn new(monitored_id: impl Into<String>) -> Config {
        Config {
            monitored_id: monitored_id.into(),
            max_workers: DEFAULT_MAX_WORKERS,
            ctx_timeout: Duration::from_secs(300),
            meltdown: Duration::from_secs(60),
            job_history: DEFAULT_JOB_HISTORY as usize,
            run_history: DEFAULT_RUN_HISTORY as usize,
            reporter: "quarks-job".into(),
            metrics: Metrics::default(),
        }
    }
}

/// Shared by all reconciles.
pub struct Context {
    /// The client.
    pub client: Client,
    /// Settings.
    pub config: Config,
    /// Event recorder.
    pub recorder: Recorder,
    /// Cache of the metadata of all namespaces (for the monitored check).
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Whether a cached QuarksJob is as new as this process last read or wrote it.
    pub versions: Versions,
    /// Every QuarksJob's Jobs, from the Job watch (filled before the controller starts).
    pub jobs: Arc<Mutex<JobIndex>>,
    /// The QuarksJobs (uids) whose kept pods were pruned to `--job-history` by this process
    /// and have not kept another pod since: their pods need no list.
    pruned: Mutex<HashSet<String>>,
    failures: Mutex<HashMap<ObjectRef<Watched>, u32>>,
}

/// Per QuarksJob (uid), the `resourceVersion` this process last read from or wrote to the
/// apiserver. The reconciler's cache lags behind its own writes (the watch event comes later);
/// a reconcile may start from the cached object only if it is not older than what this process
/// knows, that is: nothing was read or written yet, or the cached `resourceVersion` is the one
/// last seen. A write whose outcome is unknown (failed, timed out, or written elsewhere, like
/// a reported failure) makes the next reconcile read fresh.
#[derive(Debug, Default)]
pub struct Versions(Mutex<HashMap<String, Option<String>>>);

impl Versions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<String>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the cached QuarksJob `uid` at `resource_version` can stand in for a fresh read.
    pub fn is_current(&self, uid: &str, resource_version: Option<&str>) -> bool {
        match self.map().get(uid) {
            None => true,
            Some(Some(known)) => Some(known.as_str()) == resource_version,
            Some(None) => false,
        }
    }

    /// `uid` was read or written at `resource_version`.
    pub fn saw(&self, uid: &str, resource_version: Option<&str>) {
        self.map()
            .insert(uid.to_string(), resource_version.map(str::to_string));
    }

    /// `uid` may have been written, at a version not known.
    pub fn unsure(&self, uid: &str) {
        self.map().insert(uid.to_string(), None);
    }

    /// `uid` is gone.
    pub fn forget(&self, uid: &str) {
        self.map().remove(uid);
    }
}

impl Context {
    /// A context.
    pub fn new(
        client: Client,
        config: Config,
        namespaces: Store<PartialObjectMeta<Namespace>>,
        jobs: Arc<Mutex<JobIndex>>,
    ) -> Context {
        let reporter = Reporter {
            controller: config.reporter.clone(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            namespaces,
            versions: Versions::default(),
            jobs,
            pruned: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// The Job index (also if a panic poisoned its lock: every event repairs what a panic
    /// could leave halfway).
    pub fn jobs(&self) -> MutexGuard<'_, JobIndex> {
        lock(&self.jobs)
    }

    /// Whether the kept pods of `uid` may be more than `--job-history` (not pruned by this
    /// process yet, or it kept another pod since); if not, they need no list.
    pub fn needs_pruning(&self, uid: &str) -> bool {
        !lock(&self.pruned).contains(uid)
    }

    /// The kept pods of `uid` are pruned (`true`), or it kept another pod (`false`).
    pub fn set_pruned(&self, uid: &str, pruned: bool) {
        let mut set = lock(&self.pruned);
        if pruned {
            set.insert(uid.to_string());
        } else {
            set.remove(uid);
        }
    }

    /// The QuarksJob `uid` is gone: forget what this process kept about it.
    pub fn forget(&self, uid: &str) {
        self.versions.forget(uid);
        self.jobs().forget(uid);
        lock(&self.pruned).remove(uid);
    }

    /// Whether `namespace` is monitored (per the namespace cache).
    pub fn is_monitored(&self, namespace: &str) -> bool {
        self.namespaces
            .get(&ObjectRef::new(namespace))
            .is_some_and(|ns| mapping::is_monitored(&*ns, &self.config.monitored_id))
    }

    /// Run one API call with the `--ctx-timeout` limit; the apiserver's error is returned as is.
    pub async fn call<T>(
        &self,
        object: &str,
        action: &str,
        fut: impl Future<Output = kube::Result<T>>,
    ) -> Result<kube::Result<T>> {
        tokio::time::timeout(self.config.ctx_timeout, fut)
            .await
            .map_err(|_| Error::Timeout {
                action: action.into(),
                object: object.into(),
                timeout: self.config.ctx_timeout,
            })
    }

    /// [`Context::call`], with every apiserver error an [`Error`] (409 Conflict as
    /// [`Error::Conflict`]).
    pub async fn api<T>(
        &self,
        object: &str,
        action: &str,
        fut: impl Future<Output = kube::Result<T>>,
    ) -> Result<T> {
        self.call(object, action, fut)
            .await?
            .map_err(|e| kube_error(object, action, e))
    }

    /// One more consecutive failure of `qjob`; returns the count.
    pub fn failed(&self, qjob: ObjectRef<Watched>) -> u32 {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(qjob).or_insert(0);
        *n += 1;
        *n
    }

    /// `qjob` reconciled fine.
    pub fn succeeded(&self, qjob: &ObjectRef<Watched>) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(qjob);
    }
}

/// `mutex`'s guard, also if a panic poisoned it (the maps behind these locks hold no invariant a
/// panic could break halfway).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// An apiserver error as the reconciler's [`Error`].
pub fn kube_error(object: &str, action: &str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(s) if s.is_conflict() => Error::Conflict {
            action: action.into(),
            object: object.into(),
        },
        source => Error::Kube {
            action: action.into(),
            object: object.into(),
            source,
        },
    }
}

/// Whether `e` is the apiserver saying NotFound.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

/// Whether `e` is the apiserver saying AlreadyExists.
pub fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_already_exists())
}

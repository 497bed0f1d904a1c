//! The reconciler's view of each QuarksJob's Jobs (pure): a cache kept from the Job watch,
//! grouped by the uid of the controlling QuarksJob, plus what this process itself created or
//! deleted and the watch has not shown yet.
//!
//! A reconcile used to LIST the QuarksJob's Jobs. The apiserver answers a label-selected LIST
//! from etcd by reading every Job of the namespace, so with many Jobs each reconcile cost
//! O(Jobs in the namespace) and a burst of triggers O(n²). The cache answers from memory.
//!
//! The cache lags behind this process's own writes: a Job just created is not in it yet, a Job
//! just deleted is still in it. [`JobIndex::view`] corrects for both, so that a reconcile never
//! takes a run's Job for lost because the watch event is late (the run would be recorded as
//! `Lost`), and never cleans up a Job twice (the `DeletingJob` event would repeat). These
//! corrections end when the watch shows the change, or with the next full list (a relist after
//! a watch error): a list is the truth as of when it started, so corrections made before it
//! started are dropped when it is done.
//!
//! Events follow `kube::runtime::watcher` ([`JobIndex::apply`]): `Apply`/`Delete` change the
//! live cache; a (re)list is collected aside and replaces it at `InitDone`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use kube::runtime::watcher::Event;

/// The cached Jobs: owner uid → Job name → Job.
type Groups = HashMap<String, BTreeMap<String, Arc<Job>>>;

/// Names this process created (or deleted) per owner uid, with the list epoch of the change.
type Pending = HashMap<String, BTreeMap<String, u64>>;

/// The Jobs of each QuarksJob (see the module docs).
#[derive(Debug, Default)]
pub struct JobIndex {
    groups: Groups,
    /// Job (namespace, name) → owner uid, to find a Job's group on `Delete`, or when its owner
    /// changes.
    owners: HashMap<(String, String), String>,
    /// A list in progress (between `Init` and `InitDone`).
    relisting: Option<Groups>,
    /// Lists started so far; a correction made before the current list started is dropped
    /// when it is done.
    epoch: u64,
    ready: bool,
    created: Pending,
    deleted: Pending,
}

/// What a reconcile sees of one QuarksJob's Jobs.
#[derive(Debug, Default, Clone)]
pub struct OwnedJobs {
    /// The cached Jobs, without those this process deleted.
    pub jobs: Vec<Arc<Job>>,
    /// Jobs this process created that the watch has not shown yet (names).
    pub created: Vec<String>,
}

impl OwnedJobs {
    /// Whether the Job `name` exists (cached, or created by this process).
    pub fn has(&self, name: &str) -> bool {
        self.created.iter().any(|c| c == name)
            || self
                .jobs
                .iter()
                .any(|j| j.metadata.name.as_deref() == Some(name))
    }
}

/// The uid of the object controlling `job` (its QuarksJob, if it has one).
fn controller_uid(job: &Job) -> Option<&str> {
    job.metadata
        .owner_references
        .as_deref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

fn key(job: &Job) -> (String, String) {
    (
        job.metadata.namespace.clone().unwrap_or_default(),
        job.metadata.name.clone().unwrap_or_default(),
    )
}

impl JobIndex {
    /// Apply one watch event.
    pub fn apply(&mut self, event: Event<Job>) {
        match event {
            Event::Apply(job) => {
                self.remove(&job);
                self.insert(job);
            }
            Event::Delete(job) => {
                self.remove(&job);
                if let Some(uid) = controller_uid(&job) {
                    let name = job.metadata.name.as_deref().unwrap_or_default();
                    unmark(&mut self.deleted, uid, name);
                    unmark(&mut self.created, uid, name);
                }
            }
            Event::Init => {
                self.epoch += 1;
                self.relisting = Some(Groups::default());
            }
            Event::InitApply(job) => {
                if let Some(uid) = controller_uid(&job) {
                    let name = job.metadata.name.clone().unwrap_or_default();
                    self.relisting
                        .get_or_insert_default()
                        .entry(uid.to_string())
                        .or_default()
                        .insert(name, Arc::new(job));
                }
            }
            Event::InitDone => {
                self.groups = self.relisting.take().unwrap_or_default();
                self.owners = self
                    .groups
                    .iter()
                    .flat_map(|(uid, jobs)| jobs.values().map(move |j| (key(j), uid.clone())))
                    .collect();
                let epoch = self.epoch;
                for pending in [&mut self.created, &mut self.deleted] {
                    for names in pending.values_mut() {
                        names.retain(|_, at| *at >= epoch);
                    }
                    pending.retain(|_, names| !names.is_empty());
                }
                self.ready = true;
            }
        }
    }

    /// Whether a first full list has been applied.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The Jobs controlled by the QuarksJob `owner_uid`, as this process knows them.
    pub fn view(&self, owner_uid: &str) -> OwnedJobs {
        let deleted = self.deleted.get(owner_uid);
        let jobs: Vec<Arc<Job>> = self
            .groups
            .get(owner_uid)
            .map(|jobs| {
                jobs.iter()
                    .filter(|(name, _)| !deleted.is_some_and(|d| d.contains_key(*name)))
                    .map(|(_, job)| job.clone())
                    .collect()
            })
            .unwrap_or_default();
        let created = self
            .created
            .get(owner_uid)
            .map(|names| {
                names
                    .keys()
                    .filter(|n| !jobs.iter().any(|j| j.metadata.name.as_ref() == Some(*n)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        OwnedJobs { jobs, created }
    }

    /// This process created (or found already existing) the Job `name` of `owner_uid`.
    pub fn created(&mut self, owner_uid: &str, name: &str) {
        let cached = self
            .groups
            .get(owner_uid)
            .is_some_and(|jobs| jobs.contains_key(name));
        if !cached {
            mark(&mut self.created, owner_uid, name, self.epoch);
        }
    }

    /// This process deleted the Job `name` of `owner_uid` (or found it gone).
    pub fn deleted(&mut self, owner_uid: &str, name: &str) {
        unmark(&mut self.created, owner_uid, name);
        let cached = self
            .groups
            .get(owner_uid)
            .is_some_and(|jobs| jobs.contains_key(name));
        if cached {
            mark(&mut self.deleted, owner_uid, name, self.epoch);
        }
    }

    /// The QuarksJob `owner_uid` is gone: forget what this process did to its Jobs.
    pub fn forget(&mut self, owner_uid: &str) {
        self.created.remove(owner_uid);
        self.deleted.remove(owner_uid);
    }

    fn insert(&mut self, job: Job) {
        let Some(uid) = controller_uid(&job).map(str::to_string) else {
            return;
        };
        let name = job.metadata.name.clone().unwrap_or_default();
        unmark(&mut self.created, &uid, &name);
        self.owners.insert(key(&job), uid.clone());
        self.groups
            .entry(uid)
            .or_default()
            .insert(name, Arc::new(job));
    }

    fn remove(&mut self, job: &Job) {
        let Some(uid) = self.owners.remove(&key(job)) else {
            return;
        };
        if let Some(jobs) = self.groups.get_mut(&uid) {
            jobs.remove(job.metadata.name.as_deref().unwrap_or_default());
            if jobs.is_empty() {
                self.groups.remove(&uid);
            }
        }
    }
}

fn mark(pending: &mut Pending, uid: &str, name: &str, epoch: u64) {
    pending
        .entry(uid.to_string())
        .or_default()
        .insert(name.to_string(), epoch);
}

fn unmark(pending: &mut Pending, uid: &str, name: &str) {
    if let Some(names) = pending.get_mut(uid) {
        names.remove(name);
        if names.is_empty() {
            pending.remove(uid);
        }
    }
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;

use std::collections::BTreeSet;

use super::*;
use serde_json::json;

/// The names a reconcile sees as existing.
fn names(jobs: &OwnedJobs) -> BTreeSet<String> {
    jobs.jobs
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .chain(jobs.created.iter().cloned())
        .collect()
}

fn job(name: &str, owner: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {
            "name": name, "namespace": "ns",
            "ownerReferences": [{
                "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
                "name": "q", "uid": owner, "controller": true
            }]
        }
    }))
    .unwrap()
}

fn listed(jobs: Vec<Job>) -> JobIndex {
    let mut index = JobIndex::default();
    index.apply(Event::Init);
    for j in jobs {
        index.apply(Event::InitApply(j));
    }
    index.apply(Event::InitDone);
    index
}

fn seen(index: &JobIndex, owner: &str) -> Vec<String> {
    names(&index.view(owner)).into_iter().collect()
}

#[test]
fn groups_jobs_by_their_controlling_quarksjob() {
    let mut orphan = job("x", "u1");
    orphan.metadata.owner_references = None;
    let index = listed(vec![job("a", "u1"), job("b", "u2"), job("c", "u1"), orphan]);
    assert!(index.is_ready());
    assert_eq!(seen(&index, "u1"), ["a", "c"]);
    assert_eq!(seen(&index, "u2"), ["b"]);
    assert!(seen(&index, "u3").is_empty());
    assert_eq!(
        index.owners.len(),
        3,
        "the Job without a controller is not cached"
    );
}

#[test]
fn not_ready_until_the_first_list_is_done() {
    let mut index = JobIndex::default();
    index.apply(Event::Init);
    index.apply(Event::InitApply(job("a", "u1")));
    assert!(!index.is_ready());
    assert!(seen(&index, "u1").is_empty(), "a half list is not served");
    index.apply(Event::InitDone);
    assert_eq!(seen(&index, "u1"), ["a"]);
}

#[test]
fn watch_events_change_the_cache() {
    let mut index = listed(vec![job("a", "u1")]);
    index.apply(Event::Apply(job("b", "u1")));
    assert_eq!(seen(&index, "u1"), ["a", "b"]);
    index.apply(Event::Delete(job("a", "u1")));
    assert_eq!(seen(&index, "u1"), ["b"]);
    // (a changed controller moves the Job)
    index.apply(Event::Apply(job("b", "u2")));
    assert!(seen(&index, "u1").is_empty());
    assert_eq!(seen(&index, "u2"), ["b"]);
}

#[test]
fn a_job_created_here_is_seen_before_the_watch_shows_it() {
    let mut index = listed(vec![]);
    index.created("u1", "a");
    let view = index.view("u1");
    assert!(view.has("a") && view.jobs.is_empty());
    assert_eq!(view.created, ["a"]);
    index.apply(Event::Apply(job("a", "u1")));
    let view = index.view("u1");
    assert!(view.created.is_empty(), "the watch showed it");
    assert_eq!(view.jobs.len(), 1);
    // (and a Job the watch showed first is not marked)
    index.created("u1", "a");
    index.apply(Event::Delete(job("a", "u1")));
    assert!(!index.view("u1").has("a"));
}

#[test]
fn a_job_deleted_here_is_gone_before_the_watch_shows_it() {
    let mut index = listed(vec![job("a", "u1"), job("b", "u1")]);
    index.deleted("u1", "a");
    assert_eq!(seen(&index, "u1"), ["b"]);
    // (a change of it before its deletion event does not bring it back)
    index.apply(Event::Apply(job("a", "u1")));
    assert_eq!(seen(&index, "u1"), ["b"]);
    index.apply(Event::Delete(job("a", "u1")));
    assert_eq!(seen(&index, "u1"), ["b"]);
    assert!(index.deleted.is_empty(), "nothing left to correct");
}

#[test]
fn a_relist_drops_the_corrections_made_before_it_started() {
    let mut index = listed(vec![job("a", "u1")]);
    // made before the relist: the list is the truth (both Jobs gone, the watch missed it)
    index.created("u1", "lost");
    index.deleted("u1", "a");
    index.apply(Event::Init);
    // made while the list runs: it may not be in it, keep it
    index.created("u1", "new");
    index.apply(Event::InitApply(job("a", "u1")));
    index.apply(Event::InitDone);
    assert_eq!(seen(&index, "u1"), ["a", "new"]);
}

#[test]
fn forgetting_an_owner_drops_its_corrections() {
    let mut index = listed(vec![job("a", "u1")]);
    index.created("u1", "b");
    index.deleted("u1", "a");
    index.forget("u1");
    assert_eq!(seen(&index, "u1"), ["a"]);
}

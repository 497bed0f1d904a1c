//! Unit tests of the versioned-secret index: events, restarts, and that it answers as the
//! rules of `core::versioned` do over the whole snapshot.
use super::*;
use crate::core::api::labels::SECRET_KIND_VERSIONED;

fn meta(namespace: &str, name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        annotations: Some([("big".to_string(), "x".repeat(100))].into()),
        ..Default::default()
    }
}

fn version(namespace: &str, name: &str) -> ObjectMeta {
    meta(
        namespace,
        name,
        &[(LABEL_SECRET_KIND, SECRET_KIND_VERSIONED)],
    )
}

fn newest<'a>(index: &'a VersionedIndex, namespace: &str, reference: &str) -> Option<&'a str> {
    index.newest(namespace, reference)?.name.as_deref()
}

fn listed(objects: impl IntoIterator<Item = ObjectMeta>) -> VersionedIndex {
    let mut index = VersionedIndex::default();
    index.apply(Event::Init);
    for o in objects {
        index.apply(Event::InitApply(o));
    }
    index.apply(Event::InitDone);
    index
}

#[test]
fn ready_after_the_first_list_only() {
    let mut index = VersionedIndex::default();
    assert!(!index.is_ready());
    index.apply(Event::Init);
    index.apply(Event::InitApply(version("ns", "s-v1")));
    assert!(!index.is_ready());
    assert_eq!(
        newest(&index, "ns", "s-v1"),
        None,
        "a half list is not read"
    );
    index.apply(Event::InitDone);
    assert!(index.is_ready());
    assert_eq!(newest(&index, "ns", "s-v1"), Some("s-v1"));
}

#[test]
fn apply_and_delete_keep_the_newest_version() {
    let mut index = listed([version("ns", "s-v1"), version("ns", "s-v2")]);
    assert_eq!(newest(&index, "ns", "s-v1"), Some("s-v2"));
    index.apply(Event::Apply(version("ns", "s-v10")));
    assert_eq!(
        newest(&index, "ns", "s-v1"),
        Some("s-v10"),
        "10 > 2: numbers"
    );
    // the newest version deleted: the one before it is the newest again
    index.apply(Event::Delete(version("ns", "s-v10")));
    assert_eq!(newest(&index, "ns", "s-v2"), Some("s-v2"));
    // an older version deleted changes nothing
    index.apply(Event::Delete(version("ns", "s-v1")));
    assert_eq!(newest(&index, "ns", "s-v1"), Some("s-v2"));
    index.apply(Event::Delete(version("ns", "s-v2")));
    assert_eq!(newest(&index, "ns", "s-v1"), None);
    assert!(index.is_empty(), "emptied groups are dropped");
    // applying the same object twice keeps one copy
    index.apply(Event::Apply(version("ns", "t-v1")));
    index.apply(Event::Apply(version("ns", "t-v1")));
    assert_eq!(index.len(), 1);
}

#[test]
fn namespaces_and_names_do_not_mix() {
    let index = listed([
        version("a", "s-v1"),
        version("b", "s-v5"),
        version("a", "s-x-v9"),
        version("a", "sv-v7"),
    ]);
    assert_eq!(newest(&index, "a", "s-v3"), Some("s-v1"));
    assert_eq!(newest(&index, "b", "s-v1"), Some("s-v5"));
    assert_eq!(newest(&index, "c", "s-v1"), None);
    assert_eq!(newest(&index, "a", "s-x-v1"), Some("s-x-v9"));
    assert_eq!(newest(&index, "a", "s"), None, "not a versioned reference");
}

#[test]
fn a_restart_replaces_the_index_with_the_new_list() {
    let mut index = listed([version("ns", "s-v1"), version("ns", "s-v3")]);
    // the watch restarts; s-v3 was deleted while it was down, s-v2 kept
    index.apply(Event::Init);
    index.apply(Event::InitApply(version("ns", "s-v1")));
    assert_eq!(
        newest(&index, "ns", "s-v1"),
        Some("s-v3"),
        "until the list is done, readers see the old index"
    );
    index.apply(Event::InitApply(version("ns", "s-v2")));
    index.apply(Event::InitDone);
    assert_eq!(newest(&index, "ns", "s-v1"), Some("s-v2"));
    assert_eq!(index.len(), 2);
    assert!(index.is_ready());
}

#[test]
fn labels_and_names_count_as_core_versioned_says() {
    let mut index = listed([
        // the name says version 2, the label 9: the name counts
        meta(
            "ns",
            "s-v2",
            &[
                (LABEL_SECRET_KIND, SECRET_KIND_VERSIONED),
                (LABEL_SECRET_VERSION, "9"),
            ],
        ),
        version("ns", "s-v3"),
        // not labelled as a versioned secret: not a version
        meta("ns", "s-v8", &[]),
        // not a versioned name
        version("ns", "s-v0"),
        version("ns", "plain"),
    ]);
    assert_eq!(newest(&index, "ns", "s-v1"), Some("s-v3"));
    assert_eq!(index.len(), 2);
    // a version that loses its label stops being one
    index.apply(Event::Apply(meta("ns", "s-v3", &[])));
    assert_eq!(newest(&index, "ns", "s-v1"), Some("s-v2"));
    // and one that gains it becomes one
    index.apply(Event::Apply(version("ns", "s-v8")));
    assert_eq!(newest(&index, "ns", "s-v1"), Some("s-v8"));
}

#[test]
fn the_index_answers_as_the_rule_over_the_whole_namespace() {
    let all: Vec<ObjectMeta> = [
        "s-v1", "s-v2", "s-v10", "s-v9", "t-v1", "s-x-v3", "a.c-v1", "abc-v5",
    ]
    .into_iter()
    .map(|n| version("ns", n))
    .chain([meta("ns", "s-v11", &[]), version("other", "s-v99")])
    .collect();
    let index = listed(all.clone());
    let same_namespace: Vec<&ObjectMeta> = all
        .iter()
        .filter(|m| m.namespace.as_deref() == Some("ns"))
        .collect();
    for reference in ["s-v1", "t-v4", "s-x-v1", "a.c-v1", "abc-v1", "u-v1", "s"] {
        let rule = versioned::newest_for_reference(reference, same_namespace.iter().copied())
            .and_then(|(_, m)| m.name.as_deref());
        assert_eq!(newest(&index, "ns", reference), rule, "{reference}");
    }
}

#[test]
fn only_the_name_and_versioned_labels_are_kept() {
    let mut labelled = version("ns", "s-v1");
    labelled
        .labels
        .as_mut()
        .unwrap()
        .insert("app".into(), "x".into());
    labelled.managed_fields = Some(vec![Default::default()]);
    let index = listed([labelled]);
    let kept = index.newest("ns", "s-v1").unwrap();
    assert_eq!(kept.annotations, None);
    assert_eq!(kept.managed_fields, None);
    assert_eq!(
        kept.labels.as_ref().unwrap().keys().collect::<Vec<_>>(),
        [LABEL_SECRET_KIND]
    );
}

//! Whose Secret is it: persist-output never overwrites a Secret that is not its QuarksJob's, and
//! still updates the Secrets upstream's operator wrote.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::PostParams;
use serde_json::json;

use crate::support::delete_namespace;
use crate::support::kubelet::State;
use crate::world::{HELLO, LABEL_QJOB, LABEL_VERSION, data, failed, map, ok, world};

/// The hijack of the issue: an outputMap entry naming an existing Secret overwrote it, dropped
/// its labels and annotations, and made the QuarksJob an owner (so deleting the QuarksJob
/// garbage-collected it).
#[tokio::test]
async fn an_output_naming_someone_elses_secret_is_refused_and_nothing_is_written() {
    let w = world("po-hijack").await;
    let victim: Secret = serde_json::from_value(json!({
        "metadata": {"name": "db-password", "labels": {"app": "db"}, "annotations": {"team": "a"}},
        "stringData": {"password": "s3cret"},
    }))
    .unwrap();
    w.secrets()
        .create(&PostParams::default(), &victim)
        .await
        .unwrap();
    w.qjob(
        "thief",
        Some(json!({"outputMap": {"busybox": {
            "a.json": {"name": "innocent"},
            "b.json": {"name": "db-password"},
            "c.json": {"name": "innocent-series", "versioned": true},
        }}})),
    )
    .await;
    w.pod("p", "thief", &[("busybox", json!([]))]).await;
    let dir = w.out_dir("p");
    for f in ["a.json", "b.json", "c.json"] {
        w.write(&dir, "busybox", f, br#"{"password": "stolen"}"#);
    }
    w.finish("p", &[("busybox", State::Terminated(0))]).await;

    let stderr = failed(&w.run("p", &dir, &[]).await);
    let ns = &w.ns;
    assert!(
        stderr.contains(&format!(
            "nothing written for pod '{ns}/p': QuarksJob '{ns}/thief' may not write Secret '{ns}/db-password': it was not written by persist-output for this QuarksJob"
        )),
        "{stderr}"
    );
    let after = w.secret("db-password").await.unwrap();
    assert_eq!(data(&after), map(&[("password", "s3cret")]));
    assert_eq!(after.labels().clone(), map(&[("app", "db")]));
    assert_eq!(after.annotations().clone(), map(&[("team", "a")]));
    assert!(
        after.owner_references().is_empty(),
        "deleting the QuarksJob cannot garbage-collect it"
    );
    assert!(w.secret("innocent").await.is_none(), "nothing of the set");
    assert!(w.secret("innocent-series-v1").await.is_none());

    let warnings = w.warnings("thief").await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].0, "OutputRefused");
    assert!(
        warnings[0]
            .1
            .contains(&format!("may not write Secret '{ns}/db-password'")),
        "{warnings:?}"
    );
    delete_namespace(&w.client, &w.ns).await;
}

#[tokio::test]
async fn another_quarksjobs_secrets_and_versions_are_refused() {
    let w = world("po-other").await;
    let output = json!({"outputMap": {"busybox": {
        "o.json": {"name": "shared"},
        "v.json": {"name": "series", "versioned": true},
    }}});
    w.qjob("first", Some(output.clone())).await;
    w.qjob("second", Some(output)).await;
    for (pod, qjob) in [("p1", "first"), ("p2", "second")] {
        w.pod(pod, qjob, &[("busybox", json!([]))]).await;
        let dir = w.out_dir(pod);
        let content = format!(r#"{{"from": "{qjob}"}}"#);
        w.write(&dir, "busybox", "o.json", content.as_bytes());
        w.write(&dir, "busybox", "v.json", content.as_bytes());
        w.finish(pod, &[("busybox", State::Terminated(0))]).await;
    }
    let stdout = ok(&w.run("p1", &w.out_dir("p1"), &[]).await);
    assert!(
        stdout.contains("'series-v1' created") && stdout.contains("'shared' created"),
        "{stdout}"
    );
    let shared = w.secret("shared").await.unwrap();
    assert_eq!(shared.labels()[LABEL_QJOB], "first");

    let stderr = failed(&w.run("p2", &w.out_dir("p2"), &[]).await);
    let ns = &w.ns;
    assert!(
        stderr.contains(&format!(
            "QuarksJob '{ns}/second' may not write Secret '{ns}/shared': it was written for QuarksJob 'first'"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "QuarksJob '{ns}/second' may not write Secret '{ns}/series-v1': it is a version of 'series' and it was written for QuarksJob 'first'"
        )),
        "{stderr}"
    );
    assert_eq!(data(&w.secret("shared").await.unwrap())["from"], "first");
    assert!(
        w.secret("series-v2").await.is_none(),
        "no version of another QuarksJob's series"
    );
    assert_eq!(w.warnings("second").await[0].0, "OutputRefused");
    // the first QuarksJob still writes its own
    w.write(&w.out_dir("p1"), "busybox", "o.json", HELLO);
    let stdout = ok(&w.run("p1", &w.out_dir("p1"), &[]).await);
    assert!(stdout.contains("'shared' updated"), "{stdout}");
    delete_namespace(&w.client, &w.ns).await;
}

/// Upgrades from upstream: its plain output Secrets carried only `container-name` (no owner, no
/// QuarksJob label), its versions a controller owner reference to the QuarksJob. Both are still
/// written by the QuarksJob they belong to.
#[tokio::test]
async fn secrets_upstream_wrote_are_still_updated() {
    let w = world("po-upgrade").await;
    let q = w
        .qjob(
            "foo",
            Some(
                json!({"secretLabels": {"key": "value"}, "outputMap": {"busybox": {
                    "o.json": {"name": "foo-busybox"},
                    "v.json": {"name": "foo-nuts", "versioned": true},
                }}}),
            ),
        )
        .await;
    let owner = json!({"apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
        "name": "foo", "uid": q.uid().unwrap(), "controller": true, "blockOwnerDeletion": false});
    let upstream: Vec<Secret> = [
        json!({"metadata": {"name": "foo-busybox", "labels": {
            "quarks.cloudfoundry.org/container-name": "busybox", "key": "value"}},
            "stringData": {"hello": "upstream"}}),
        json!({"metadata": {"name": "foo-nuts-v1", "ownerReferences": [owner], "labels": {
            "quarks.cloudfoundry.org/container-name": "busybox", "key": "value",
            "quarks.cloudfoundry.org/secret-kind": "versionedSecret", LABEL_VERSION: "1"},
            "annotations": {"quarks.cloudfoundry.org/source-description": "created by quarksJob"}},
            "stringData": {"hello": "world"}}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    for s in &upstream {
        w.secrets().create(&PostParams::default(), s).await.unwrap();
    }
    w.pod("p", "foo", &[("busybox", json!([]))]).await;
    let dir = w.out_dir("p");
    w.write(&dir, "busybox", "o.json", br#"{"hello": "quarks-job"}"#);
    w.write(&dir, "busybox", "v.json", HELLO);
    w.finish("p", &[("busybox", State::Terminated(0))]).await;

    let stdout = ok(&w.run("p", &dir, &[]).await);
    assert!(stdout.contains("'foo-busybox' updated"), "{stdout}");
    // the same content as upstream's latest version: no new version just for the new label
    assert!(stdout.contains("'foo-nuts-v1' unchanged"), "{stdout}");
    let plain = w.secret("foo-busybox").await.unwrap();
    assert_eq!(data(&plain), map(&[("hello", "quarks-job")]));
    assert_eq!(plain.labels()[LABEL_QJOB], "foo", "taken over: marked");
    assert_eq!(plain.owner_references()[0].uid, q.uid().unwrap());

    w.write(&dir, "busybox", "v.json", br#"{"hello": "changed"}"#);
    let stdout = ok(&w.run("p", &dir, &[]).await);
    assert!(stdout.contains("'foo-nuts-v2' created"), "{stdout}");
    let v2 = w.secret("foo-nuts-v2").await.unwrap();
    let labels: BTreeMap<String, String> = v2.labels().clone();
    assert_eq!(labels[LABEL_QJOB], "foo");
    assert_eq!(labels[LABEL_VERSION], "2");
    delete_namespace(&w.client, &w.ns).await;
}

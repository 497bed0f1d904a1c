//! `quarks-job persist-output` against the real control plane: the test plays the kubelet (it
//! writes the output files into a temp dir standing in for `/mnt/quarks` and marks containers
//! terminated through `pods/status`) and runs the real binary as a process, authenticated as a
//! ServiceAccount bound only to the shipped ClusterRole `qjob-persist-output`.

#[path = "persist_output/failures.rs"]
mod failures;
#[path = "persist_output/faults.rs"]
mod faults;
#[path = "persist_output/ownership.rs"]
mod ownership;
mod support;
#[path = "persist_output/versions.rs"]
mod versions;
#[path = "persist_output/world.rs"]
mod world;

use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use quarks_job::core::api::QuarksJob;
use serde_json::json;
use support::WAIT;
use support::kubelet::State;
use support::{delete_namespace, eventually};
use world::{HELLO, LABEL_QJOB, data, map, ok, world};

#[tokio::test]
async fn one_output_becomes_a_secret_with_upstream_labels_and_is_overwritten_later() {
    let w = world("po-one").await;
    let q = w
        .qjob(
            "foo",
            Some(json!({
                "secretLabels": {"key": "value"},
                "outputMap": {"busybox": {"output.json": {"name": "foo-busybox",
                    "secretLabels": {"quarks.cloudfoundry.org/entanglement": "foo-busybox"},
                    "secretAnnotations": {"note": "from the test"}}}},
            })),
        )
        .await;
    w.pod("p", "foo", &[("busybox", json!([]))]).await;
    let dir = w.out_dir("p");
    w.write(&dir, "busybox", "output.json", HELLO);
    w.finish("p", &[("busybox", State::Terminated(0))]).await;

    let stdout = ok(&w.run("p", &dir, &[]).await);
    assert!(
        stdout.contains(&format!("persisted output of pod '{}/p'", w.ns))
            && stdout.contains("'foo-busybox' created"),
        "{stdout}"
    );
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "a one-line summary: {stdout}"
    );
    let s = w.secret("foo-busybox").await.expect("secret written");
    assert_eq!(data(&s), map(&[("hello", "world")]));
    assert_eq!(
        s.labels().clone(),
        map(&[
            ("quarks.cloudfoundry.org/container-name", "busybox"),
            ("quarks.cloudfoundry.org/entanglement", "foo-busybox"),
            ("key", "value"),
            (LABEL_QJOB, "foo"),
        ])
    );
    assert_eq!(
        s.annotations().get("note").map(String::as_str),
        Some("from the test")
    );
    let owners = s.owner_references();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].uid.as_str()),
        ("QuarksJob", q.uid().unwrap().as_str())
    );
    assert_eq!(owners[0].controller, Some(false));

    // "output of previous runs is overwritten": same Secret, new data
    w.write(&dir, "busybox", "output.json", br#"{"hello": "again"}"#);
    let stdout = ok(&w.run("p", &dir, &[]).await);
    assert!(stdout.contains("'foo-busybox' updated"), "{stdout}");
    assert_eq!(
        data(&w.secret("foo-busybox").await.unwrap()),
        map(&[("hello", "again")])
    );
    assert_eq!(
        w.output_secrets().await,
        BTreeSet::from(["foo-busybox".to_string()])
    );

    // owned by the QuarksJob: the garbage collector removes it with the QuarksJob (upstream kept
    // plain output Secrets forever)
    let qjobs: Api<QuarksJob> = Api::namespaced(w.client.clone(), &w.ns);
    qjobs
        .delete("foo", &DeleteParams::background())
        .await
        .unwrap();
    // the garbage collector sees a new CRD's objects only after its next discovery (every 30 s)
    eventually(
        WAIT * 2,
        "the output Secret to be garbage-collected",
        || async { w.secret("foo-busybox").await.is_none() },
    )
    .await;
    delete_namespace(&w.client, &w.ns).await;
}

#[tokio::test]
async fn without_output_nothing_is_persisted() {
    let w = world("po-none").await;
    w.qjob("foo", None).await;
    w.pod("p", "foo", &[("busybox", json!([]))]).await;
    let dir = w.out_dir("p");
    w.write(&dir, "busybox", "output.json", HELLO);
    // the containers are still running: without output there is nothing to wait for
    let stdout = ok(&w.run("p", &dir, &[]).await);
    assert!(stdout.contains("has no output"), "{stdout}");
    assert!(w.output_secrets().await.is_empty());
    delete_namespace(&w.client, &w.ns).await;
}

#[tokio::test]
async fn write_on_failure_decides_about_failed_containers() {
    let w = world("po-failure").await;
    w.qjob(
        "on",
        Some(json!({"writeOnFailure": true, "outputMap": {
            "one": {"o.json": {"name": "from-exit-1"}},
            "three": {"o.json": {"name": "from-exit-3"}},
        }})),
    )
    .await;
    w.qjob(
        "off",
        Some(json!({"outputMap": {"busybox": {"o.json": {"name": "never"}}}})),
    )
    .await;

    w.pod("p-on", "on", &[("one", json!([])), ("three", json!([]))])
        .await;
    let dir = w.out_dir("p-on");
    w.write(&dir, "one", "o.json", HELLO);
    w.write(&dir, "three", "o.json", HELLO);
    w.finish(
        "p-on",
        &[
            ("one", State::Terminated(1)),
            ("three", State::Terminated(3)),
        ],
    )
    .await;
    ok(&w.run("p-on", &dir, &[]).await);
    assert!(
        w.secret("from-exit-1").await.is_some(),
        "upstream's case: exit 1 with writeOnFailure"
    );
    assert!(
        w.secret("from-exit-3").await.is_some(),
        "any non-zero exit code counts, not only 1"
    );

    // without writeOnFailure a failed container has nothing to write, with or without its file
    w.pod("p-off", "off", &[("busybox", json!([]))]).await;
    w.finish("p-off", &[("busybox", State::Terminated(1))])
        .await;
    let stdout = ok(&w.run("p-off", &w.out_dir("p-off"), &[]).await);
    assert!(
        stdout.contains("container 'busybox' skipped (exit code 1, writeOnFailure is false)"),
        "{stdout}"
    );
    assert!(w.secret("never").await.is_none());
    delete_namespace(&w.client, &w.ns).await;
}

#[tokio::test]
async fn multiple_outputs_fan_out_and_remote_id() {
    let w = world("po-multi").await;
    w.qjob("foo", Some(json!({"outputMap": {
        "busybox": {
            "output.json": {"name": "foo-busybox"},
            "output-nats.json": {"name": "fake-nats"},
            "output-nuts.json": {"name": "bar-nuts", "versioned": true},
        },
        "links": {"provides.json": {"name": "link-nats-deployment", "persistencemethod": "fan-out"}},
    }})))
    .await;
    w.pod(
        "p",
        "foo",
        &[
            (
                "busybox",
                json!([{"name": "REMOTE_ID", "value": "remote-1"}]),
            ),
            ("links", json!([])),
            ("unmapped", json!([])), // still running and never waited for
        ],
    )
    .await;
    let dir = w.out_dir("p");
    for f in ["output.json", "output-nats.json", "output-nuts.json"] {
        w.write(&dir, "busybox", f, HELLO);
    }
    // upstream's fan-out test data: every value is a JSON-encoded flat object
    let nats =
        json!({"nats.user": "admin", "nats.password": "changeme", "nats.port": "1337"}).to_string();
    let nuts =
        json!({"nats.user": "udmin", "nats.password": "chungeme", "nats.port": "1337"}).to_string();
    w.write(
        &dir,
        "links",
        "provides.json",
        json!({"nats-nats": nats, "nats-nuts": nuts})
            .to_string()
            .as_bytes(),
    );
    w.finish(
        "p",
        &[
            ("busybox", State::Terminated(0)),
            ("links", State::Terminated(0)),
        ],
    )
    .await;

    ok(&w.run("p", &dir, &[]).await);
    for name in ["foo-busybox", "fake-nats", "bar-nuts-v1"] {
        let s = w
            .secret(name)
            .await
            .unwrap_or_else(|| panic!("{name} written"));
        assert_eq!(data(&s), map(&[("hello", "world")]), "{name}");
        assert_eq!(
            s.labels()["quarks.cloudfoundry.org/remote-id"],
            "remote-1",
            "{name}"
        );
    }
    let s = w
        .secret("link-nats-deployment-nats-nats")
        .await
        .expect("fan-out secret");
    assert_eq!(
        data(&s),
        map(&[
            ("nats.user", "admin"),
            ("nats.password", "changeme"),
            ("nats.port", "1337")
        ])
    );
    let s = w
        .secret("link-nats-deployment-nats-nuts")
        .await
        .expect("fan-out secret");
    assert_eq!(data(&s)["nats.password"], "chungeme");
    assert_eq!(
        s.labels()["quarks.cloudfoundry.org/container-name"],
        "links"
    );
    assert!(!s.labels().contains_key("quarks.cloudfoundry.org/remote-id"));
    delete_namespace(&w.client, &w.ns).await;
}

/// Upstream's integration case "does persist output" (OutputQuarksJob with DefaultOutputMap),
/// with the command started before the container finished: it waits for the files and the
/// container's end.
#[tokio::test]
async fn does_persist_output_written_while_it_waits() {
    let w = world("po-waits").await;
    w.qjob(
        "qj-persist",
        Some(json!({"writeOnFailure": true, "outputMap": {"busybox": {
            "output.json": {"name": "foo-busybox"},
            "output-nats.json": {"name": "fake-nats"},
            "output-nuts.json": {"name": "bar-nuts", "versioned": true},
        }}})),
    )
    .await;
    w.pod("p", "qj-persist", &[("busybox", json!([]))]).await;
    w.finish("p", &[("busybox", State::Running)]).await;
    let dir = w.out_dir("p");
    let child = w.command("p", &dir, &[]).spawn().unwrap();
    let output = tokio::spawn(child.wait_with_output());

    // `echo '{"fake": "value"}' | tee /mnt/quarks/output.json …`, then the container exits 0
    for f in ["output.json", "output-nats.json", "output-nuts.json"] {
        w.write(&dir, "busybox", f, br#"{"fake": "value"}"#);
    }
    assert!(
        w.output_secrets().await.is_empty(),
        "nothing is written before the container ended"
    );
    w.finish("p", &[("busybox", State::Terminated(0))]).await;

    let out = tokio::time::timeout(WAIT, output)
        .await
        .expect("persist-output ended")
        .unwrap()
        .unwrap();
    ok(&out);
    for name in ["foo-busybox", "fake-nats", "bar-nuts-v1"] {
        let s = w
            .secret(name)
            .await
            .unwrap_or_else(|| panic!("{name} written"));
        assert_eq!(data(&s)["fake"], "value", "{name}");
    }
    delete_namespace(&w.client, &w.ns).await;
}

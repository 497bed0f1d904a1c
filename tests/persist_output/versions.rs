//! Versioned output: new versions only on change, concurrent writers, taken numbers, retention.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use quarks_job::core::api::QuarksJob;
use serde_json::json;

use crate::support::WAIT;
use crate::support::delete_namespace;
use crate::support::kubelet::{self, State};
use crate::world::{HELLO, LABEL_QJOB, LABEL_VERSION, data, map, ok, world};

#[tokio::test]
async fn versioned_output_gets_a_new_version_only_when_it_changes() {
    let w = world("po-versioned").await;
    let q = w
        .qjob(
            "foo",
            Some(json!({
                "secretLabels": {"key": "value", "fake-label": "fake-deployment"},
                "outputMap": {"busybox": {"output.json": {"name": "foo-busybox", "versioned": true,
                    "secretLabels": {"quarks.cloudfoundry.org/entanglement": "foo-busybox"}}}},
            })),
        )
        .await;
    w.pod("p", "foo", &[("busybox", json!([]))]).await;
    let dir = w.out_dir("p");
    w.write(&dir, "busybox", "output.json", HELLO);
    w.finish("p", &[("busybox", State::Terminated(0))]).await;

    let out = w.run("p", &dir, &["--log-format", "json"]).await;
    let stdout = ok(&out);
    assert!(stdout.contains("'foo-busybox-v1' created"), "{stdout}");
    // one JSON log line per written secret, naming it, its version and its QuarksJob
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let written: Vec<_> = lines.iter().filter(|l| l.get("secret").is_some()).collect();
    assert_eq!(written.len(), 1, "{stderr}");
    let line = written[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["secret"], format!("{}/foo-busybox-v1", w.ns));
    assert_eq!(line["version"], 1);
    assert_eq!(line["outcome"], "created");
    assert_eq!(line["object"], format!("{}/foo", w.ns));
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("secret '{}/foo-busybox-v1' created", w.ns)),
        "{line}"
    );
    let v1 = w.secret("foo-busybox-v1").await.expect("first version");
    assert_eq!(
        v1.labels().clone(),
        map(&[
            ("quarks.cloudfoundry.org/entanglement", "foo-busybox"),
            ("quarks.cloudfoundry.org/container-name", "busybox"),
            ("fake-label", "fake-deployment"),
            ("quarks.cloudfoundry.org/secret-kind", "versionedSecret"),
            (LABEL_VERSION, "1"),
            ("key", "value"),
            (LABEL_QJOB, "foo"),
        ])
    );
    assert_eq!(
        v1.annotations()["quarks.cloudfoundry.org/source-description"],
        "created by quarksJob"
    );
    let owner = &v1.owner_references()[0];
    assert_eq!(
        (owner.name.as_str(), owner.uid.as_str(), owner.controller),
        ("foo", q.uid().unwrap().as_str(), Some(true))
    );
    assert_eq!(owner.api_version, "quarks.cloudfoundry.org/v1alpha1");

    // identical second run: no new version
    let stdout = ok(&w.run("p", &dir, &[]).await);
    assert!(stdout.contains("'foo-busybox-v1' unchanged"), "{stdout}");
    assert_eq!(
        w.output_secrets().await,
        BTreeSet::from(["foo-busybox-v1".to_string()])
    );

    // changed output: -v2, and -v1 stays as it was
    w.write(&dir, "busybox", "output.json", br#"{"hello": "changed"}"#);
    let stdout = ok(&w.run("p", &dir, &[]).await);
    assert!(stdout.contains("'foo-busybox-v2' created"), "{stdout}");
    let v2 = w.secret("foo-busybox-v2").await.expect("second version");
    assert_eq!(data(&v2), map(&[("hello", "changed")]));
    assert_eq!(v2.labels()[LABEL_VERSION], "2");
    assert_eq!(
        data(&w.secret("foo-busybox-v1").await.unwrap()),
        map(&[("hello", "world")])
    );
    delete_namespace(&w.client, &w.ns).await;
}

#[tokio::test]
async fn concurrent_runs_write_distinct_versions_and_lose_nothing() {
    const WRITERS: usize = 4;
    let w = world("po-race").await;
    w.qjob(
        "foo",
        Some(json!({"outputMap": {"busybox": {"o.json": {"name": "shared", "versioned": true}}}})),
    )
    .await;
    let pods: Vec<String> = (1..=WRITERS).map(|i| format!("p{i}")).collect();
    let mut runs = Vec::new();
    for pod in &pods {
        w.pod(pod, "foo", &[("busybox", json!([]))]).await;
        w.finish(pod, &[("busybox", State::Running)]).await;
        let dir = w.out_dir(pod);
        w.write(
            &dir,
            "busybox",
            "o.json",
            format!(r#"{{"from": "{pod}"}}"#).as_bytes(),
        );
        let child = w.command(pod, &dir, &[]).spawn().unwrap();
        runs.push(tokio::spawn(child.wait_with_output()));
    }
    // all writers wait; end their containers at once so that they race for the same numbers
    futures::future::join_all(
        pods.iter()
            .map(|pod| w.finish(pod, &[("busybox", State::Terminated(0))])),
    )
    .await;
    for run in runs {
        ok(&tokio::time::timeout(WAIT, run)
            .await
            .expect("persist-output ended")
            .unwrap()
            .unwrap());
    }
    let versions: BTreeSet<String> = (1..=WRITERS).map(|n| format!("shared-v{n}")).collect();
    assert_eq!(w.output_secrets().await, versions);
    let mut froms = BTreeSet::new();
    for name in &versions {
        froms.insert(data(&w.secret(name).await.unwrap())["from"].clone());
    }
    assert_eq!(froms, pods.iter().cloned().collect(), "every write kept");
    delete_namespace(&w.client, &w.ns).await;
}

/// A version number taken between persist-output's LIST and its CREATE (here: by a Secret that
/// is not even labelled as a version, so no LIST ever shows it) makes it take the next one.
#[tokio::test]
async fn a_taken_version_number_moves_on_to_the_next() {
    let w = world("po-taken").await;
    w.qjob(
        "foo",
        Some(json!({"outputMap": {"busybox": {"o.json": {"name": "shared", "versioned": true}}}})),
    )
    .await;
    let squatter: Secret = serde_json::from_value(
        json!({"metadata": {"name": "shared-v1"}, "stringData": {"x": "y"}}),
    )
    .unwrap();
    w.secrets()
        .create(&PostParams::default(), &squatter)
        .await
        .unwrap();
    w.pod("p", "foo", &[("busybox", json!([]))]).await;
    let dir = w.out_dir("p");
    w.write(&dir, "busybox", "o.json", HELLO);
    w.finish("p", &[("busybox", State::Terminated(0))]).await;
    let stdout = ok(&w.run("p", &dir, &[]).await);
    assert!(stdout.contains("'shared-v2' created"), "{stdout}");
    assert_eq!(
        data(&w.secret("shared-v2").await.unwrap()),
        map(&[("hello", "world")])
    );
    assert_eq!(
        data(&w.secret("shared-v1").await.unwrap()),
        map(&[("x", "y")]),
        "the other writer's data stays"
    );
    delete_namespace(&w.client, &w.ns).await;
}

/// Retention keeps the newest versions and every version a pod (whatever its phase), a Job or a
/// QuarksJob template of the namespace references.
#[tokio::test]
async fn retention_keeps_the_newest_and_whatever_is_referenced() {
    let w = world("po-retain").await;
    w.qjob(
        "foo",
        Some(json!({"outputMap": {"busybox": {"o.json": {"name": "kept", "versioned": true}}}})),
    )
    .await;
    w.pod("p", "foo", &[("busybox", json!([]))]).await;
    w.finish("p", &[("busybox", State::Terminated(0))]).await;
    let dir = w.out_dir("p");
    let history = ["--versioned-secret-history", "2"];
    let write = |n: u32| {
        w.write(
            &dir,
            "busybox",
            "o.json",
            format!(r#"{{"n": "{n}"}}"#).as_bytes(),
        );
        w.run("p", &dir, &history)
    };
    // a pod uses the first version, a Job the second, a QuarksJob template the third
    let consumer: Pod = serde_json::from_value(json!({
        "metadata": {"name": "consumer"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}],
                 "volumes": [{"name": "s", "secret": {"secretName": "kept-v1"}}]},
    }))
    .unwrap();
    w.pods()
        .create(&PostParams::default(), &consumer)
        .await
        .unwrap();
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "job"},
        "spec": {"parallelism": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox",
                "envFrom": [{"secretRef": {"name": "kept-v2"}}]}]}}},
    }))
    .unwrap();
    Api::<Job>::namespaced(w.client.clone(), &w.ns)
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
    let user: QuarksJob = serde_json::from_value(json!({
        "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
        "metadata": {"name": "user"},
        "spec": {"trigger": {"strategy": "manual"}, "template": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox",
                "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "kept-v3", "key": "n"}}}]}]}}}}},
    }))
    .unwrap();
    Api::<QuarksJob>::namespaced(w.client.clone(), &w.ns)
        .create(&PostParams::default(), &user)
        .await
        .unwrap();
    for n in 1..=6 {
        ok(&write(n).await);
    }
    let names = ["kept-v1", "kept-v2", "kept-v3", "kept-v5", "kept-v6"].map(String::from);
    assert_eq!(
        w.output_secrets().await,
        BTreeSet::from(names),
        "v4 pruned; v1, v2 and v3 are referenced"
    );
    assert_eq!(data(&w.secret("kept-v6").await.unwrap())["n"], "6");

    // a finished pod still counts (upstream pruned nothing; an earlier version here did)
    kubelet::finish_pod(&w.pods(), "consumer", 0).await;
    let stdout = ok(&write(7).await);
    assert!(stdout.contains("pruned 'kept-v5'"), "{stdout}");
    assert_eq!(
        w.output_secrets().await,
        BTreeSet::from(["kept-v1", "kept-v2", "kept-v3", "kept-v6", "kept-v7"].map(String::from))
    );
    delete_namespace(&w.client, &w.ns).await;
}

//! persist-output against an apiserver that fails: a loopback proxy in front of the real one
//! (`support::faulty_proxy`) answers chosen requests with 5xx/429, drops the connection before
//! or after passing the request on, or answers 403/422. Transient failures are retried with
//! bounded backoff, a lost answer is not written twice, and a write that fails for good leaves
//! no half set behind.

use std::collections::BTreeSet;

use quarks_job::persist::retry::API_BACKOFF;

use serde_json::json;

use crate::support::delete_namespace;
use crate::support::faulty_proxy::{Fault, FaultyProxy, Match};
use crate::support::kubelet::State;
use crate::support::shared;
use crate::world::{World, data, failed, map, ok, world};

/// A QuarksJob `foo` with `files` (file → `(secret, versioned)`) of container `busybox`, its
/// finished pod `p`, each file holding `{"n": "<n>"}`.
async fn setup(prefix: &str, files: &[(&str, &str, bool)]) -> World {
    let w = world(prefix).await;
    let entries: serde_json::Map<String, serde_json::Value> = files
        .iter()
        .map(|(f, name, versioned)| (f.to_string(), json!({"name": name, "versioned": versioned})))
        .collect();
    w.qjob("foo", Some(json!({"outputMap": {"busybox": entries}})))
        .await;
    w.pod("p", "foo", &[("busybox", json!([]))]).await;
    w.finish("p", &[("busybox", State::Terminated(0))]).await;
    write_all(&w, files, 1);
    w
}

fn write_all(w: &World, files: &[(&str, &str, bool)], n: u32) {
    for (f, _, _) in files {
        let content = format!(r#"{{"n": "{n}"}}"#);
        w.write(&w.out_dir("p"), "busybox", f, content.as_bytes());
    }
}

fn create_of(name: &str) -> Match {
    Match::new("POST", "/secrets").body(&format!("\"name\":\"{name}\""))
}

#[tokio::test]
async fn transient_errors_and_dropped_connections_are_retried() {
    let files = [("a.json", "alpha", false), ("v.json", "vers", true)];
    let w = setup("po-transient", &files).await;
    let proxy = FaultyProxy::start(shared());
    let ns = &w.ns;
    proxy.fail(Match::new("GET", "/version"), Fault::Status(503), 1);
    proxy.fail(
        Match::new("GET", &format!("/namespaces/{ns}/pods/p")),
        Fault::Status(500),
        1,
    );
    proxy.fail(Match::new("GET", "/quarksjobs/foo"), Fault::Drop, 1);
    proxy.fail(Match::new("GET", "/secrets/alpha"), Fault::Status(502), 1);
    proxy.fail(Match::new("GET", "/secrets?"), Fault::Status(429), 1);
    proxy.fail(create_of("alpha"), Fault::Status(503), 2);
    proxy.fail(create_of("vers-v1"), Fault::Drop, 1);
    proxy.fail(Match::new("POST", "/events"), Fault::Status(504), u32::MAX);
    let kubeconfig = proxy.kubeconfig_for_token(&format!("{ns}-transient"), &w.token);

    let out = w.run_with(&kubeconfig, "p", &w.out_dir("p"), &[]).await;
    let stdout = ok(&out);
    assert!(
        stdout.contains("'alpha' created") && stdout.contains("'vers-v1' created"),
        "{stdout}"
    );
    assert_eq!(
        proxy.count(&create_of("alpha")),
        3,
        "two 503s, then written"
    );
    assert_eq!(
        proxy.count(&create_of("vers-v1")),
        2,
        "dropped, then written"
    );
    assert_eq!(data(&w.secret("alpha").await.unwrap()), map(&[("n", "1")]));
    assert_eq!(
        w.output_secrets().await,
        BTreeSet::from(["alpha", "vers-v1"].map(String::from))
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "create secret '{ns}/alpha' failed (ApiError: injected by the test proxy: 503"
        )) && stderr.contains("attempt 2 of 8"),
        "{stderr}"
    );
    assert_eq!(
        proxy.count(&Match::new("POST", "/events")),
        0,
        "a successful run records no event"
    );
    delete_namespace(&w.client, &w.ns).await;
}

/// The apiserver did the write but the answer was lost: the retry finds the Secret (or version)
/// this run wrote and does not write it again.
#[tokio::test]
async fn a_write_whose_answer_was_lost_is_not_written_twice() {
    let files = [("a.json", "plain", false), ("v.json", "vers", true)];
    let w = setup("po-lost", &files).await;
    let proxy = FaultyProxy::start(shared());
    proxy.fail(create_of("plain"), Fault::ForwardThenDrop, 1);
    proxy.fail(create_of("vers-v1"), Fault::ForwardThenDrop, 1);
    let kubeconfig = proxy.kubeconfig_for_token(&format!("{}-lost", w.ns), &w.token);
    let stdout = ok(&w.run_with(&kubeconfig, "p", &w.out_dir("p"), &[]).await);
    assert!(
        stdout.contains("'plain' created") && stdout.contains("'vers-v1' created"),
        "{stdout}"
    );
    assert_eq!(
        w.output_secrets().await,
        BTreeSet::from(["plain", "vers-v1"].map(String::from)),
        "no second version for one output"
    );

    write_all(&w, &files, 2);
    proxy.fail(
        Match::new("PUT", "/secrets/plain"),
        Fault::ForwardThenDrop,
        1,
    );
    proxy.fail(create_of("vers-v2"), Fault::ForwardThenDrop, 1);
    let stdout = ok(&w.run_with(&kubeconfig, "p", &w.out_dir("p"), &[]).await);
    assert!(
        stdout.contains("'plain' updated") && stdout.contains("'vers-v2' created"),
        "{stdout}"
    );
    assert_eq!(data(&w.secret("plain").await.unwrap()), map(&[("n", "2")]));
    assert_eq!(
        w.output_secrets().await,
        BTreeSet::from(["plain", "vers-v1", "vers-v2"].map(String::from))
    );
    delete_namespace(&w.client, &w.ns).await;
}

/// Files 1..3 become `one` (plain, existing), `two-v<N>` (versioned) and `three` (plain, new):
/// the create of `three` fails for good, so the update of `one` and the new version of `two`
/// are undone.
async fn half_set(prefix: &str) -> (World, [(&'static str, &'static str, bool); 3]) {
    let files = [
        ("1.json", "one", false),
        ("2.json", "two", true),
        ("3.json", "three", false),
    ];
    let w = setup(prefix, &files).await;
    ok(&w.run("p", &w.out_dir("p"), &[]).await);
    w.secrets()
        .delete("three", &Default::default())
        .await
        .unwrap();
    write_all(&w, &files, 2);
    (w, files)
}

async fn assert_nothing_of_the_second_run(w: &World) {
    assert_eq!(data(&w.secret("one").await.unwrap()), map(&[("n", "1")]));
    assert_eq!(
        w.output_secrets().await,
        BTreeSet::from(["one", "two-v1"].map(String::from))
    );
}

#[tokio::test]
async fn a_refused_write_is_not_retried_and_leaves_no_half_set() {
    let (w, _) = half_set("po-half").await;
    let ns = &w.ns;
    for code in [422, 403] {
        let proxy = FaultyProxy::start(shared());
        proxy.fail(create_of("three"), Fault::Status(code), u32::MAX);
        let kubeconfig = proxy.kubeconfig_for_token(&format!("{ns}-half-{code}"), &w.token);
        let stderr = failed(&w.run_with(&kubeconfig, "p", &w.out_dir("p"), &[]).await);
        assert!(
            stderr.contains(&format!("failed to write secret '{ns}/three'"))
                && stderr.contains(&format!(
                    "nothing was written: rolled back {ns}/two-v2, {ns}/one"
                )),
            "{code}: {stderr}"
        );
        assert_eq!(proxy.count(&create_of("three")), 1, "{code} is not retried");
        assert_nothing_of_the_second_run(&w).await;
    }
    let warnings = w.warnings("foo").await;
    assert!(
        warnings
            .iter()
            .any(|(reason, note)| reason == "OutputFailed"
                && note.contains(&format!("failed to write secret '{ns}/three'"))),
        "{warnings:?}"
    );

    // without faults the same run writes the whole set
    let stdout = ok(&w.run("p", &w.out_dir("p"), &[]).await);
    assert!(
        stdout.contains("'one' updated")
            && stdout.contains("'two-v2' created")
            && stdout.contains("'three' created"),
        "{stdout}"
    );
    delete_namespace(&w.client, &w.ns).await;
}

#[tokio::test]
async fn an_apiserver_unavailable_beyond_the_budget_ends_the_run_with_nothing_written() {
    let (w, _) = half_set("po-budget").await;
    let ns = &w.ns;
    let proxy = FaultyProxy::start(shared());
    proxy.fail(create_of("three"), Fault::Status(503), u32::MAX);
    let kubeconfig = proxy.kubeconfig_for_token(&format!("{ns}-budget"), &w.token);
    let stderr = failed(&w.run_with(&kubeconfig, "p", &w.out_dir("p"), &[]).await);
    assert!(
        stderr.contains(&format!("failed to write secret '{ns}/three'"))
            && stderr.contains("injected by the test proxy: 503")
            && stderr.contains(&format!(
                "nothing was written: rolled back {ns}/two-v2, {ns}/one"
            )),
        "{stderr}"
    );
    assert_eq!(
        proxy.count(&create_of("three")),
        API_BACKOFF.attempts as usize,
        "bounded"
    );
    assert_nothing_of_the_second_run(&w).await;
    delete_namespace(&w.client, &w.ns).await;
}

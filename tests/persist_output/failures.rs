//! persist-output when things go wrong: a container that dies without writing its file, the
//! overall timeout, and a bad file among good ones (nothing written).

use serde_json::json;

use crate::support::WAIT;
use crate::support::delete_namespace;
use crate::support::kubelet::State;
use crate::world::{HELLO, failed, world};

#[tokio::test]
async fn a_container_that_dies_without_writing_fails_the_run_instead_of_hanging() {
    let w = world("po-nofile").await;
    w.qjob(
        "foo",
        Some(json!({"outputMap": {"busybox": {"output.json": {"name": "foo-busybox"}}}})),
    )
    .await;
    w.pod("p", "foo", &[("busybox", json!([]))]).await;
    w.finish("p", &[("busybox", State::Running)]).await;
    let dir = w.out_dir("p");
    let child = w.command("p", &dir, &[]).spawn().unwrap();
    let output = tokio::spawn(child.wait_with_output());
    w.finish("p", &[("busybox", State::Terminated(0))]).await;

    let out = tokio::time::timeout(WAIT, output)
        .await
        .expect("no hang")
        .unwrap()
        .unwrap();
    let stderr = failed(&out);
    let file = dir.join("busybox/output.json");
    assert!(
        stderr.contains(&format!(
            "container 'busybox' of pod '{}/p' terminated (exit code 0) without writing '{}'",
            w.ns,
            file.display()
        )),
        "{stderr}"
    );
    assert!(w.output_secrets().await.is_empty());
    delete_namespace(&w.client, &w.ns).await;
}

#[tokio::test]
async fn the_timeout_bounds_the_wait() {
    let w = world("po-timeout").await;
    w.qjob(
        "foo",
        Some(json!({"outputMap": {"busybox": {"output.json": {"name": "foo-busybox"}}}})),
    )
    .await;
    w.pod("p", "foo", &[("busybox", json!([]))]).await;
    let dir = w.out_dir("p");
    // the container never ends
    let stderr = failed(&w.run("p", &dir, &["--timeout", "2"]).await);
    assert!(
        stderr.contains(&format!(
            "timed out after 2s waiting for the output of pod '{}/p'",
            w.ns
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("container 'busybox' has not terminated"),
        "{stderr}"
    );
    delete_namespace(&w.client, &w.ns).await;
}

#[tokio::test]
async fn one_bad_file_means_no_secret_is_written() {
    let w = world("po-bad").await;
    w.qjob("foo", Some(json!({"outputMap": {
        "a": {"good.json": {"name": "good"}, "also-good.json": {"name": "also-good", "versioned": true}},
        "b": {"bad.json": {"name": "bad"}},
    }})))
    .await;
    w.pod("p", "foo", &[("a", json!([])), ("b", json!([]))])
        .await;
    let dir = w.out_dir("p");
    w.write(&dir, "a", "good.json", HELLO);
    w.write(&dir, "a", "also-good.json", HELLO);
    w.write(&dir, "b", "bad.json", br#"{"nested": {"not": "flat"}}"#);
    w.finish(
        "p",
        &[("a", State::Terminated(0)), ("b", State::Terminated(0))],
    )
    .await;

    let stderr = failed(&w.run("p", &dir, &[]).await);
    let file = dir.join("b/bad.json");
    assert!(
        stderr.contains(&format!(
            "nothing written, invalid output in pod '{}/p'",
            w.ns
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "container 'b', file '{}' has an object as the value of key 'nested'; only string values are allowed",
            file.display()
        )),
        "{stderr}"
    );
    assert!(
        w.output_secrets().await.is_empty(),
        "not even the good files were written"
    );
    delete_namespace(&w.client, &w.ns).await;
}

//! References and updateOnConfigChange against the real control plane: waiting for missing
//! references, config-change re-runs (data, versioned secrets, the set of references), changes
//! made while the operator was stopped, and the meltdown coalescing bursts.

#[path = "reconcile_config/objects.rs"]
mod objects;
mod reconcile_helpers;
mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use objects::{auto_updating, config_map, finish_last, refs, secret, update_config_map, versioned};
use quarks_job::core::api::Strategy;
use quarks_job::reconcile::status::REFERENCES_FOUND;
use reconcile_helpers::{World, condition, created_run, is_true, qjob};
use serde_json::json;

#[tokio::test]
async fn references_created_after_the_quarks_job_start_it() {
    let w = World::new("later").await;
    let _op = w.operator();
    secret(&w, "secret-a", "x", &[]).await;
    config_map(&w, "config-b", "x").await;
    w.create(qjob(
        "after-config-map",
        "now",
        refs("config-a", "secret-a"),
    ))
    .await;
    w.create(qjob("after-secret", "once", refs("config-b", "secret-b")))
        .await;
    w.create(qjob("after-both", "now", refs("config-c", "secret-c")))
        .await;
    let mut optional = refs("config-d", "secret-d");
    optional["volumes"][0]["configMap"]["optional"] = json!(true);
    optional["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["optional"] = json!(true);
    w.create(qjob("optional-only", "now", optional)).await;

    // optional references do not block
    w.wait_qjob("optional-only", "ran", |q| created_run(q) == 1)
        .await;
    for (name, missing) in [
        ("after-config-map", "ConfigMap 'config-a'"),
        ("after-secret", "Secret 'secret-b'"),
        ("after-both", "ConfigMap 'config-c'"),
    ] {
        let q = w
            .wait_qjob(name, "waiting for references", |q| {
                condition(q, REFERENCES_FOUND).is_some_and(|c| c.status == "False")
            })
            .await;
        let c = condition(&q, REFERENCES_FOUND).unwrap();
        assert_eq!(c.reason, "MissingReferences");
        assert!(c.message.contains(missing), "{name}: {}", c.message);
        assert!(
            w.jobs_of(name).await.is_empty(),
            "{name}: no Job while waiting"
        );
        assert!(
            matches!(q.strategy(), Some(Strategy::Now | Strategy::Once)),
            "{name}: trigger kept"
        );
        w.wait_event(name, "WaitingForReferences").await;
    }
    let q = w.get("after-both").await;
    assert!(
        condition(&q, REFERENCES_FOUND)
            .unwrap()
            .message
            .contains("Secret 'secret-c'")
    );

    config_map(&w, "config-a", "x").await;
    secret(&w, "secret-b", "x", &[]).await;
    config_map(&w, "config-c", "x").await;
    let q = w
        .wait_qjob("after-both", "message updated", |q| {
            condition(q, REFERENCES_FOUND)
                .is_some_and(|c| !c.message.contains("config-c") && c.message.contains("secret-c"))
        })
        .await;
    assert_eq!(created_run(&q), 0, "still one reference missing");
    secret(&w, "secret-c", "x", &[]).await;

    for name in ["after-config-map", "after-secret", "after-both"] {
        let q = w
            .wait_qjob(name, "ran once the references exist", |q| {
                created_run(q) == 1
            })
            .await;
        assert!(is_true(&q, REFERENCES_FOUND));
        assert!(matches!(
            q.strategy(),
            Some(Strategy::Manual | Strategy::Done)
        ));
        w.barrier(name).await;
        assert_eq!(w.jobs_of(name).await.len(), 1, "{name}");
    }
    w.cleanup().await;
}

#[tokio::test]
async fn config_changes_rerun_auto_errands() {
    let w = World::new("config").await;
    let _op = w.operator();
    config_map(&w, "config1", "a").await;
    secret(&w, "secret1", "a", &[]).await;
    config_map(&w, "config2", "a").await;
    w.create(auto_updating(
        "auto-errand-sleep-again",
        refs("config1", "secret1"),
    ))
    .await;
    // without updateOnConfigChange nothing re-runs
    w.create(qjob("not-updating", "once", refs("config1", "secret1")))
        .await;
    let name = "auto-errand-sleep-again";
    w.wait_qjob(name, "first run", |q| {
        created_run(q) == 1 && q.strategy() == Some(Strategy::Done)
    })
    .await;
    w.wait_qjob("not-updating", "first run", |q| created_run(q) == 1)
        .await;
    finish_last(&w, name).await;

    // ConfigMap data
    update_config_map(&w, "config1", json!({"data": {"key": "b"}})).await;
    let q = w
        .wait_qjob(name, "re-run after the ConfigMap changed", |q| {
            created_run(q) == 2
        })
        .await;
    assert_eq!(q.strategy(), Some(Strategy::Done));
    w.wait_event(name, "ConfigChanged").await;
    // metadata only: no re-run
    update_config_map(
        &w,
        "config1",
        json!({"metadata": {"labels": {"touched": "yes"}}}),
    )
    .await;
    w.barrier(name).await;
    assert_eq!(
        created_run(&w.get(name).await),
        2,
        "labels are not configuration"
    );

    // Secret data
    let patch = json!({"stringData": {"key": "b"}});
    Api::<Secret>::namespaced(w.client.clone(), &w.ns)
        .patch("secret1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    w.wait_qjob(name, "re-run after the Secret changed", |q| {
        created_run(q) == 3
    })
    .await;

    // the set of references
    w.patch_spec(
        name,
        json!({"template": {"spec": {"template": {"spec": {"volumes": [{"name": "config", "configMap": {"name": "config2"}}]}}}}}),
    )
    .await;
    w.wait_qjob(name, "re-run after the references changed", |q| {
        created_run(q) == 4
    })
    .await;
    w.barrier(name).await;
    assert_eq!(created_run(&w.get(name).await), 4);
    // a still-running earlier Job is not killed: the Jobs of runs 2–4 all exist
    assert_eq!(w.jobs_of(name).await.len(), 3);

    w.barrier("not-updating").await;
    assert_eq!(created_run(&w.get("not-updating").await), 1);
    w.cleanup().await;
}

#[tokio::test]
async fn newer_versions_of_a_versioned_secret_rerun_exact_prefix_only() {
    let w = World::new("versioned").await;
    let _op = w.operator();
    config_map(&w, "plain", "a").await;
    versioned(&w, "creds", 1, "one").await;
    w.create(auto_updating("uses-creds", refs("plain", "creds-v1")))
        .await;
    w.wait_qjob("uses-creds", "first run", |q| created_run(q) == 1)
        .await;
    // another versioned secret whose prefix merely contains `creds` (upstream re-ran on this)
    versioned(&w, "my-creds", 3, "x").await;
    w.barrier("uses-creds").await;
    assert_eq!(
        created_run(&w.get("uses-creds").await),
        1,
        "no substring matching"
    );
    versioned(&w, "creds", 2, "two").await;
    w.wait_qjob("uses-creds", "re-run for the newer version", |q| {
        created_run(q) == 2
    })
    .await;
    w.barrier("uses-creds").await;
    assert_eq!(created_run(&w.get("uses-creds").await), 2);
    w.cleanup().await;
}

#[tokio::test]
async fn config_changed_while_the_operator_was_stopped_reruns_once_after_start() {
    let w = World::new("stopped").await;
    let op = w.operator();
    config_map(&w, "config1", "a").await;
    config_map(&w, "config2", "a").await;
    secret(&w, "secret1", "a", &[]).await;
    w.create(auto_updating("changed", refs("config1", "secret1")))
        .await;
    w.create(auto_updating("unchanged", refs("config2", "secret1")))
        .await;
    w.wait_qjob("changed", "first run", |q| created_run(q) == 1)
        .await;
    w.wait_qjob("unchanged", "first run", |q| created_run(q) == 1)
        .await;
    op.stop().await;

    update_config_map(&w, "config1", json!({"data": {"key": "b"}})).await;
    update_config_map(&w, "config1", json!({"data": {"key": "c"}})).await;

    let _op = w.operator();
    w.wait_qjob("changed", "one re-run after start", |q| created_run(q) == 2)
        .await;
    for name in ["changed", "unchanged"] {
        w.barrier(name).await;
    }
    assert_eq!(
        created_run(&w.get("changed").await),
        2,
        "one re-run for both edits"
    );
    assert_eq!(
        created_run(&w.get("unchanged").await),
        1,
        "nothing changed for it"
    );
    w.cleanup().await;
}

#[tokio::test]
async fn meltdown_coalesces_a_burst_of_config_changes() {
    let w = World::new("meltdown").await;
    let mut config = w.config();
    config.meltdown = Duration::from_secs(8);
    let _op = reconcile_helpers::Operator::start(w.client.clone(), config);
    config_map(&w, "config1", "a").await;
    secret(&w, "secret1", "a", &[]).await;
    w.create(auto_updating("bursty", refs("config1", "secret1")))
        .await;
    w.wait_qjob("bursty", "first run", |q| created_run(q) == 1)
        .await;
    // within the meltdown after the first Job: all edits wait and become one run
    for v in ["b", "c", "d"] {
        update_config_map(&w, "config1", json!({"data": {"key": v}})).await;
    }
    let q = w
        .wait_qjob("bursty", "one coalesced re-run", |q| created_run(q) == 2)
        .await;
    let first = w
        .jobs_of("bursty")
        .await
        .iter()
        .filter_map(|j| j.creation_timestamp())
        .min()
        .unwrap();
    let since = q
        .status
        .unwrap()
        .last_reconcile
        .unwrap()
        .0
        .duration_since(first.0);
    assert!(
        since >= k8s_openapi::jiff::SignedDuration::from_secs(7),
        "re-run waited for the meltdown ({since:?})"
    );
    w.barrier("bursty").await;
    assert_eq!(created_run(&w.get("bursty").await), 2);
    w.cleanup().await;
}

#[tokio::test]
async fn upstream_auto_errand_updating_example_reruns_when_applied_again() {
    let w = World::new("example").await;
    let _op = w.operator();
    let dir = support::repo_root().join("tests/fixtures/upstream-examples");
    let apply = |file: &str| {
        let path = dir.join(file);
        support::kubectl(
            &support::shared().kubeconfig,
            &["apply", "-n", &w.ns, "-f", path.to_str().unwrap()],
        )
        .unwrap()
    };
    apply("qjob_auto-errand-updating.yaml");
    let name = "auto-errand-sleep-again";
    let q = w
        .wait_qjob(name, "ran", |q| {
            created_run(q) == 1 && q.strategy() == Some(Strategy::Done)
        })
        .await;
    w.finish_job(
        q.status.as_ref().unwrap().last_job_name.as_ref().unwrap(),
        0,
    )
    .await;
    w.wait_qjob(name, "completed", |q| {
        q.status.as_ref().is_some_and(|s| s.completed)
    })
    .await;
    apply("qjob_auto-errand-updating_updated.yaml");
    let q = w
        .wait_qjob(name, "ran again", |q| created_run(q) == 2)
        .await;
    assert_eq!(q.strategy(), Some(Strategy::Done));
    w.barrier(name).await;
    assert_eq!(created_run(&w.get(name).await), 2);
    w.cleanup().await;
}

#[tokio::test]
async fn init_container_and_projected_references_are_waited_for() {
    let w = World::new("initrefs").await;
    let _op = w.operator();
    let pod = json!({
        "initContainers": [{"name": "init", "image": "busybox", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
        "volumes": [{"name": "p", "projected": {"sources": [{"configMap": {"name": "projected-config"}}]}}]
    });
    w.create(qjob("init-refs", "now", pod)).await;
    let q = w
        .wait_qjob("init-refs", "waiting", |q| {
            condition(q, REFERENCES_FOUND).is_some_and(|c| c.status == "False")
        })
        .await;
    let message = condition(&q, REFERENCES_FOUND).unwrap().message;
    assert!(
        message.contains("ConfigMap 'projected-config'")
            && message.contains("Secret 'init-secret'"),
        "{message}"
    );
    secret(&w, "init-secret", "x", &[]).await;
    config_map(&w, "projected-config", "x").await;
    w.wait_qjob("init-refs", "ran", |q| created_run(q) == 1)
        .await;
    w.wait_jobs("init-refs", 1).await;
    w.cleanup().await;
}

//! `quarks-job persist-output` against the real control plane: the test plays the kubelet (it
//! writes the output files into a temp dir standing in for `/mnt/quarks` and marks containers
//! terminated through `pods/status`) and runs the real binary as a process, authenticated as a
//! ServiceAccount bound only to the shipped ClusterRole `qjob-persist-output`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use quarks_job::api::QuarksJob;
use serde_json::{Value, json};
use support::kubelet::{self, State};
use support::{
    admin_client, delete_namespace, ensure_crd, eventually, eventually_some, kubectl, shared,
    test_namespace,
};

/// Safety net for anything that waits; no assertion is about speed.
const WAIT: Duration = Duration::from_secs(90);
const LABEL_QJOB: &str = "quarks.cloudfoundry.org/qjob-name";
const LABEL_VERSION: &str = "quarks.cloudfoundry.org/secret-version";

/// One test's world: a namespace, the persist-output ServiceAccount's kubeconfig, an output dir.
struct World {
    client: Client,
    ns: String,
    sa_kubeconfig: PathBuf,
    out: tempfile::TempDir,
}

fn apply_cluster_role() {
    static APPLIED: Mutex<bool> = Mutex::new(false);
    let mut applied = APPLIED.lock().unwrap();
    if !*applied {
        let file = support::repo_root().join("manifests/persist-output-clusterrole.yaml");
        kubectl(
            &shared().kubeconfig,
            &["apply", "-f", file.to_str().unwrap()],
        )
        .expect("apply the ClusterRole");
        *applied = true;
    }
}

async fn world(prefix: &str) -> World {
    let client = admin_client().await;
    ensure_crd(&client).await;
    apply_cluster_role();
    let ns = test_namespace(&client, prefix, &[]).await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "persist-output"}})).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "persist-output"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "qjob-persist-output"},
        "subjects": [{"kind": "ServiceAccount", "name": "persist-output", "namespace": ns}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    // Kubernetes 1.20: the token controller puts the token into a Secret listed in `.secrets`.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let token = eventually_some(WAIT, "the persist-output ServiceAccount token", || async {
        let sa = sas.get("persist-output").await.ok()?;
        let name = sa.secrets?.first()?.name.clone()?;
        let secret = secrets.get(&name).await.ok()?;
        Some(String::from_utf8(secret.data?.get("token")?.0.clone()).unwrap())
    })
    .await;
    let sa_kubeconfig = shared().kubeconfig_for_token(&format!("{ns}-persist-output"), &token);
    World {
        client,
        ns,
        sa_kubeconfig,
        out: tempfile::tempdir().unwrap(),
    }
}

impl World {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn qjob(&self, name: &str, output: Option<Value>) -> QuarksJob {
        let mut spec = json!({"trigger": {"strategy": "manual"}, "template": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "busybox", "image": "busybox"}]}}}}});
        if let Some(output) = output {
            spec["output"] = output;
        }
        let q: QuarksJob = serde_json::from_value(json!({
            "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap();
        Api::<QuarksJob>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &q)
            .await
            .unwrap()
    }

    /// A pod of QuarksJob `qjob` with these containers (each `(name, env)`) plus `output-persist`.
    async fn pod(&self, name: &str, qjob: &str, containers: &[(&str, Value)]) {
        let mut list: Vec<Value> = containers
            .iter()
            .map(|(c, env)| json!({"name": c, "image": "busybox", "env": env}))
            .collect();
        list.push(
            json!({"name": "output-persist", "image": "quarks-job", "args": ["persist-output"]}),
        );
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {LABEL_QJOB: qjob}},
            "spec": {"restartPolicy": "Never", "containers": list},
        }))
        .unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
    }

    fn out_dir(&self, sub: &str) -> PathBuf {
        self.out.path().join(sub)
    }

    /// What a container writes to `/mnt/quarks/<file>`; the sidecar sees `<dir>/<container>/<file>`.
    fn write(&self, dir: &Path, container: &str, file: &str, content: &[u8]) {
        std::fs::create_dir_all(dir.join(container)).unwrap();
        std::fs::write(dir.join(container).join(file), content).unwrap();
    }

    fn command(&self, pod: &str, dir: &Path, extra: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_quarks-job"));
        cmd.args(["persist-output", "--output-dir", dir.to_str().unwrap()]);
        if !extra.contains(&"--timeout") {
            cmd.args(["--timeout", "120"]); // a safety net only
        }
        cmd.args(extra)
            .env("POD_NAME", pod)
            .env("NAMESPACE", &self.ns)
            .env("KUBECONFIG", &self.sa_kubeconfig)
            .env("LOG_LEVEL", "info")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, pod: &str, dir: &Path, extra: &[&str]) -> Output {
        let out = tokio::time::timeout(WAIT * 2, self.command(pod, dir, extra).output())
            .await
            .expect("persist-output ended")
            .expect("persist-output ran");
        eprintln!(
            "--- persist-output {pod}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    async fn secret(&self, name: &str) -> Option<Secret> {
        self.secrets().get_opt(name).await.unwrap()
    }

    /// Names of the Secrets persist-output wrote (not the ServiceAccount tokens).
    async fn output_secrets(&self) -> BTreeSet<String> {
        let list = self.secrets().list(&ListParams::default()).await.unwrap();
        list.items
            .into_iter()
            .filter(|s| s.type_.as_deref() == Some("Opaque"))
            .map(|s| s.name_any())
            .collect()
    }

    async fn finish(&self, pod: &str, states: &[(&str, State)]) {
        kubelet::set_containers(&self.pods(), pod, states).await;
    }
}

fn data(s: &Secret) -> BTreeMap<String, String> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.0.clone()).unwrap()))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "persist-output failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "persist-output should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const HELLO: &[u8] = br#"{"hello": "world"}"#;

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

    let stdout = ok(&w.run("p", &dir, &[]).await);
    assert!(stdout.contains("'foo-busybox-v1' created"), "{stdout}");
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

#[tokio::test]
async fn retention_keeps_the_newest_and_what_pods_use() {
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
    for n in 1..=2 {
        w.write(
            &dir,
            "busybox",
            "o.json",
            format!(r#"{{"n": "{n}"}}"#).as_bytes(),
        );
        ok(&w.run("p", &dir, &history).await);
    }
    // a consumer pod (not finished) uses the first version
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
    for n in 3..=4 {
        w.write(
            &dir,
            "busybox",
            "o.json",
            format!(r#"{{"n": "{n}"}}"#).as_bytes(),
        );
        ok(&w.run("p", &dir, &history).await);
    }
    let names = ["kept-v1", "kept-v3", "kept-v4"].map(String::from);
    assert_eq!(
        w.output_secrets().await,
        BTreeSet::from(names),
        "v2 pruned; v1 is in use"
    );
    assert_eq!(data(&w.secret("kept-v4").await.unwrap())["n"], "4");

    // once the consumer has finished, its version may go too
    kubelet::finish_pod(&w.pods(), "consumer", 0).await;
    w.write(&dir, "busybox", "o.json", br#"{"n": "5"}"#);
    let stdout = ok(&w.run("p", &dir, &history).await);
    assert!(stdout.contains("pruned"), "{stdout}");
    assert_eq!(
        w.output_secrets().await,
        BTreeSet::from(["kept-v4", "kept-v5"].map(String::from))
    );
    delete_namespace(&w.client, &w.ns).await;
}

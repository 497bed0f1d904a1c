//! The command line as a user meets it: help, version, usage errors, and a clear failure when
//! the cluster cannot be reached. No control plane needed.

mod support;

use std::process::Output;

use support::process::quarks_job;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = quarks_job();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run quarks-job")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_shows_upstream_flags_with_their_env_vars_and_defaults() {
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for expected in [
        "Usage: quarks-job",
        "--apply-crd",
        "(APPLY_CRD) If true, apply CRDs on start",
        "(CTX_TIMEOUT) context timeout for each k8s API request in seconds",
        "[default: 300]",
        "-o, --docker-image-org",
        "[default: cfcontainerization]",
        "(DOCKER_IMAGE_PULL_POLICY) Image pull policy",
        "[default: IfNotPresent]",
        "-r, --docker-image-repository",
        "-t, --docker-image-tag",
        "-c, --kubeconfig",
        "(KUBECONFIG) Path to a kubeconfig, not required in-cluster",
        "-l, --log-level",
        "[default: debug]",
        "(MAX_WORKERS) Maximum number of workers concurrently running the controller",
        "(MELTDOWN_DURATION)",
        "[default: 60]",
        "(MELTDOWN_REQUEUE_AFTER)",
        "[default: 30]",
        "(MONITORED_ID) only monitor namespaces with this id in their namespace label",
        "[default: default]",
        "(LEADER_ELECTION) If true, only the replica holding the Lease",
        "(LEADER_ELECTION_LEASE_DURATION)",
        "[default: 15]",
        "persist-output",
        "Persist a file into a kube secret",
        "version",
        "crd",
    ] {
        assert!(help.contains(expected), "help lacks {expected:?}:\n{help}");
    }
    // The help never echoes the value of an environment variable (e.g. a kubeconfig path).
    let out = run(&["--help"], &[("KUBECONFIG", "/secret/place")]);
    assert!(!text(&out.stdout).contains("/secret/place"));
}

#[test]
fn persist_output_help_shows_its_namespace_flag() {
    let out = run(&["persist-output", "--help"], &[]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(
        help.contains("(NAMESPACE) namespace where persist output will run"),
        "{help}"
    );
}

#[test]
fn version_prints_a_semantic_version_and_build_info() {
    let out = run(&["version"], &[]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    let first = stdout.lines().next().unwrap();
    let version = first.strip_prefix("Quarks-Job Version: ").expect(&stdout);
    let parts: Vec<&str> = version.split('.').collect();
    assert_eq!(parts.len(), 3, "{version}");
    assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()), "{version}");
    assert!(stdout.contains("Rust Version: rustc "), "{stdout}");
    assert!(stdout.contains("OS/Arch: linux/"), "{stdout}");
}

type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_flag_values_exit_2_with_a_message_naming_the_flag() {
    // (arguments, environment, what the message must name)
    let cases: &[Case] = &[
        (&["--max-workers", "zero"], &[], "--max-workers"),
        (&["--max-workers", "0"], &[], "--max-workers"),
        (&["--ctx-timeout", "soon"], &[], "--ctx-timeout"),
        (&["--log-level", "loud"], &[], "--log-level"),
        (
            &["--docker-image-pull-policy", "Sometimes"],
            &[],
            "--docker-image-pull-policy",
        ),
        (
            &["--monitored-id", "no spaces allowed"],
            &[],
            "--monitored-id",
        ),
        (&["--apply-crd=perhaps"], &[], "--apply-crd"),
        (&["--no-such-flag"], &[], "--no-such-flag"),
        // values from the environment are checked the same way
        (&[], &[("MAX_WORKERS", "-3")], "--max-workers"),
        (&[], &[("DOCKER_IMAGE_TAG", "")], "DOCKER_IMAGE_TAG"),
        (&["--leader-election=maybe"], &[], "--leader-election"),
        (
            &["--leader-election-lease-duration", "0"],
            &[],
            "--leader-election-lease-duration",
        ),
        // a leader must give up before the others may take over
        (
            &["--leader-election-renew-deadline", "20"],
            &[],
            "renew deadline (20s) must be less than the lease duration (15s)",
        ),
        (
            &[],
            &[("LEADER_ELECTION_RETRY_PERIOD", "10")],
            "retry period (10s) must be less than the renew deadline (10s)",
        ),
        // the injected container's resources: quantities, and no request above its limit
        (
            &["--output-persist-memory-limit", "128MB"],
            &[],
            "--output-persist-memory-limit",
        ),
        (
            &[],
            &[("OUTPUT_PERSIST_CPU_REQUEST", "1")],
            "the output-persist cpu request 1 exceeds its limit 250m",
        ),
    ];
    for (args, env, names) in cases {
        let out = run(args, env);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains("error:") && stderr.contains(names),
            "{args:?} {env:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn an_unreachable_cluster_is_a_clear_error_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    // a port on loopback where nothing listens
    let port: u16 = support::free_port().parse().unwrap();
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n\
             users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n\
             current-context: x\n"
        ),
    )
    .unwrap();
    let out = run(&["--kubeconfig", kc.to_str().unwrap()], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("quarks-job command failed. invalid kube config"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")),
        "the message names the server: {stderr}"
    );

    let out = run(&["--kubeconfig", "/nonexistent/kubeconfig"], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("invalid kube config: /nonexistent/kubeconfig"),
        "{stderr}"
    );
}

#[test]
fn committed_crd_matches_the_types() {
    let out = run(&["crd"], &[]);
    assert!(out.status.success());
    let committed =
        std::fs::read_to_string(support::repo_root().join("manifests/crd.yaml")).unwrap();
    assert!(
        text(&out.stdout) == committed,
        "manifests/crd.yaml is out of date: run `make crd` and commit the result"
    );
}

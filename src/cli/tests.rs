//! Command-line parsing: upstream names, env vars, defaults and clear errors.

use super::*;
use clap::CommandFactory;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("quarks-job").chain(args.iter().copied()))
}

#[test]
fn definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn upstream_defaults() {
    // Environment variables would change the defaults; the parser is exercised without them
    // in the CLI integration tests, here we only look at explicit flags.
    let cli = parse(&[
        "--monitored-id",
        "x",
        "--apply-crd=false",
        "-o",
        "org",
        "-r",
        "repo",
        "-t",
        "1.2.3",
    ])
    .unwrap();
    assert!(!cli.operator.apply_crd);
    assert_eq!(cli.operator.monitored_id, "x");
    assert_eq!(cli.operator.operator_image(), "org/repo:1.2.3");
    assert!(cli.command.is_none());
    assert_eq!(cli.operator.job_history, DEFAULT_JOB_HISTORY);
    let cli = parse(&["--job-history", "0"]).unwrap();
    assert_eq!(cli.operator.job_history, 0, "0 keeps all");
    assert_eq!(
        parse(&[]).unwrap().operator.run_history,
        DEFAULT_RUN_HISTORY
    );
    assert_eq!(
        parse(&["--run-history", "20"])
            .unwrap()
            .operator
            .run_history,
        20
    );
    assert!(
        parse(&["--run-history", "21"]).is_err(),
        "the status stays small"
    );
}

#[test]
fn image_without_org_is_repository_and_tag() {
    let cli = parse(&["-o", "", "-r", "quarks-job", "-t", "v1"]).unwrap();
    assert_eq!(cli.operator.operator_image(), "quarks-job:v1");
}

#[test]
fn bad_values_are_usage_errors() {
    for args in [
        &["--max-workers", "0"][..],
        &["--max-workers", "many"],
        &["--job-history", "-1"],
        &["--ctx-timeout", "-1"],
        &["--log-level", "loud"],
        &["--docker-image-pull-policy", "Sometimes"],
        &["--docker-image-tag", ""],
        &["--monitored-id", "not a label"],
        &["--apply-crd=maybe"],
        &["--output-persist-memory-limit", "128MB"],
        &["--output-persist-cpu-request", "-1"],
    ] {
        let err = parse(args).expect_err(&format!("{args:?} must be rejected"));
        assert_eq!(err.exit_code(), 2, "{args:?}");
    }
}

#[test]
fn output_persist_resources_default_to_requests_and_limits_and_empty_means_none() {
    let cli = parse(&[]).unwrap();
    let r = cli.webhook.output_resources().requirements().unwrap();
    assert_eq!(r.requests.unwrap()["cpu"].0, "10m");
    assert_eq!(r.limits.unwrap()["memory"].0, "128Mi");
    let cli = parse(&[
        "--output-persist-cpu-limit",
        "",
        "--output-persist-cpu-request",
        "0.5",
    ])
    .unwrap();
    let r = cli.webhook.output_resources().requirements().unwrap();
    assert_eq!(r.requests.unwrap()["cpu"].0, "0.5");
    assert!(!r.limits.unwrap().contains_key("cpu"));
}

#[test]
fn empty_monitored_id_means_default() {
    assert_eq!(parse_monitored_id("").unwrap(), "default");
    assert_eq!(parse_monitored_id("staging-1").unwrap(), "staging-1");
    assert!(parse_monitored_id(&"a".repeat(64)).is_err());
    assert!(parse_monitored_id("-a").is_err());
}

#[test]
fn subcommands() {
    assert!(matches!(
        parse(&["crd"]).unwrap().command,
        Some(Command::Crd)
    ));
    assert!(matches!(
        parse(&["version"]).unwrap().command,
        Some(Command::Version)
    ));
    let p = parse(&["persist-output", "--namespace", "ns1"]).unwrap();
    match p.command {
        Some(Command::PersistOutput(a)) => assert_eq!(a.namespace, "ns1"),
        other => panic!("unexpected {other:?}"),
    }
    let p = parse(&[
        "persist-output",
        "--pod-name",
        "p1",
        "--output-dir",
        "/tmp/o",
        "--timeout",
        "30",
        "--versioned-secret-history",
        "3",
    ])
    .unwrap();
    match p.command {
        Some(Command::PersistOutput(a)) => {
            assert_eq!(a.pod_name.as_deref(), Some("p1"));
            assert_eq!(a.output_dir, "/tmp/o");
            assert_eq!((a.timeout, a.versioned_secret_history), (30, 3));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(parse(&["persist-output", "--timeout", "soon"]).is_err());
    assert!(parse(&["persist-output", "--output-dir", ""]).is_err());
    // log flags are global
    let p = parse(&["persist-output", "--log-level", "info"]).unwrap();
    assert_eq!(p.log.log_level, "info");
}

#[test]
fn help_names_every_env_var() {
    let help = Cli::command().render_long_help().to_string();
    for env in ENV_VARS {
        assert!(
            help.contains(&format!("({env})")),
            "help lacks {env}:\n{help}"
        );
    }
}

#[test]
fn persist_output_help_names_every_env_var() {
    let mut cmd = Cli::command();
    let help = cmd
        .find_subcommand_mut("persist-output")
        .unwrap()
        .render_long_help()
        .to_string();
    for env in [
        "NAMESPACE",
        "POD_NAME",
        "OUTPUT_DIR",
        "OUTPUT_TIMEOUT",
        "VERSIONED_SECRET_HISTORY",
    ] {
        assert!(
            help.contains(&format!("({env})")),
            "help lacks {env}:\n{help}"
        );
    }
}

#[test]
fn version_text_has_upstream_first_line() {
    let text = version_text();
    assert!(text.starts_with(&format!("Quarks-Job Version: {VERSION}\n")));
    assert!(text.contains("OS/Arch: "));
}

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use quarks_job::cli::plugin::{PluginCli, PluginCommand};
use quarks_job::cli::{Cli, Command};
use quarks_job::core::api;
use quarks_job::metrics::Metrics;
use quarks_job::{cli, operator, persist, plugin, telemetry};

/// The name the plugin is installed as; kubectl runs `kubectl-qjob` for `kubectl qjob`.
const PLUGIN_NAME: &str = "kubectl-qjob";

fn main() -> ExitCode {
    quarks_job::install_crypto_provider();
    // argv[0] `kubectl-qjob` (a symlink or copy), or `quarks-job qjob ...`: the plugin.
    let args: Vec<OsString> = std::env::args_os().collect();
    let invoked_as = args.first().and_then(|a| {
        std::path::Path::new(a)
            .file_stem()
            .map(|s| s.to_os_string())
    });
    if invoked_as.as_deref() == Some(PLUGIN_NAME.as_ref()) {
        return plugin_main(args);
    }
    if args.get(1).is_some_and(|a| a == "qjob") {
        let rest = std::iter::once(OsString::from(PLUGIN_NAME)).chain(args.into_iter().skip(2));
        return plugin_main(rest.collect());
    }
    // Usage errors print clap's message and exit with code 2.
    let cli = Cli::parse();
    let checked = cli::leader_timings(&cli.leader)
        .check()
        .and_then(|()| cli.webhook.output_resources().requirements().map(drop));
    if let Err(message) = checked {
        Cli::command()
            .error(clap::error::ErrorKind::ValueValidation, message)
            .exit();
    }
    match cli.command {
        Some(Command::Version) => {
            print!("{}", cli::version_text());
            return ExitCode::SUCCESS;
        }
        Some(Command::Crd) => {
            print!("{}", api::crd_yaml());
            return ExitCode::SUCCESS;
        }
        Some(Command::Completions { shell }) => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "quarks-job", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Command::Qjob { args }) => {
            let rest = std::iter::once(OsString::from(PLUGIN_NAME)).chain(args.iter().cloned());
            return plugin_main(rest.collect());
        }
        _ => {}
    }
    telemetry::init(&cli::log_settings(&cli.log));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("quarks-job command failed. cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Some(Command::PersistOutput(args)) => {
                let settings = cli::persist_settings(args)?;
                Ok(persist::run_persist_output(&settings, cli.log.kubeconfig.as_deref()).await?)
            }
            // the one metrics registry of the process
            _ => operator::run_operator(cli::operator_settings(&cli, Metrics::new())).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(
                error.kind = e.metric_label(),
                "quarks-job command failed. {e}"
            );
            ExitCode::FAILURE
        }
    }
}

/// `kubectl qjob`: usage errors exit 2 (clap's), the rest as `plugin::decide` says.
fn plugin_main(args: Vec<OsString>) -> ExitCode {
    let cli = PluginCli::try_parse_from(args).unwrap_or_else(|e| e.exit());
    let Some(request) = cli.command.request() else {
        if let PluginCommand::Completions(c) = &cli.command {
            let mut cmd = PluginCli::command();
            clap_complete::generate(c.shell, &mut cmd, PLUGIN_NAME, &mut std::io::stdout());
        }
        return ExitCode::SUCCESS;
    };
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(plugin::run(&(&cli.target).into(), &request)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

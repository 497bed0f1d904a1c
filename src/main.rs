use std::process::ExitCode;

use clap::Parser;
use quarks_job::cli::{Cli, Command};
use quarks_job::core::api;
use quarks_job::metrics::Metrics;
use quarks_job::{cli, operator, persist, telemetry};

fn main() -> ExitCode {
    quarks_job::install_crypto_provider();
    // Usage errors print clap's message and exit with code 2.
    let cli = Cli::parse();
    let checked = cli::leader_timings(&cli.leader)
        .check()
        .and_then(|()| cli.webhook.output_resources().requirements().map(drop));
    if let Err(message) = checked {
        use clap::CommandFactory;
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

//! The kubectl plugin's command line: `kubectl qjob ...` (the binary called `kubectl-qjob`) or
//! `quarks-job qjob ...`. Kubeconfig, context and namespace flags as kubectl's.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::VERSION;
use crate::plugin;

/// `kubectl qjob`: run an errand and see what it did.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "kubectl-qjob",
    bin_name = "kubectl-qjob",
    about = "Run QuarksJob errands and see what they did",
    long_about = "Run QuarksJob errands and see what they did: trigger a run, wait for it, follow \
                  its logs, and list the Secrets it wrote. Installed as kubectl-qjob on PATH, it \
                  is `kubectl qjob`.",
    version = VERSION,
    max_term_width = 120
)]
pub struct PluginCli {
    /// Kubeconfig and namespace, as kubectl's.
    #[command(flatten)]
    pub target: Target,

    /// What to do.
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// Where to talk to, as kubectl's flags.
#[derive(Args, Debug, Clone, Default)]
pub struct Target {
    /// Path to the kubeconfig file (else $KUBECONFIG, else ~/.kube/config, else in-cluster)
    #[arg(long, global = true, env = "KUBECONFIG", hide_env = true)]
    pub kubeconfig: Option<String>,

    /// The kubeconfig context to use
    #[arg(long, global = true)]
    pub context: Option<String>,

    /// The namespace (else the context's namespace, else `default`)
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
}

/// Output format of `run`, `status` and `outputs`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// The record(s) as JSON.
    Json,
    /// The record(s) as YAML.
    Yaml,
    /// `resource/name` only.
    Name,
}

/// The plugin's subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum PluginCommand {
    /// Trigger a run of an errand (strategy manual → now) and optionally wait for it
    #[command(
        long_about = "Trigger a run of the errand NAME: one guarded patch of spec.trigger.strategy \
                      from manual to now. With --wait, wait for the run's Job and print a summary; \
                      exit 0 when it succeeded, 1 when it failed, 124 on timeout; 2 on usage \
                      errors and refusals (once/done QuarksJobs, a run already triggered)."
    )]
    Run(RunArgs),
    /// Show the last runs of a QuarksJob as a table
    Status(StatusArgs),
    /// Show the Secrets a run wrote, with their versions (never their data)
    Outputs(OutputsArgs),
    /// List QuarksJobs with their strategy, last result and last run time
    List(ListArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(CompletionsArgs),
}

/// `run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The QuarksJob
    pub name: String,
    /// Wait for the run's Job to finish; the exit code tells how it ended
    #[arg(short = 'w', long)]
    pub wait: bool,
    /// How long to wait at most (e.g. 90s, 10m, 1h); with --wait or --logs
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Follow the logs of the run's containers, each line prefixed with its container (implies --wait)
    #[arg(long)]
    pub logs: bool,
    /// With --logs: also the output-persist container
    #[arg(long, requires = "logs")]
    pub all_containers: bool,
    /// Print the run's record as json or yaml, or the Job as job.batch/NAME (name)
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

/// `status`.
#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// The QuarksJob
    pub name: String,
    /// Print the runs as json or yaml instead of a table
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

/// `outputs`.
#[derive(Args, Debug, Clone)]
pub struct OutputsArgs {
    /// The QuarksJob
    pub name: String,
    /// The run (default: the newest finished run)
    #[arg(long)]
    pub run: Option<i64>,
    /// Print the Secrets as json, yaml, or secret/NAME lines
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

/// `list`.
#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    /// QuarksJobs of every namespace
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// `completions`.
#[derive(Args, Debug, Clone)]
pub struct CompletionsArgs {
    /// The shell
    pub shell: clap_complete::Shell,
}

/// `90s`, `10m`, `1h`, `1h30m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("'{s}' is not a duration (e.g. 90s, 10m, 1h30m)");
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

impl From<&Target> for plugin::Target {
    fn from(t: &Target) -> plugin::Target {
        plugin::Target {
            kubeconfig: t.kubeconfig.clone(),
            context: t.context.clone(),
            namespace: t.namespace.clone(),
        }
    }
}

impl From<OutputFormat> for plugin::OutputFormat {
    fn from(f: OutputFormat) -> plugin::OutputFormat {
        match f {
            OutputFormat::Json => plugin::OutputFormat::Json,
            OutputFormat::Yaml => plugin::OutputFormat::Yaml,
            OutputFormat::Name => plugin::OutputFormat::Name,
        }
    }
}

impl PluginCommand {
    /// What the plugin is asked to do; `None` for `completions` (answered by the caller, which
    /// has the clap command).
    pub fn request(&self) -> Option<plugin::Request> {
        let out = |o: Option<OutputFormat>| o.map(plugin::OutputFormat::from);
        Some(match self {
            PluginCommand::Run(a) => plugin::Request::Run(plugin::RunArgs {
                name: a.name.clone(),
                wait: a.wait,
                timeout: a.timeout,
                logs: a.logs,
                all_containers: a.all_containers,
                output: out(a.output),
            }),
            PluginCommand::Status(a) => plugin::Request::Status(plugin::StatusArgs {
                name: a.name.clone(),
                output: out(a.output),
            }),
            PluginCommand::Outputs(a) => plugin::Request::Outputs(plugin::OutputsArgs {
                name: a.name.clone(),
                run: a.run,
                output: out(a.output),
            }),
            PluginCommand::List(a) => plugin::Request::List(plugin::ListArgs {
                all_namespaces: a.all_namespaces,
            }),
            PluginCommand::Completions(_) => return None,
        })
    }
}

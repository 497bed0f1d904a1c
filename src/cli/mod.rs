//! Command line: upstream Quarks Job's flags and environment variables, with the same names and
//! defaults. Each flag's help starts with the environment variable that sets it, as upstream's did.
//!
//! Layer: wiring (see docs/architecture.md).

use clap::builder::{BoolishValueParser, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::VERSION;
use crate::reconcile::{DEFAULT_JOB_HISTORY, DEFAULT_MAX_WORKERS, DEFAULT_RUN_HISTORY};
use crate::webhook::resources;

mod leader;
pub mod plugin;
mod settings;
mod values;

pub use leader::LeaderArgs;
pub use settings::{leader_timings, log_settings, operator_settings, persist_settings};
use values::{non_empty, parse_monitored_id, quantity_setting};

/// Every environment variable the binary reads (each also settable by its flag).
pub const ENV_VARS: &[&str] = &[
    "APPLY_CRD",
    "CTX_TIMEOUT",
    "DOCKER_IMAGE_ORG",
    "DOCKER_IMAGE_PULL_POLICY",
    "DOCKER_IMAGE_PULL_SECRETS",
    "DOCKER_IMAGE_REPOSITORY",
    "DOCKER_IMAGE_TAG",
    "JOB_HISTORY",
    "RUN_HISTORY",
    "KUBECONFIG",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "MAX_WORKERS",
    "MELTDOWN_DURATION",
    "MELTDOWN_REQUEUE_AFTER",
    "MONITORED_ID",
    "OPERATOR_NAMESPACE",
    "WEBHOOK_SERVICE_NAME",
    "WEBHOOK_SERVICE_PORT",
    "WEBHOOK_SERVER_HOST",
    "WEBHOOK_SERVER_PORT",
    "BIND_ADDRESS",
    "WEBHOOK_CERT_DIR",
    "WEBHOOK_CERT_SECRET",
    "HEALTH_PORT",
    "VERSIONED_SECRET_HISTORY",
    "OUTPUT_PERSIST_CPU_REQUEST",
    "OUTPUT_PERSIST_MEMORY_REQUEST",
    "OUTPUT_PERSIST_CPU_LIMIT",
    "OUTPUT_PERSIST_MEMORY_LIMIT",
    "LEADER_ELECTION",
    "LEADER_ELECTION_NAMESPACE",
    "LEADER_ELECTION_LEASE_DURATION",
    "LEADER_ELECTION_RENEW_DEADLINE",
    "LEADER_ELECTION_RETRY_PERIOD",
    "POD_NAME",
];

/// The environment variables `persist-output` reads besides [`ENV_VARS`].
pub const PERSIST_OUTPUT_ENV_VARS: &[&str] =
    &["NAMESPACE", "POD_NAME", "OUTPUT_DIR", "OUTPUT_TIMEOUT"];

/// `quarks-job`: without a subcommand it runs the operator, as upstream.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "quarks-job",
    about = "quarks-job starts the operator",
    long_about = "quarks-job starts the operator: it runs the Jobs of QuarksJob resources in monitored \
                  namespaces and turns the JSON files they write into Secrets.",
    version = VERSION,
    args_conflicts_with_subcommands = true,
    max_term_width = 120
)]
pub struct Cli {
    /// Logging, shared by every subcommand.
    #[command(flatten)]
    pub log: LogArgs,

    /// The operator's settings (the default command).
    #[command(flatten)]
    pub operator: OperatorArgs,

    /// The admission webhook's settings.
    #[command(flatten)]
    pub webhook: WebhookArgs,

    /// Leader election between replicas.
    #[command(flatten)]
    pub leader: LeaderArgs,

    /// A subcommand; none runs the operator.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Persist a file into a kube secret
    #[command(
        long_about = "Persists the output files written by the containers of a QuarksJob pod into \
                      versioned secrets or plain Kubernetes secrets. Runs inside the job pod."
    )]
    PersistOutput(PersistOutputArgs),
    /// Print the QuarksJob CustomResourceDefinition as YAML
    Crd,
    /// Print the version number and build information
    Version,
    /// The kubectl plugin: run errands, see their runs and outputs (`quarks-job qjob --help`)
    #[command(disable_help_flag = true)]
    Qjob {
        /// The plugin's arguments, as for `kubectl qjob`
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Print a shell completion script for quarks-job (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// Log settings.
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// (LOG_LEVEL) Only print log messages from this level onward (trace,debug,info,warn,error)
    #[arg(
        short = 'l', long, env = "LOG_LEVEL", hide_env = true, global = true, default_value = "debug",
        value_parser = PossibleValuesParser::new(["trace", "debug", "info", "warn", "error"])
            .map(|s| s.to_string())
    )]
    pub log_level: String,

    /// (LOG_FORMAT) Log line format
    #[arg(long, env = "LOG_FORMAT", hide_env = true, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// (KUBECONFIG) Path to a kubeconfig, not required in-cluster
    #[arg(short = 'c', long, env = "KUBECONFIG", hide_env = true, global = true)]
    pub kubeconfig: Option<String>,
}

/// Log line format.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// Image pull policy of the injected output container.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// `Always`
    #[value(name = "Always")]
    Always,
    /// `Never`
    #[value(name = "Never")]
    Never,
    /// `IfNotPresent`
    #[value(name = "IfNotPresent")]
    IfNotPresent,
}

impl PullPolicy {
    /// The value Kubernetes expects.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::Never => "Never",
            PullPolicy::IfNotPresent => "IfNotPresent",
        }
    }
}

/// The operator's flags (upstream names, env vars and defaults).
#[derive(Args, Debug, Clone)]
pub struct OperatorArgs {
    /// (APPLY_CRD) If true, apply CRDs on start
    #[arg(
        long, env = "APPLY_CRD", hide_env = true, default_value_t = true, num_args = 0..=1,
        require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new()
    )]
    pub apply_crd: bool,

    /// (CTX_TIMEOUT) context timeout for each k8s API request in seconds
    #[arg(long, env = "CTX_TIMEOUT", hide_env = true, default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ctx_timeout: u64,

    /// (DOCKER_IMAGE_ORG) Dockerhub organization that provides the operator docker image
    #[arg(
        short = 'o',
        long,
        env = "DOCKER_IMAGE_ORG",
        hide_env = true,
        default_value = "cfcontainerization"
    )]
    pub docker_image_org: String,

    /// (DOCKER_IMAGE_PULL_SECRETS) Comma-separated Secrets, in each job's namespace, to pull the operator image with; added to job pods that get the output-persist container
    #[arg(
        long,
        env = "DOCKER_IMAGE_PULL_SECRETS",
        hide_env = true,
        value_delimiter = ','
    )]
    pub docker_image_pull_secrets: Vec<String>,

    /// (DOCKER_IMAGE_PULL_POLICY) Image pull policy
    #[arg(long, env = "DOCKER_IMAGE_PULL_POLICY", hide_env = true, value_enum, default_value_t = PullPolicy::IfNotPresent)]
    pub docker_image_pull_policy: PullPolicy,

    /// (DOCKER_IMAGE_REPOSITORY) Dockerhub repository that provides the operator docker image
    #[arg(short = 'r', long, env = "DOCKER_IMAGE_REPOSITORY", hide_env = true, default_value = "quarks-job",
          value_parser = non_empty("the docker image repository"))]
    pub docker_image_repository: String,

    /// (DOCKER_IMAGE_TAG) Tag of the operator docker image
    #[arg(short = 't', long, env = "DOCKER_IMAGE_TAG", hide_env = true, default_value = VERSION,
          value_parser = non_empty("DOCKER_IMAGE_TAG"))]
    pub docker_image_tag: String,

    /// (JOB_HISTORY) Per QuarksJob, the pods of succeeded Jobs and the failed Jobs kept, at most this many each (the oldest are deleted first); 0 keeps all
    #[arg(long, env = "JOB_HISTORY", hide_env = true,
          default_value_t = DEFAULT_JOB_HISTORY)]
    pub job_history: u32,

    /// (RUN_HISTORY) Runs kept in each QuarksJob's status.runs, newest first (at most 20, so the status stays small); 0 keeps none
    #[arg(long, env = "RUN_HISTORY", hide_env = true, default_value_t = DEFAULT_RUN_HISTORY,
          value_parser = clap::value_parser!(u32).range(0..=20))]
    pub run_history: u32,

    /// (MAX_WORKERS) Maximum number of workers concurrently running the controller (reconciles mostly wait for the apiserver; the default is measured, see docs/benchmarks.md; upstream had 1)
    #[arg(long, env = "MAX_WORKERS", hide_env = true, default_value_t = DEFAULT_MAX_WORKERS,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub max_workers: u16,

    /// (MELTDOWN_DURATION) Duration (in seconds) of the meltdown period, in which we postpone further reconciles for the same resource
    #[arg(long, env = "MELTDOWN_DURATION", hide_env = true, default_value_t = 60)]
    pub meltdown_duration: u64,

    /// (MELTDOWN_REQUEUE_AFTER) Duration (in seconds) for which we delay the requeuing of the reconcile
    #[arg(
        long,
        env = "MELTDOWN_REQUEUE_AFTER",
        hide_env = true,
        default_value_t = 30
    )]
    pub meltdown_requeue_after: u64,

    /// (MONITORED_ID) only monitor namespaces with this id in their namespace label
    #[arg(long, env = "MONITORED_ID", hide_env = true, default_value = "default", value_parser = parse_monitored_id)]
    pub monitored_id: String,
}

impl OperatorArgs {
    /// The operator image, `<org>/<repository>:<tag>` (upstream `path.Join(org, repo):tag`).
    pub fn operator_image(&self) -> String {
        let org = self.docker_image_org.trim_end_matches('/');
        if org.is_empty() {
            format!("{}:{}", self.docker_image_repository, self.docker_image_tag)
        } else {
            format!(
                "{org}/{}:{}",
                self.docker_image_repository, self.docker_image_tag
            )
        }
    }
}

/// The admission webhook's flags (named like the other Quarks operators' webhook flags).
#[derive(Args, Debug, Clone)]
pub struct WebhookArgs {
    /// (OPERATOR_NAMESPACE) Namespace the operator runs in: holds the webhook Service and certificate Secret
    #[arg(long, env = "OPERATOR_NAMESPACE", hide_env = true, default_value = "default",
          value_parser = non_empty("the operator namespace"))]
    pub operator_namespace: String,

    /// (WEBHOOK_SERVICE_NAME) Service through which the apiserver reaches the webhook (unless --webhook-server-host is set)
    #[arg(long, env = "WEBHOOK_SERVICE_NAME", hide_env = true, default_value = "quarks-job-webhook",
          value_parser = non_empty("the webhook service name"))]
    pub webhook_service_name: String,

    /// (WEBHOOK_SERVICE_PORT) Port of that Service
    #[arg(long, env = "WEBHOOK_SERVICE_PORT", hide_env = true, default_value_t = 443,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub webhook_service_port: u16,

    /// (WEBHOOK_SERVER_HOST) Host name or IP address the apiserver calls the webhook at directly, e.g. 127.0.0.1 when the operator runs outside the cluster; also added to the certificate
    #[arg(
        long,
        visible_alias = "webhook-host",
        env = "WEBHOOK_SERVER_HOST",
        hide_env = true
    )]
    pub webhook_server_host: Option<String>,

    /// (WEBHOOK_SERVER_PORT) Port the webhook listens on (TLS)
    #[arg(long, visible_alias = "webhook-port", env = "WEBHOOK_SERVER_PORT", hide_env = true, default_value_t = 2999,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub webhook_server_port: u16,

    /// (BIND_ADDRESS) Address the webhook and health ports listen on; defaults to --webhook-server-host when set (outside the cluster), else to every address (0.0.0.0: in a pod, its IP)
    #[arg(long, env = "BIND_ADDRESS", hide_env = true, value_parser = non_empty("the bind address"))]
    pub bind_address: Option<String>,

    /// (WEBHOOK_CERT_DIR) Directory with tls.crt, tls.key and ca.crt to serve instead of self-managed certificates; reloaded when they change
    #[arg(long, env = "WEBHOOK_CERT_DIR", hide_env = true)]
    pub webhook_cert_dir: Option<std::path::PathBuf>,

    /// (WEBHOOK_CERT_SECRET) Secret in the operator namespace that keeps the self-managed certificates
    #[arg(long, env = "WEBHOOK_CERT_SECRET", hide_env = true, default_value = "quarks-job-webhook-cert",
          value_parser = non_empty("the certificate secret name"))]
    pub webhook_cert_secret: String,

    /// (HEALTH_PORT) Port of /healthz and /readyz (plain HTTP)
    #[arg(long, env = "HEALTH_PORT", hide_env = true, default_value_t = 8081)]
    pub health_port: u16,

    /// (VERSIONED_SECRET_HISTORY) Versions kept per versioned secret written by persist-output; 0 keeps all
    #[arg(
        long,
        env = "VERSIONED_SECRET_HISTORY",
        hide_env = true,
        default_value_t = 0
    )]
    pub versioned_secret_history: u32,

    /// (OUTPUT_PERSIST_CPU_REQUEST) CPU request of the output-persist container injected into job pods; empty for none
    #[arg(long, env = "OUTPUT_PERSIST_CPU_REQUEST", hide_env = true, default_value = resources::DEFAULT_CPU_REQUEST,
          value_parser = quantity_setting)]
    pub output_persist_cpu_request: String,

    /// (OUTPUT_PERSIST_MEMORY_REQUEST) Memory request of the output-persist container; empty for none
    #[arg(long, env = "OUTPUT_PERSIST_MEMORY_REQUEST", hide_env = true, default_value = resources::DEFAULT_MEMORY_REQUEST,
          value_parser = quantity_setting)]
    pub output_persist_memory_request: String,

    /// (OUTPUT_PERSIST_CPU_LIMIT) CPU limit of the output-persist container; empty for none
    #[arg(long, env = "OUTPUT_PERSIST_CPU_LIMIT", hide_env = true, default_value = resources::DEFAULT_CPU_LIMIT,
          value_parser = quantity_setting)]
    pub output_persist_cpu_limit: String,

    /// (OUTPUT_PERSIST_MEMORY_LIMIT) Memory limit of the output-persist container; empty for none
    #[arg(long, env = "OUTPUT_PERSIST_MEMORY_LIMIT", hide_env = true, default_value = resources::DEFAULT_MEMORY_LIMIT,
          value_parser = quantity_setting)]
    pub output_persist_memory_limit: String,
}

impl WebhookArgs {
    /// `host:port` to listen on for `port`: `--bind-address`, else `--webhook-server-host`,
    /// else every IPv4 address.
    pub fn listen_address(&self, port: u16) -> String {
        let host = self
            .bind_address
            .as_deref()
            .or(self.webhook_server_host.as_deref())
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .unwrap_or("0.0.0.0");
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }

    /// The `--output-persist-*` settings.
    pub fn output_resources(&self) -> resources::OutputResources<'_> {
        resources::OutputResources {
            cpu_request: Some(&self.output_persist_cpu_request),
            memory_request: Some(&self.output_persist_memory_request),
            cpu_limit: Some(&self.output_persist_cpu_limit),
            memory_limit: Some(&self.output_persist_memory_limit),
        }
    }
}

/// `persist-output` flags.
#[derive(Args, Debug, Clone)]
pub struct PersistOutputArgs {
    /// (NAMESPACE) namespace where persist output will run
    #[arg(long, env = "NAMESPACE", hide_env = true, default_value = "default", value_parser = non_empty("the namespace"))]
    pub namespace: String,

    /// (POD_NAME) name of the pod persist output runs in (set it from the downward API); defaults to the hostname
    #[arg(long, env = "POD_NAME", hide_env = true)]
    pub pod_name: Option<String>,

    // (the doc comment is clap's help text, shown as written: its <...> are not HTML)
    #[allow(rustdoc::invalid_html_tags)]
    /// (OUTPUT_DIR) directory holding each container's output files as <dir>/<container>/<file>
    #[arg(long, env = "OUTPUT_DIR", hide_env = true, default_value = "/mnt/quarks", value_parser = non_empty("the output directory"))]
    pub output_dir: String,

    /// (OUTPUT_TIMEOUT) seconds to wait for the containers' output at most; 0 waits as long as they run
    #[arg(long, env = "OUTPUT_TIMEOUT", hide_env = true, default_value_t = 0)]
    pub timeout: u64,

    /// (VERSIONED_SECRET_HISTORY) versions to keep per versioned secret (never one a pod, Job or QuarksJob references); 0 keeps all
    #[arg(
        long,
        env = "VERSIONED_SECRET_HISTORY",
        hide_env = true,
        default_value_t = 0
    )]
    pub versioned_secret_history: usize,
}

/// `quarks-job version`.
pub fn version_text() -> String {
    format!(
        "Quarks-Job Version: {VERSION}\nGit Commit: {}\nRust Version: {}\nOS/Arch: {}/{}\n",
        env!("QUARKS_JOB_GIT_COMMIT"),
        env!("QUARKS_JOB_RUSTC_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}

#[cfg(test)]
mod tests;

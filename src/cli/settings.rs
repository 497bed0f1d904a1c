//! The command line turned into the plain settings structs of the feature modules (layer:
//! wiring): clap's types end here, and the one metrics registry of the process is handed to
//! everything that records into it.

use std::path::PathBuf;
use std::time::Duration;

use super::{Cli, LeaderArgs, LogArgs, LogFormat, OperatorArgs, PersistOutputArgs, WebhookArgs};
use crate::certs::{Registration, Source, WebhookAddress, webhook_sans};
use crate::metrics::Metrics;
use crate::persist::PersistError;
use crate::webhook::handler::PodSettings;
use crate::{leader, operator, persist, reconcile, telemetry, webhook};

/// The operator's settings; `metrics` is the process's one registry.
pub fn operator_settings(cli: &Cli, metrics: Metrics) -> operator::OperatorSettings {
    let (op, wh, le) = (&cli.operator, &cli.webhook, &cli.leader);
    operator::OperatorSettings {
        kubeconfig: cli.log.kubeconfig.clone(),
        apply_crd: op.apply_crd,
        operator_image: op.operator_image(),
        health_listen: wh.listen_address(wh.health_port),
        reconcile: reconcile_config(op, metrics.clone()),
        webhook: webhook_settings(op, wh, metrics.clone()),
        leader: le.leader_election.then(|| lease(op, wh, le)),
        metrics,
    }
}

fn reconcile_config(op: &OperatorArgs, metrics: Metrics) -> reconcile::Config {
    reconcile::Config {
        monitored_id: op.monitored_id.clone(),
        max_workers: op.max_workers,
        ctx_timeout: Duration::from_secs(op.ctx_timeout),
        meltdown: Duration::from_secs(op.meltdown_duration),
        job_history: op.job_history as usize,
        run_history: op.run_history as usize,
        reporter: "quarks-job".into(),
        metrics,
    }
}

/// The Service of `--webhook-service-name` in the operator namespace, or
/// `https://<--webhook-server-host>:<--webhook-server-port>` when a host is given; self-managed
/// certificates unless `--webhook-cert-dir` is set.
fn webhook_settings(
    op: &OperatorArgs,
    wh: &WebhookArgs,
    metrics: Metrics,
) -> webhook::WebhookSettings {
    let host = wh.webhook_server_host.clone().filter(|h| !h.is_empty());
    let address = match &host {
        Some(host) => WebhookAddress::Url {
            host: host.clone(),
            port: wh.webhook_server_port,
        },
        None => WebhookAddress::Service {
            namespace: wh.operator_namespace.clone(),
            name: wh.webhook_service_name.clone(),
            port: i32::from(wh.webhook_service_port),
        },
    };
    let certificates = match &wh.webhook_cert_dir {
        Some(dir) => Source::Dir(dir.clone()),
        None => Source::Managed {
            namespace: wh.operator_namespace.clone(),
            secret: wh.webhook_cert_secret.clone(),
            sans: webhook_sans(
                &wh.webhook_service_name,
                &wh.operator_namespace,
                &host.into_iter().collect::<Vec<_>>(),
            ),
        },
    };
    webhook::WebhookSettings {
        listen: wh.listen_address(wh.webhook_server_port),
        certificates,
        registration: Registration {
            name: Registration::name_for(&op.monitored_id),
            monitored_id: op.monitored_id.clone(),
            operator_namespace: wh.operator_namespace.clone(),
            address,
        },
        pod: PodSettings {
            image: op.operator_image(),
            pull_policy: op.docker_image_pull_policy.as_str().to_string(),
            versioned_secret_history: wh.versioned_secret_history,
            pull_secrets: op.docker_image_pull_secrets.clone(),
            // (checked at start, see main: a bad setting never gets here)
            resources: wh.output_resources().requirements().unwrap_or_default(),
        },
        metrics,
    }
}

/// The Lease the command line asks for, and a fresh identity for this process.
fn lease(op: &OperatorArgs, wh: &WebhookArgs, le: &LeaderArgs) -> leader::LeaseSettings {
    leader::LeaseSettings {
        namespace: le
            .leader_election_namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| wh.operator_namespace.clone()),
        name: leader::lease_name(&op.monitored_id),
        identity: leader::identity(le.pod_name.as_deref()),
        timings: leader_timings(le),
    }
}

/// The election's timings from the command line.
pub fn leader_timings(le: &LeaderArgs) -> leader::Timings {
    leader::Timings {
        lease_duration: Duration::from_secs(le.leader_election_lease_duration),
        renew_deadline: Duration::from_secs(le.leader_election_renew_deadline),
        retry_period: Duration::from_secs(le.leader_election_retry_period),
    }
}

/// `persist-output`'s settings: the pod name from `--pod-name` (`POD_NAME`), else the hostname.
pub fn persist_settings(
    args: &PersistOutputArgs,
) -> Result<persist::PersistSettings, PersistError> {
    let pod_name = match args
        .pod_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        Some(name) => name.to_string(),
        None => persist::run::hostname().ok_or(PersistError::NoPodName)?,
    };
    Ok(persist::PersistSettings {
        namespace: args.namespace.clone(),
        pod_name,
        output_dir: PathBuf::from(&args.output_dir),
        timeout: (args.timeout > 0).then(|| Duration::from_secs(args.timeout)),
        versioned_secret_history: args.versioned_secret_history,
    })
}

/// The logging settings.
pub fn log_settings(args: &LogArgs) -> telemetry::LogSettings {
    telemetry::LogSettings {
        level: args.log_level.clone(),
        format: match args.log_format {
            LogFormat::Json => telemetry::Format::Json,
            LogFormat::Text => telemetry::Format::Text,
        },
    }
}

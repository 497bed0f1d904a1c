//! The operator process (layer: wiring): connect, announce, apply the CRD, then run the feature
//! modules together until a shutdown signal. It takes plain [`OperatorSettings`] that `cli` builds.
//!
//! The reconciler runs until SIGTERM/SIGINT; reconciles in flight finish before the process
//! exits (graceful shutdown). The reconciler starts once the webhook is registered and
//! serving, so no Job's pod is ever admitted without its output volume and container.
//!
//! In the cluster the webhook drains on shutdown: `/readyz` fails at once and the reconciler
//! stops (handing the Lease over), but the webhook keeps answering for [`WEBHOOK_DRAIN`], until
//! the pod has left the Service's endpoints everywhere (kube-proxy's rules on every node), and
//! only then closes its connections (HTTP/2 GOAWAY: the apiserver retries on a new connection,
//! which reaches another replica). A rolling update thus never makes the apiserver call a replica
//! that has stopped answering.

mod crd;

use std::time::Duration;

use futures::FutureExt;
use kube::Client;
use tokio::net::TcpListener;
use tracing::info;

use crate::health::Readiness;
use crate::runtime::{connect, shutdown_signal, stopped};
use crate::{Error, Result, VERSION};

pub use crd::{FIELD_MANAGER, apply_crd};

/// How long the reconciler waits for the apiserver to call the webhook before it starts anyway.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a replica reached through a Service keeps serving admissions after SIGTERM (see the
/// module's documentation); by URL (outside the cluster) it stops at once.
pub const WEBHOOK_DRAIN: Duration = Duration::from_secs(5);

/// Readiness check that fails from SIGTERM on, while the webhook drains.
pub const READY_NOT_STOPPING: &str = "not shutting down";

/// How long to wait for the CRD to become Established.
pub const CRD_ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything the operator process needs, built from the command line by `cli`.
#[derive(Clone, Debug)]
pub struct OperatorSettings {
    /// `--kubeconfig`: a path or a `:`-separated list; `None` for in-cluster or `~/.kube/config`.
    pub kubeconfig: Option<String>,
    /// Apply the CRD at start (`--apply-crd`).
    pub apply_crd: bool,
    /// The operator image (`<org>/<repository>:<tag>`), run by the webhook probe and injected as
    /// the output-persist container.
    pub operator_image: String,
    /// `host:port` of the health port.
    pub health_listen: String,
    /// The reconciler's settings.
    pub reconcile: crate::reconcile::Config,
    /// The webhook's settings.
    pub webhook: crate::webhook::WebhookSettings,
    /// The Lease, when leader election is on.
    pub leader: Option<crate::leader::LeaseSettings>,
    /// The one registry of the process, served at `/metrics` (the reconciler and the webhook
    /// hold clones of it).
    pub metrics: crate::metrics::Metrics,
}

/// Run the operator until SIGTERM or SIGINT: the reconciler, the admission webhook and the
/// health endpoints, sharing one shutdown signal.
pub async fn run_operator(settings: OperatorSettings) -> Result<()> {
    raise_open_files_limit();
    info!("Checking kube config");
    let client = connect(settings.kubeconfig.as_deref()).await?;
    let monitored_id = settings.reconcile.monitored_id.clone();
    info!("Starting quarks-job {VERSION}, monitoring namespaces labeled with '{monitored_id}'");
    info!("quarks-job docker image: {}", settings.operator_image);
    if settings.apply_crd {
        info!("Applying CRDs...");
        apply_crd(client.clone(), CRD_ESTABLISHED_TIMEOUT).await?;
        info!("CRD '{}' is established", crate::core::api::CRD_NAME);
    }
    info!("Registering Components");
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stop = std::sync::Arc::new(stop);
    tokio::spawn({
        let stop = stop.clone();
        async move {
            if let Err(e) = shutdown_signal().await {
                tracing::error!("cannot listen for shutdown signals: {e}");
                return;
            }
            info!("Shutting down");
            let _ = stop.send(true);
        }
    });
    let readiness = Readiness::default();
    let metrics = settings.metrics;
    // The webhook and the health port stop once drained; the reconciler at once.
    let drain = if settings.webhook.registration.install_owned() {
        WEBHOOK_DRAIN
    } else {
        Duration::ZERO
    };
    let (drained_tx, drained) = tokio::sync::watch::channel(false);
    let drained_tx = std::sync::Arc::new(drained_tx);
    readiness.set(READY_NOT_STOPPING, true);
    tokio::spawn({
        let (readiness, stopping, drained_tx) =
            (readiness.clone(), stopping.clone(), drained_tx.clone());
        async move {
            stopped(stopping).await;
            readiness.set(READY_NOT_STOPPING, false);
            if !drain.is_zero() {
                info!(
                    "Not ready; the webhook keeps answering for {}s while this pod leaves the \
                     Service's endpoints",
                    drain.as_secs()
                );
                tokio::time::sleep(drain).await;
            }
            let _ = drained_tx.send(true);
        }
    });
    let health_address = settings.health_listen;
    let health = TcpListener::bind(health_address.as_str())
        .await
        .map_err(|e| Error::Listen(format!("health port {health_address}: {e}")))?;
    let health = tokio::spawn(crate::health::serve(
        health,
        crate::health::router(readiness.clone(), metrics.clone()),
        stopped(drained.clone()),
    ));
    let elector = settings
        .leader
        .map(|lease| crate::leader::Elector::new(client.clone(), lease));
    let operator_namespace = settings.webhook.registration.operator_namespace.clone();
    let mut webhook = tokio::spawn(crate::webhook::start(
        client.clone(),
        settings.webhook,
        monitored_id.clone(),
        readiness.clone(),
        drained.clone(),
    ));
    // Ready, and the apiserver calls the webhook (or it did not within PROBE_TIMEOUT): only
    // then may Jobs be created.
    let webhook_called = {
        let (client, readiness) = (client.clone(), readiness.clone());
        let (namespace, id, image) = (operator_namespace, monitored_id, settings.operator_image);
        async move {
            readiness.wait_ready().await;
            crate::webhook::probe::wait_until_called(
                &client,
                &namespace,
                &id,
                &image,
                PROBE_TIMEOUT,
            )
            .await;
        }
    };
    let reconciler = reconcile_when_leading(
        client,
        settings.reconcile,
        webhook_called.boxed().shared(),
        elector,
        stopping.clone(),
    );
    tokio::pin!(reconciler);
    let result = tokio::select! {
        _ = &mut reconciler => (&mut webhook).await,
        finished = &mut webhook => {
            // The webhook ends on shutdown, or when it cannot start. On shutdown the reconciles
            // in flight still finish; a webhook that cannot start stops the operator at once.
            if matches!(finished, Ok(Ok(()))) {
                reconciler.await;
            }
            finished
        }
    };
    // (a webhook that cannot start ends the process at once: the health port closes too)
    let _ = stop.send(true);
    let _ = drained_tx.send(true);
    let _ = health.await;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Webhook(e)),
        Err(source) => Err(Error::TaskFailed {
            task: "webhook",
            source,
        }),
    }
}

/// The reconciler, run while this replica leads (always without leader election). Its
/// controller starts only once the process is ready: a Job created before the webhook is
/// registered and serving would get pods without the output volume and container, and its
/// output would be lost. Losing the Lease stops the reconciler (reconciles in flight finish);
/// winning it again restarts it. On shutdown the Lease is released after the reconciler stopped.
async fn reconcile_when_leading(
    client: Client,
    config: crate::reconcile::Config,
    webhook_called: futures::future::Shared<futures::future::BoxFuture<'static, ()>>,
    elector: Option<crate::leader::Elector>,
    stopping: tokio::sync::watch::Receiver<bool>,
) {
    let (leads, leading) = tokio::sync::watch::channel(elector.is_none());
    // Without an election the sender stays here, so `leading` stays true (and open).
    let (election, _always) = match elector {
        Some(e) => (
            Some(tokio::spawn(crate::leader::run_election(
                e,
                leads,
                stopping.clone(),
            ))),
            None,
        ),
        None => (None, Some(leads)),
    };
    loop {
        let start = {
            let (webhook_called, mut leading) = (webhook_called.clone(), leading.clone());
            let leader = config.metrics.leader.clone();
            async move {
                webhook_called.await;
                if leading.wait_for(|leads| *leads).await.is_err() {
                    tracing::error!(
                        "The leader election ended unexpectedly: this replica does not reconcile"
                    );
                    std::future::pending::<()>().await;
                }
                info!("Webhook is serving; starting the reconciler");
                leader.set_leading(true);
            }
        };
        let until = {
            let (mut lost, stop) = (leading.clone(), stopping.clone());
            async move {
                let lost = async move {
                    let _ = lost.wait_for(|leads| *leads).await;
                    let _ = lost.wait_for(|leads| !*leads).await;
                };
                tokio::select! {
                    _ = lost => {}
                    _ = stopped(stop) => {}
                }
            }
        };
        crate::reconcile::run_controller_until(client.clone(), config.clone(), start, until).await;
        config.metrics.leader.set_leading(false);
        if *stopping.borrow() {
            break;
        }
        tracing::warn!("Stopped leading: the reconciler stopped until this replica leads again");
    }
    if let Some(election) = election
        && let Ok(mut elector) = election.await
    {
        elector.release().await;
    }
}

/// Raise the soft limit of open files to the hard limit, as Go programs do: every webhook
/// connection is a file, and a soft limit of 1024 (common in containers) would make the
/// webhook's connection cap (`webhook::MAX_CONNECTIONS`) unreachable, with accept errors long
/// before.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let from = limit.current;
        limit.current = limit.maximum;
        match setrlimit(Resource::Nofile, limit) {
            Ok(()) => tracing::debug!(
                "Open files limit raised from {from:?} to {:?}",
                limit.maximum
            ),
            Err(e) => tracing::warn!("Cannot raise the open files limit ({from:?}): {e}"),
        }
    }
}

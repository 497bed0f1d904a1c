//! Running the webhook next to the controllers: certificates are loaded (or made), the webhook
//! configurations registered with their `caBundle` — so job pods are refused rather than admitted
//! unmutated while the webhook cannot answer — the caches filled, and only then the TLS port
//! opened: before, a connection is refused at once instead of being accepted by the kernel and
//! left unanswered until the apiserver's 10 s timeout. Certificate renewal runs alongside until
//! shutdown.

use std::sync::Arc;

use kube::Client;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use super::caches::Caches;
use super::handler::{PodSettings, router};
use super::limits::with_limits;
use super::server::serve_tls;
use crate::certs::{self, HotSwapResolver, LoadError, Registration, Source, server_config};
use crate::health::Readiness;
use crate::metrics::Metrics;
use crate::runtime::stopped;

/// Readiness check: a certificate is loaded and registered.
pub const READY_CERTIFICATE: &str = "webhook certificate";
/// Readiness check: the caches the webhook answers from are filled.
pub const READY_CACHES: &str = "webhook caches";

/// Everything the webhook needs.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Address of the TLS port, `host:port` (a host name is resolved).
    pub listen: String,
    /// Where the certificates come from.
    pub certificates: Source,
    /// How the apiserver reaches the webhook.
    pub registration: Registration,
    /// What the pod mutation adds.
    pub pod: PodSettings,
    /// Where admission requests and the certificate expiry are recorded (the operator passes
    /// the registry it serves at `/metrics`).
    pub metrics: Metrics,
}

/// Errors that stop the webhook from starting.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Certificates or registration.
    #[error(transparent)]
    Certificates(#[from] LoadError),
    /// The TLS port.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl WebhookError {
    /// A short label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            WebhookError::Certificates(_) => "webhook_certificates",
            WebhookError::Listen { .. } => "webhook_listen",
        }
    }
}

/// Run the webhook until `shutdown` turns true. Its readiness checks are registered when this
/// is called, before the returned future first runs, so `/readyz` never reports ready early.
pub fn start(
    client: Client,
    settings: WebhookSettings,
    monitored_id: String,
    readiness: Readiness,
    shutdown: watch::Receiver<bool>,
) -> impl Future<Output = Result<(), WebhookError>> + Send + 'static {
    readiness.register(READY_CERTIFICATE);
    readiness.register(READY_CACHES);
    serve(client, settings, monitored_id, readiness, shutdown)
}

/// How often the operator looks again for configurations the install has not created yet.
pub const INSTALL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Register the webhooks with `bundle`'s CA. Configurations the install owns but has not created
/// yet (kustomize applies them after the Deployment) are waited for, `/readyz` saying so; false
/// when shut down meanwhile.
async fn register(
    client: &Client,
    registration: &Registration,
    bundle: &certs::Bundle,
    readiness: &Readiness,
    shutdown: &watch::Receiver<bool>,
) -> Result<bool, WebhookError> {
    loop {
        match registration
            .apply(client.clone(), bundle.ca_bundle_pem.as_bytes())
            .await
        {
            Ok(()) => {
                readiness.set_reason(READY_CERTIFICATE, None);
                return Ok(true);
            }
            Err(e) if certs::is_missing(&e) && registration.install_owned() => {
                let why = format!(
                    "waiting for the webhook configurations '{}', which the install creates",
                    registration.name
                );
                if readiness
                    .pending_with_reasons()
                    .iter()
                    .all(|p| !p.contains(&why))
                {
                    warn!("{why} (Helm chart or manifests/)");
                }
                readiness.set_reason(READY_CERTIFICATE, Some(why));
            }
            Err(source) => {
                return Err(LoadError::Register {
                    name: registration.name.clone(),
                    source,
                }
                .into());
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(INSTALL_WAIT) => {}
            _ = stopped(shutdown.clone()) => return Ok(false),
        }
    }
}

async fn serve(
    client: Client,
    settings: WebhookSettings,
    monitored_id: String,
    readiness: Readiness,
    shutdown: watch::Receiver<bool>,
) -> Result<(), WebhookError> {
    let bundle = certs::load(&client, &settings.certificates).await?;
    let resolver = HotSwapResolver::new(&bundle.serving.cert_pem, &bundle.serving.key_pem)
        .map_err(LoadError::from)?;
    let tls = Arc::new(server_config(resolver.clone()).map_err(LoadError::from)?);
    certs::record_expiry(&settings.metrics.certificate, &bundle);
    if !register(
        &client,
        &settings.registration,
        &bundle,
        &readiness,
        &shutdown,
    )
    .await?
    {
        return Ok(());
    }
    info!(
        "Registered webhook configurations '{}'",
        settings.registration.name
    );
    readiness.set(READY_CERTIFICATE, true);

    let renewal = tokio::spawn(certs::maintain(
        client.clone(),
        settings.certificates.clone(),
        settings.registration.clone(),
        resolver,
        bundle,
        settings.metrics.certificate.clone(),
        shutdown.clone(),
    ));
    let (caches, fill) = Caches::new(client, &monitored_id, readiness.clone(), READY_CACHES);
    let filling = tokio::spawn(fill);

    let filled = tokio::select! {
        _ = caches.wait_ready() => true,
        _ = stopped(shutdown.clone()) => false,
    };
    let mut result = Ok(());
    if filled {
        info!("Webhook caches are filled");
        match TcpListener::bind(settings.listen.as_str()).await {
            Ok(listener) => {
                readiness.set(READY_CACHES, true);
                let app = with_limits(router(caches, settings.pod, settings.metrics.admission));
                serve_tls(listener, tls, app, stopped(shutdown)).await;
            }
            Err(source) => {
                result = Err(WebhookError::Listen {
                    addr: settings.listen.clone(),
                    source,
                });
            }
        }
    }
    filling.abort();
    if result.is_err() {
        renewal.abort();
    }
    let _ = renewal.await;
    result
}

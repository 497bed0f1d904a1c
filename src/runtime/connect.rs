//! Connecting to the apiserver (layer: runtime): the client configuration for `--kubeconfig`, and
//! a client whose server answered. Shared by the operator and persist-output.

use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use tracing::info;

/// No usable kubeconfig, or the server it names did not answer.
#[derive(Debug, thiserror::Error)]
#[error("invalid kube config: {0}")]
pub struct ConnectError(pub String);

/// The client configuration for `--kubeconfig` (a path, or a `:`-separated list like
/// `KUBECONFIG`) or, without it, the in-cluster config or `~/.kube/config`.
pub async fn load_config(kubeconfig: Option<&str>) -> Result<Config, ConnectError> {
    let error = |e: &dyn std::fmt::Display| ConnectError(e.to_string());
    match kubeconfig.filter(|k| !k.trim().is_empty()) {
        Some(paths) => {
            let mut merged: Option<Kubeconfig> = None;
            for path in paths.split(':').filter(|p| !p.is_empty()) {
                let kc = Kubeconfig::read_from(path)
                    .map_err(|e| ConnectError(format!("{path}: {e}")))?;
                merged = Some(match merged {
                    None => kc,
                    Some(m) => m.merge(kc).map_err(|e| error(&e))?,
                });
            }
            let kc =
                merged.ok_or_else(|| ConnectError(format!("no kubeconfig file in '{paths}'")))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| error(&e))
        }
        None => Config::infer().await.map_err(|e| error(&e)),
    }
}

/// A client for `--kubeconfig` ([`load_config`]). The server is asked for its version so that a
/// wrong config fails here, with a clear message, instead of at the first watch.
pub async fn connect(kubeconfig: Option<&str>) -> Result<Client, ConnectError> {
    let config = load_config(kubeconfig).await?;
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| ConnectError(e.to_string()))?;
    let version = client
        .apiserver_version()
        .await
        .map_err(|e| ConnectError(format!("server '{server}' did not answer: {e}")))?;
    info!(
        "Using kube server '{server}' (Kubernetes {}.{})",
        version.major, version.minor
    );
    Ok(client)
}

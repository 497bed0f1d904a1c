//! `quarks-job persist-output` (layer: feature): runs as the `output-persist` container of a QuarksJob's pod,
//! waits for the other containers' output files and writes them into Secrets and versioned
//! secrets. Pure parts: [`parse`] (file format), [`plan`] (which Secrets), [`secrets`] (what to
//! write, given what exists), `ownership` (whose Secret it is), the decisions in [`wait`] and
//! `retry` (which errors are transient, the backoff); the rest is a thin I/O shell (`write`:
//! all-or-nothing writes; [`retention`]; [`run`]). See docs/persist-output.md.

mod error;
mod files;
mod ownership;
pub mod parse;
pub mod plan;
pub mod retention;
pub mod retry;
pub mod run;
pub mod secrets;
pub mod wait;
mod write;

pub use error::PersistError;
pub use run::{PersistSettings, persist};

/// A client without kube's own retry layer (it retries only 429/503/504, up to 15 times over
/// minutes): [`retry`] decides, for every call, within a bounded budget. The server is asked for
/// its version (retried) so that a wrong config fails first, with a clear message.
async fn connect(kubeconfig: Option<&str>) -> Result<kube::Client, PersistError> {
    let mut config = crate::runtime::load_config(kubeconfig)
        .await
        .map_err(|e| PersistError::Connect(e.to_string()))?;
    config.default_retry = false;
    let server = config.cluster_url.to_string();
    let client =
        kube::Client::try_from(config).map_err(|e| PersistError::Connect(e.to_string()))?;
    let version = retry::call("ask the apiserver its version", || {
        client.apiserver_version()
    })
    .await
    .map_err(|e| PersistError::Connect(format!("server '{server}' did not answer: {e}")))?;
    tracing::info!(
        "Using kube server '{server}' (Kubernetes {}.{})",
        version.major,
        version.minor
    );
    Ok(client)
}

/// Run the command: connect, persist, print the one-line summary.
pub async fn run_persist_output(
    settings: &PersistSettings,
    kubeconfig: Option<&str>,
) -> Result<(), PersistError> {
    let client = connect(kubeconfig).await?;
    let summary = persist(client, settings).await?;
    println!("{summary}");
    Ok(())
}

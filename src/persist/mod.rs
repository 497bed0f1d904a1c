//! `quarks-job persist-output`: runs as the `output-persist` container of a QuarksJob's pod,
//! waits for the other containers' output files and writes them into Secrets and versioned
//! secrets. Pure parts: [`parse`] (file format), [`plan`] (which Secrets), the decisions in
//! [`wait`]; the rest is a thin I/O shell. See docs/persist-output.md.

mod error;
pub mod parse;
pub mod plan;
pub mod retention;
pub mod run;
pub mod secrets;
pub mod wait;

use std::path::PathBuf;
use std::time::Duration;

pub use error::PersistError;
pub use run::{Settings, persist};

use crate::cli::PersistOutputArgs;

/// The name of the container that runs `persist-output` in a QuarksJob's pod; it never has
/// output of its own.
pub const CONTAINER_NAME: &str = "output-persist";

/// Run the command: connect, persist, print the one-line summary.
pub async fn run(args: &PersistOutputArgs, kubeconfig: Option<&str>) -> Result<(), PersistError> {
    let pod_name = match args
        .pod_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        Some(name) => name.to_string(),
        None => run::hostname().ok_or(PersistError::NoPodName)?,
    };
    let settings = Settings {
        namespace: args.namespace.clone(),
        pod_name,
        output_dir: PathBuf::from(&args.output_dir),
        timeout: (args.timeout > 0).then(|| Duration::from_secs(args.timeout)),
        versioned_secret_history: args.versioned_secret_history,
    };
    let client = crate::operator::connect(kubeconfig)
        .await
        .map_err(|e| PersistError::Connect(e.to_string()))?;
    let summary = persist(client, &settings).await?;
    println!("{summary}");
    Ok(())
}

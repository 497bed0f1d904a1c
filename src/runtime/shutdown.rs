//! Stop signals (layer: runtime): one shutdown flag (a `watch` channel of `bool`) shared by every
//! task of the process, set on SIGTERM or SIGINT.

use tokio::sync::watch;
use tracing::info;

/// Resolves once the shutdown flag is set (or its sender is gone).
pub async fn stopped(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|stop| *stop).await;
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => info!("Received SIGTERM"),
        _ = int.recv() => info!("Received SIGINT"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stopped_resolves_when_the_flag_is_set_or_its_sender_is_gone() {
        let (stop, flag) = watch::channel(false);
        let waiting = tokio::spawn(stopped(flag.clone()));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the flag is not set");
        stop.send(true).unwrap();
        waiting.await.unwrap();
        let (stop, flag) = watch::channel(false);
        drop(stop);
        stopped(flag).await;
    }
}

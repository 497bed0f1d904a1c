//! Leader election with a `coordination.k8s.io/v1` Lease, so that of several replicas exactly
//! one reconciles at a time while every replica serves the admission webhook.
//!
//! The Lease `quarks-job-<monitored-id>` lives in the operator namespace (one election per
//! monitored id, so operators for different ids never block each other). The holder renews it
//! every retry period; a replica takes it over when its record stayed unchanged for the lease
//! duration (judged on the local monotonic clock); a leader that cannot renew for the renew
//! deadline (shorter than the lease duration) stops reconciling before anyone may take over. On
//! graceful shutdown the leader releases the Lease, so a rolling update hands over at once.
//!
//! Layer: feature (on `crate::core` and `crate::runtime`; takes plain settings, see docs/architecture.md).

mod decide;
mod lease;

use tokio::sync::watch;

pub use decide::{Action, Observer, Record, Timings, decide, must_step_down};
pub use lease::{Elector, LeaseSettings};

use crate::core::names::sanitize_subdomain;

/// `quarks-job-<monitored-id>`, a valid object name.
pub fn lease_name(monitored_id: &str) -> String {
    sanitize_subdomain(&format!("quarks-job-{monitored_id}"))
}

/// `<pod or host name>_<8 random hex digits>`: unique even for two processes on one host.
pub fn identity(pod_name: Option<&str>) -> String {
    let host = pod_name
        .map(str::to_string)
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "quarks-job".into());
    let mut suffix = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix);
    let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}_{hex}")
}

/// Run election rounds every retry period until `stop` turns true, publishing whether this
/// replica leads. Returns the elector so that the caller can [`Elector::release`] the Lease once
/// the reconciler has stopped.
pub async fn run_election(
    mut elector: Elector,
    leading: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) -> Elector {
    let retry = elector.settings().timings.retry_period;
    loop {
        if *stop.borrow() {
            return elector;
        }
        let now_leading = elector.round().await;
        leading.send_if_modified(|was| std::mem::replace(was, now_leading) != now_leading);
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = stop.wait_for(|stop| *stop) => return elector,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_named_after_the_monitored_id() {
        assert_eq!(lease_name("staging"), "quarks-job-staging");
        assert_eq!(lease_name("Team_A"), "quarks-job-team-a");
    }

    #[test]
    fn identities_differ_between_processes_on_one_host() {
        let (a, b) = (identity(None), identity(None));
        assert_ne!(a, b);
        let (host, hex) = a.rsplit_once('_').unwrap();
        assert!(!host.is_empty());
        assert_eq!(hex.len(), 8);
        let pod = identity(Some("quarks-job-7d9f-abcde"));
        assert!(pod.starts_with("quarks-job-7d9f-abcde_"), "{pod}");
    }
}

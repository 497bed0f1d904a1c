//! The leader election flags.

use clap::Args;
use clap::builder::BoolishValueParser;

/// Leader election: replicas share a coordination.k8s.io Lease; only its holder reconciles,
/// every replica serves the webhook.
#[derive(Args, Debug, Clone)]
pub struct LeaderArgs {
    // (the doc comment is clap's help text, shown as written: its <...> is not HTML)
    #[allow(rustdoc::invalid_html_tags)]
    /// (LEADER_ELECTION) If true, only the replica holding the Lease 'quarks-job-<monitored-id>' reconciles; false lets this process reconcile alone
    #[arg(
        long, env = "LEADER_ELECTION", hide_env = true, default_value_t = true, num_args = 0..=1,
        require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new()
    )]
    pub leader_election: bool,

    /// (LEADER_ELECTION_NAMESPACE) Namespace of the Lease; defaults to the operator namespace
    #[arg(long, env = "LEADER_ELECTION_NAMESPACE", hide_env = true)]
    pub leader_election_namespace: Option<String>,

    /// (LEADER_ELECTION_LEASE_DURATION) Seconds a Lease not renewed by its holder lasts before another replica takes over
    #[arg(long, env = "LEADER_ELECTION_LEASE_DURATION", hide_env = true, default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub leader_election_lease_duration: u64,

    /// (LEADER_ELECTION_RENEW_DEADLINE) Seconds the leader keeps trying to renew before it stops reconciling; less than the lease duration
    #[arg(long, env = "LEADER_ELECTION_RENEW_DEADLINE", hide_env = true, default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub leader_election_renew_deadline: u64,

    /// (LEADER_ELECTION_RETRY_PERIOD) Seconds between two attempts to acquire or renew the Lease
    #[arg(long, env = "LEADER_ELECTION_RETRY_PERIOD", hide_env = true, default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub leader_election_retry_period: u64,

    /// (POD_NAME) Name of this replica's pod (set it from the downward API), its leader election identity; defaults to the hostname
    #[arg(long, env = "POD_NAME", hide_env = true)]
    pub pod_name: Option<String>,
}

//! The I/O shell of leader election: read the Lease, apply [`decide`], write it back with its
//! `resourceVersion` (optimistic concurrency: of two replicas racing for it, one write wins and
//! the other gets a conflict).

use std::time::Instant;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use super::decide::{Action, Observer, Record, Timings, decide, must_step_down};

/// Where the Lease lives and who we are.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (unique per process).
    pub identity: String,
    /// The election's timings.
    pub timings: Timings,
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    observer: Observer,
    leading: bool,
    last_renewed: Option<Instant>,
    followed: Option<String>,
}

impl Elector {
    /// An elector that does not lead yet.
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Elector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observer: Observer::default(),
            leading: false,
            last_renewed: None,
            followed: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    /// One round: read the Lease, create, renew or take it over as [`decide`] says. Returns
    /// whether this replica leads now.
    pub async fn round(&mut self) -> bool {
        let now = Instant::now();
        let leading = match self.api.get_opt(&self.settings.name).await {
            Ok(lease) => self.act_on(lease, now).await,
            Err(e) => {
                warn!("Cannot read Lease '{}': {e}", self.lease_ref());
                self.renewal_failed(now)
            }
        };
        self.set_leading(leading);
        leading
    }

    /// Create, renew, take over or follow the Lease as read at `now`; whether this replica
    /// leads afterwards.
    async fn act_on(&mut self, lease: Option<Lease>, now: Instant) -> bool {
        let record = lease.as_ref().map(record_of);
        let since = record
            .as_ref()
            .map_or(now, |r| self.observer.observe(&r.resource_version, now));
        match decide(record.as_ref(), &self.settings.identity, since, now) {
            Action::Create => self.write(None, false).await,
            Action::Acquire => self.write(lease, false).await,
            Action::Renew => {
                if self.write(lease, true).await {
                    true
                } else {
                    self.renewal_failed(now)
                }
            }
            Action::Follow { holder } => {
                if self.followed.as_deref() != Some(&holder) {
                    info!(
                        "Lease '{}' is held by '{holder}': this replica serves the webhook and \
                         waits to lead",
                        self.lease_ref()
                    );
                    self.followed = Some(holder);
                }
                false
            }
        }
    }

    /// Give the Lease up (on shutdown, after the reconciler stopped), so another replica takes
    /// over at once instead of after the lease duration.
    pub async fn release(&mut self) {
        if !self.leading {
            return;
        }
        self.leading = false;
        let mut lease = match self.api.get_opt(&self.settings.name).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(e) => {
                warn!(
                    "Cannot release Lease '{}' ({e}): another replica takes over once it expires",
                    self.lease_ref()
                );
                return;
            }
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(&self.settings.identity) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!("Released Lease '{}'", self.lease_ref()),
            Err(e) => warn!(
                "Cannot release Lease '{}' ({e}): another replica takes over once it expires",
                self.lease_ref()
            ),
        }
    }

    /// Create the Lease (`current` is `None`), take it over, or renew it (`renew`).
    async fn write(&mut self, current: Option<Lease>, renew: bool) -> bool {
        let now = MicroTime(Timestamp::now());
        let timings = &self.settings.timings;
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.settings.name.clone()),
                        namespace: Some(self.settings.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.settings.identity.clone()),
                        lease_duration_seconds: Some(seconds(timings.lease_duration)),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                if !renew {
                    spec.holder_identity = Some(self.settings.identity.clone());
                    spec.acquire_time = Some(now.clone());
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(seconds(timings.lease_duration));
                spec.renew_time = Some(now);
                self.api
                    .replace(&self.settings.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(lease) => {
                self.observer.observe(
                    &lease.resource_version().unwrap_or_default(),
                    Instant::now(),
                );
                self.last_renewed = Some(Instant::now());
                true
            }
            // Another replica wrote first; the next round reads what it wrote.
            Err(kube::Error::Api(status)) if status.code == 409 => false,
            Err(e) => {
                warn!("Cannot write Lease '{}': {e}", self.lease_ref());
                false
            }
        }
    }

    /// A leader that could not renew keeps leading until the renew deadline, then steps down.
    fn renewal_failed(&self, now: Instant) -> bool {
        self.leading
            && self
                .last_renewed
                .is_some_and(|at| !must_step_down(at, now, self.settings.timings.renew_deadline))
    }

    fn set_leading(&mut self, leading: bool) {
        if leading && !self.leading {
            info!(
                "Leading: this replica ('{}') holds Lease '{}'",
                self.settings.identity,
                self.lease_ref()
            );
            self.followed = None;
        } else if !leading && self.leading {
            warn!(
                "Stopped leading: Lease '{}' is no longer held by this replica ('{}')",
                self.lease_ref(),
                self.settings.identity
            );
        }
        self.leading = leading;
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.settings.namespace, self.settings.name)
    }
}

fn record_of(lease: &Lease) -> Record {
    let spec = lease.spec.clone().unwrap_or_default();
    Record {
        holder: spec.holder_identity,
        lease_duration: std::time::Duration::from_secs(
            spec.lease_duration_seconds.unwrap_or(0).max(0) as u64,
        ),
        resource_version: lease.resource_version().unwrap_or_default(),
    }
}

fn seconds(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

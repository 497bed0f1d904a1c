//! The leader-election decision, a pure function of the Lease as last read, who we are and how
//! long its record has stayed unchanged *as observed locally* — like client-go, expiry is
//! judged on this process's monotonic clock, never by comparing the holder's timestamps with
//! ours, so clock skew between nodes cannot make two replicas lead at once.

use std::time::{Duration, Instant};

/// What the Lease says, reduced to what the decision needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The holder, if any (`None` or empty: released).
    pub holder: Option<String>,
    /// The holder's lease duration.
    pub lease_duration: Duration,
    /// Changes with every write of the Lease.
    pub resource_version: String,
}

/// What to do with the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// No Lease yet: create it, holding it.
    Create,
    /// We hold it: renew it.
    Renew,
    /// Released or expired: take it over (optimistically, with its resourceVersion).
    Acquire,
    /// Someone else holds it.
    Follow {
        /// Who.
        holder: String,
    },
}

/// Tracks since when the Lease's record has stayed the same.
#[derive(Clone, Debug, Default)]
pub struct Observer {
    seen: Option<(String, Instant)>,
}

impl Observer {
    /// Note the record's version as read at `now`; returns since when it is unchanged.
    pub fn observe(&mut self, resource_version: &str, now: Instant) -> Instant {
        match &self.seen {
            Some((rv, since)) if rv == resource_version => *since,
            _ => {
                self.seen = Some((resource_version.to_string(), now));
                now
            }
        }
    }
}

/// Decide what `me` does with the Lease `current`, whose record has stayed unchanged since
/// `unchanged_since`.
pub fn decide(
    current: Option<&Record>,
    me: &str,
    unchanged_since: Instant,
    now: Instant,
) -> Action {
    let Some(record) = current else {
        return Action::Create;
    };
    match record.holder.as_deref().filter(|h| !h.is_empty()) {
        None => Action::Acquire,
        Some(holder) if holder == me => Action::Renew,
        Some(_) if now.saturating_duration_since(unchanged_since) >= record.lease_duration => {
            Action::Acquire
        }
        Some(holder) => Action::Follow {
            holder: holder.to_string(),
        },
    }
}

/// Whether a leader whose last successful renewal was at `last_renewed` must stop leading:
/// past the renew deadline it can no longer be sure the others still see its Lease as held.
pub fn must_step_down(last_renewed: Instant, now: Instant, renew_deadline: Duration) -> bool {
    now.saturating_duration_since(last_renewed) >= renew_deadline
}

/// Timings of the election, checked so that a leader steps down before others may take over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    /// How long an unrenewed Lease lasts.
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it steps down.
    pub renew_deadline: Duration,
    /// Time between two attempts.
    pub retry_period: Duration,
}

impl Timings {
    /// `retry period < renew deadline < lease duration`, or a message saying which is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "the leader election renew deadline ({}s) must be less than the lease duration ({}s)",
                self.renew_deadline.as_secs(),
                self.lease_duration.as_secs()
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "the leader election retry period ({}s) must be less than the renew deadline ({}s)",
                self.retry_period.as_secs(),
                self.renew_deadline.as_secs()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn held_by(holder: Option<&str>, rv: &str) -> Record {
        Record {
            holder: holder.map(str::to_string),
            lease_duration: 15 * SECOND,
            resource_version: rv.into(),
        }
    }

    #[test]
    fn no_lease_is_created_and_our_own_is_renewed() {
        let t = Instant::now();
        assert_eq!(decide(None, "a", t, t), Action::Create);
        assert_eq!(
            decide(Some(&held_by(Some("a"), "1")), "a", t, t + 60 * SECOND),
            Action::Renew
        );
    }

    #[test]
    fn a_released_lease_is_acquired_at_once() {
        let t = Instant::now();
        assert_eq!(
            decide(Some(&held_by(None, "1")), "b", t, t),
            Action::Acquire
        );
        assert_eq!(
            decide(Some(&held_by(Some(""), "1")), "b", t, t),
            Action::Acquire
        );
    }

    #[test]
    fn another_holder_is_followed_until_its_record_stays_unchanged_for_the_lease_duration() {
        let t = Instant::now();
        let lease = held_by(Some("a"), "7");
        assert_eq!(
            decide(Some(&lease), "b", t, t + 14 * SECOND),
            Action::Follow { holder: "a".into() }
        );
        assert_eq!(
            decide(Some(&lease), "b", t, t + 15 * SECOND),
            Action::Acquire
        );
    }

    #[test]
    fn the_observer_restarts_the_clock_whenever_the_record_changes() {
        let t = Instant::now();
        let mut observer = Observer::default();
        assert_eq!(observer.observe("1", t), t);
        assert_eq!(observer.observe("1", t + 5 * SECOND), t);
        // the holder renewed: a new version, observed later
        assert_eq!(observer.observe("2", t + 10 * SECOND), t + 10 * SECOND);
        let lease = held_by(Some("a"), "2");
        let since = observer.observe("2", t + 20 * SECOND);
        assert_eq!(
            decide(Some(&lease), "b", since, t + 20 * SECOND),
            Action::Follow { holder: "a".into() }
        );
    }

    #[test]
    fn a_leader_steps_down_at_the_renew_deadline() {
        let t = Instant::now();
        assert!(!must_step_down(t, t + 9 * SECOND, 10 * SECOND));
        assert!(must_step_down(t, t + 10 * SECOND, 10 * SECOND));
    }

    #[test]
    fn timings_must_nest() {
        let ok = Timings {
            lease_duration: 15 * SECOND,
            renew_deadline: 10 * SECOND,
            retry_period: 2 * SECOND,
        };
        assert_eq!(ok.check(), Ok(()));
        let err = Timings {
            renew_deadline: 15 * SECOND,
            ..ok
        }
        .check()
        .unwrap_err();
        assert!(err.contains("renew deadline (15s)"), "{err}");
        let err = Timings {
            retry_period: 10 * SECOND,
            ..ok
        }
        .check()
        .unwrap_err();
        assert!(err.contains("retry period (10s)"), "{err}");
    }
}

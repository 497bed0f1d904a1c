//! Writing the planned Secrets of one run, all or nothing (I/O):
//! 1. **preflight**: read what exists (GET each plain Secret, LIST the versioned ones once) and
//!    decide every Secret ([`super::secrets`]); if any is refused, nothing is written;
//! 2. **apply**: write them one by one, each API call retried on transient errors
//!    ([`super::retry`]); a write answered AlreadyExists or Conflict is looked at again and
//!    decided again (a lost answer to this run's own write is recognised as such);
//! 3. **rollback**: when a write fails for good, what this run already wrote is undone —
//!    created Secrets and versions deleted (only if still the same object), overwritten ones
//!    restored — so that no half set of output stays.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};

use crate::core::api::labels::{LABEL_SECRET_KIND, SECRET_KIND_VERSIONED};
use crate::core::names::sanitize;
use crate::core::versioned;

use super::ownership::{Owner, claim};
use super::plan::PlannedSecret;
use super::retry;
use super::secrets::{
    Outcome, Refusal, Step, decide_plain, decide_versioned, overwrite, plain_secret, same_plain,
    version_secret,
};

/// How often a write is decided again when other writers change the Secret or take the
/// version number in between.
pub const MAX_ATTEMPTS: u32 = 10;

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteFailure {
    /// The apiserver refused, or stayed unavailable for the whole retry budget.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// Every attempt found the Secret changed or the version number taken by another writer.
    #[error("other writers won {0} attempts in a row")]
    Conflicts(u32),
    /// The Secret turned out not to be this QuarksJob's (created by someone else meanwhile).
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// What the run wrote, to report it and to undo it.
#[derive(Debug, Clone)]
pub enum Done {
    /// Created (a plain Secret or a version): undone by deleting it, if it is still this uid.
    Created {
        /// Its name.
        name: String,
        /// Its uid.
        uid: Option<String>,
    },
    /// Overwritten: undone by restoring what it was.
    Overwrote(Box<Secret>),
    /// Nothing written.
    Nothing,
}

/// What a rollback undid (`namespace/name`), and what it could not (with why).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rollback {
    /// Undone.
    pub undone: Vec<String>,
    /// Not undone: they keep this run's output.
    pub failed: Vec<String>,
}

/// Writes the Secrets of one QuarksJob in its namespace.
pub struct Writer<'a> {
    /// The namespace's Secrets.
    pub api: &'a Api<Secret>,
    /// The QuarksJob written for.
    pub owner: &'a Owner,
}

fn is_status(e: &kube::Error, pred: impl Fn(&kube::core::Status) -> bool) -> bool {
    matches!(e, kube::Error::Api(s) if pred(s))
}

impl Writer<'_> {
    fn what(&self, verb: &str, name: &str) -> String {
        format!("{verb} secret '{}/{name}'", self.owner.namespace)
    }

    async fn get(&self, name: &str) -> Result<Option<Secret>, kube::Error> {
        retry::call(&self.what("get", name), || self.api.get_opt(name)).await
    }

    /// The namespace's versioned secrets (all prefixes).
    pub async fn list_versions(&self) -> Result<Vec<Secret>, kube::Error> {
        let lp =
            ListParams::default().labels(&format!("{LABEL_SECRET_KIND}={SECRET_KIND_VERSIONED}"));
        let what = format!("list versioned secrets in '{}'", self.owner.namespace);
        Ok(retry::call(&what, || self.api.list(&lp)).await?.items)
    }

    /// Decide every planned Secret before writing any. `Err(Ok(refusals))`: some are not this
    /// QuarksJob's; `Err(Err(e))`: reading failed.
    pub async fn preflight(
        &self,
        planned: &[PlannedSecret],
    ) -> Result<Vec<Step>, Result<Vec<Refusal>, kube::Error>> {
        let versions = if planned.iter().any(|p| p.versioned) {
            self.list_versions().await.map_err(Err)?
        } else {
            Vec::new()
        };
        let mut steps = Vec::new();
        let mut refusals = Vec::new();
        for p in planned {
            let decided = if p.versioned {
                let metas = versions.iter().map(|s| &s.metadata);
                versioned::warn_mislabelled(&self.owner.namespace, &p.name, metas);
                decide_versioned(p, &versions, self.owner, 0)
            } else {
                let existing = self.get(&p.name).await.map_err(Err)?;
                decide_plain(p, existing.as_ref(), self.owner)
            };
            match decided {
                Ok(step) => steps.push(step),
                Err(r) => refusals.push(r),
            }
        }
        if refusals.is_empty() {
            Ok(steps)
        } else {
            Err(Ok(refusals))
        }
    }

    /// Write `p` as `step` decided; returns what happened and what to undo.
    pub async fn apply(
        &self,
        p: &PlannedSecret,
        step: Step,
    ) -> Result<(Outcome, Done), WriteFailure> {
        match step {
            Step::Unchanged => Ok((Outcome::Unchanged, Done::Nothing)),
            Step::UnchangedVersion(n) => Ok((Outcome::UnchangedVersion(n), Done::Nothing)),
            Step::Create | Step::Overwrite(_) => self.write_plain(p, step).await,
            Step::NewVersion { .. } => self.write_version(p, step).await,
        }
    }

    async fn write_plain(
        &self,
        p: &PlannedSecret,
        mut step: Step,
    ) -> Result<(Outcome, Done), WriteFailure> {
        let pp = PostParams::default();
        let legacy_container = sanitize(&p.container);
        // what the run found first: restored on rollback
        let mut original: Option<Box<Secret>> = None;
        for _ in 0..MAX_ATTEMPTS {
            let base = match step {
                Step::Unchanged => return Ok((Outcome::Unchanged, Done::Nothing)),
                Step::Overwrite(base) => base,
                Step::Create => {
                    let desired = plain_secret(p, self.owner);
                    let (result, attempts) =
                        retry::call_counted(&self.what("create", &p.name), || {
                            self.api.create(&pp, &desired)
                        })
                        .await;
                    match result {
                        Ok(s) => return Ok((Outcome::Created, created(&s))),
                        Err(e) if is_status(&e, |s| s.is_already_exists()) => {}
                        Err(e) => return Err(e.into()),
                    }
                    let Some(existing) = self.get(&p.name).await? else {
                        continue; // deleted in between: create again
                    };
                    // an earlier attempt whose answer was lost created it
                    if attempts > 1 && same_plain(&existing, &desired) {
                        return Ok((Outcome::Created, created(&existing)));
                    }
                    step = decide_plain(p, Some(&existing), self.owner)?;
                    continue;
                }
                _ => unreachable!("plain steps only"),
            };
            let original = original.get_or_insert_with(|| base.clone());
            let desired = overwrite((*base).clone(), p, self.owner);
            let result = retry::call(&self.what("update", &p.name), || {
                self.api.replace(&p.name, &pp, &desired)
            })
            .await;
            match result {
                Ok(_) => return Ok((Outcome::Updated, Done::Overwrote(original.clone()))),
                Err(e) if is_status(&e, |s| s.is_conflict() || s.is_not_found()) => {}
                Err(e) => return Err(e.into()),
            }
            // changed meanwhile (perhaps by this very update, whose answer was lost)
            let Some(current) = self.get(&p.name).await? else {
                step = Step::Create;
                continue;
            };
            if same_plain(&current, &overwrite(current.clone(), p, self.owner))
                && claim(&current.metadata, self.owner, Some(&legacy_container)).allowed()
            {
                return Ok((Outcome::Updated, Done::Overwrote(original.clone())));
            }
            step = decide_plain(p, Some(&current), self.owner)?;
        }
        Err(WriteFailure::Conflicts(MAX_ATTEMPTS))
    }

    async fn write_version(
        &self,
        p: &PlannedSecret,
        mut step: Step,
    ) -> Result<(Outcome, Done), WriteFailure> {
        let pp = PostParams::default();
        for _ in 0..MAX_ATTEMPTS {
            let (n, name) = match step {
                Step::NewVersion { n, name } => (n, name),
                Step::UnchangedVersion(n) => {
                    return Ok((Outcome::UnchangedVersion(n), Done::Nothing));
                }
                _ => unreachable!("versioned steps only"),
            };
            let desired = version_secret(&name, n, p, self.owner);
            let (result, attempts) = retry::call_counted(&self.what("create", &name), || {
                self.api.create(&pp, &desired)
            })
            .await;
            match result {
                Ok(s) => return Ok((Outcome::NewVersion(n), created(&s))),
                Err(e) if is_status(&e, |s| s.is_already_exists()) => {}
                Err(e) => return Err(e.into()),
            }
            // an earlier attempt whose answer was lost created it
            if attempts > 1
                && let Some(existing) = self.get(&name).await?
                && claim(&existing.metadata, self.owner, None).allowed()
                && versioned::is_identical(
                    &super::secrets::content_of(&existing),
                    &super::secrets::content_of(&desired),
                )
            {
                return Ok((Outcome::NewVersion(n), created(&existing)));
            }
            // A name can be taken without being listed: created after our LIST, or not labelled
            // as a version at all. Never try a taken number twice.
            let existing = self.list_versions().await?;
            step = decide_versioned(p, &existing, self.owner, n)?;
        }
        Err(WriteFailure::Conflicts(MAX_ATTEMPTS))
    }

    /// Undo what the run wrote, newest first.
    pub async fn rollback(&self, done: &[Done]) -> Rollback {
        let mut r = Rollback::default();
        for d in done.iter().rev() {
            let (name, result) = match d {
                Done::Nothing => continue,
                Done::Created { name, uid } => (name.clone(), self.delete_created(name, uid).await),
                Done::Overwrote(previous) => (previous.name_any(), self.restore(previous).await),
            };
            let shown = format!("{}/{name}", self.owner.namespace);
            match result {
                Ok(()) => r.undone.push(shown),
                Err(e) => r.failed.push(format!("{shown} ({e})")),
            }
        }
        r
    }

    async fn delete_created(&self, name: &str, uid: &Option<String>) -> Result<(), kube::Error> {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match retry::call(&self.what("delete", name), || self.api.delete(name, &dp)).await {
            Ok(_) => Ok(()),
            // gone already, or replaced by someone else's object: nothing of ours to undo
            Err(e) if is_status(&e, |s| s.is_not_found() || s.is_conflict()) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn restore(&self, previous: &Secret) -> Result<(), kube::Error> {
        let name = previous.name_any();
        let pp = PostParams::default();
        for _ in 0..MAX_ATTEMPTS {
            let Some(current) = self.get(&name).await? else {
                let mut again = previous.clone();
                again.metadata.resource_version = None;
                again.metadata.uid = None;
                again.metadata.creation_timestamp = None;
                again.metadata.managed_fields = None;
                let result = retry::call(&self.what("re-create", &name), || {
                    self.api.create(&pp, &again)
                })
                .await;
                match result {
                    Err(e) if is_status(&e, |s| s.is_already_exists()) => continue,
                    other => return other.map(|_| ()),
                }
            };
            let mut restored = previous.clone();
            restored.metadata.resource_version = current.metadata.resource_version.clone();
            let result = retry::call(&self.what("restore", &name), || {
                self.api.replace(&name, &pp, &restored)
            })
            .await;
            match result {
                Err(e) if is_status(&e, |s| s.is_conflict()) => continue,
                other => return other.map(|_| ()),
            }
        }
        Err(kube::Error::Api(
            kube::core::Status::failure("changed by other writers while restoring", "Conflict")
                .with_code(409)
                .boxed(),
        ))
    }
}

fn created(s: &Secret) -> Done {
    Done::Created {
        name: s.name_any(),
        uid: s.metadata.uid.clone(),
    }
}

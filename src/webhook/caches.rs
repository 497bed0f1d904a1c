//! The in-memory caches the webhook answers from (kube reflectors; metadata-only where the
//! webhook needs no more, so no secret data is held in memory):
//! monitored namespaces (their service account label), service accounts, versioned secrets
//! (label-filtered), and QuarksJobs (whether they have `spec.output`).
//! `Api<PartialObjectMeta<K>>` makes metadata-only requests.

use std::sync::Arc;

use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::api::QuarksJob;
use crate::api::labels::{
    LABEL_MONITORED, LABEL_QJOB_SERVICE_ACCOUNT, LABEL_SECRET_KIND, SECRET_KIND_VERSIONED,
};

/// Readers of the caches; cheap to clone.
#[derive(Clone)]
pub struct Caches {
    namespaces: Store<PartialObjectMeta<Namespace>>,
    service_accounts: Store<PartialObjectMeta<ServiceAccount>>,
    versioned_secrets: Store<PartialObjectMeta<Secret>>,
    qjobs: Store<QuarksJob>,
}

/// What one admission request needs, copied out of the caches.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The pod's QuarksJob.
    pub qjob: Option<Arc<QuarksJob>>,
    /// The namespace's output service account label.
    pub output_service_account: Option<String>,
    /// Whether that service account exists.
    pub service_account_exists: bool,
    /// Metadata of the namespace's versioned secrets.
    pub versioned_secrets: Vec<ObjectMeta>,
}

impl Caches {
    /// The caches and the future that fills them (run it until shutdown).
    pub fn new(
        client: Client,
        monitored_id: &str,
    ) -> (Caches, impl Future<Output = ()> + Send + 'static) {
        let monitored =
            watcher::Config::default().labels(&format!("{LABEL_MONITORED}={monitored_id}"));
        let versioned = watcher::Config::default()
            .labels(&format!("{LABEL_SECRET_KIND}={SECRET_KIND_VERSIONED}"));
        let (namespaces, ns_writer) = reflector::store();
        let (service_accounts, sa_writer) = reflector::store();
        let (versioned_secrets, vs_writer) = reflector::store();
        let (qjobs, qj_writer) = reflector::store();
        let ns = reflector::reflector(
            ns_writer,
            watcher(
                Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                monitored,
            ),
        );
        let sa = reflector::reflector(
            sa_writer,
            watcher(
                Api::<PartialObjectMeta<ServiceAccount>>::all(client.clone()),
                watcher::Config::default(),
            ),
        );
        let vs = reflector::reflector(
            vs_writer,
            watcher(
                Api::<PartialObjectMeta<Secret>>::all(client.clone()),
                versioned,
            ),
        );
        let qj = reflector::reflector(
            qj_writer,
            watcher(Api::<QuarksJob>::all(client), watcher::Config::default()),
        );
        let drive = async move {
            // errors are retried with backoff inside; the streams end only when dropped
            future::join4(
                ns.default_backoff().for_each(|_| future::ready(())),
                sa.default_backoff().for_each(|_| future::ready(())),
                vs.default_backoff().for_each(|_| future::ready(())),
                qj.default_backoff().for_each(|_| future::ready(())),
            )
            .await;
        };
        (
            Caches {
                namespaces,
                service_accounts,
                versioned_secrets,
                qjobs,
            },
            drive,
        )
    }

    /// Caches that nothing fills (for tests of the handlers).
    #[cfg(test)]
    pub(crate) fn unfilled() -> Caches {
        Caches {
            namespaces: reflector::store().0,
            service_accounts: reflector::store().0,
            versioned_secrets: reflector::store().0,
            qjobs: reflector::store().0,
        }
    }

    /// Resolves once every cache has its first full list.
    pub async fn wait_ready(&self) {
        let _ = future::join4(
            self.namespaces.wait_until_ready(),
            self.service_accounts.wait_until_ready(),
            self.versioned_secrets.wait_until_ready(),
            self.qjobs.wait_until_ready(),
        )
        .await;
    }

    /// What a request for a pod of QuarksJob `qjob` in `namespace` needs.
    pub fn snapshot(&self, namespace: &str, qjob: &str) -> Snapshot {
        let output_service_account =
            self.namespaces
                .get(&ObjectRef::new(namespace))
                .and_then(|ns| {
                    ns.metadata
                        .labels
                        .as_ref()?
                        .get(LABEL_QJOB_SERVICE_ACCOUNT)
                        .cloned()
                });
        let service_account_exists = output_service_account.as_deref().is_some_and(|sa| {
            self.service_accounts
                .get(&ObjectRef::new(sa).within(namespace))
                .is_some()
        });
        let versioned_secrets = self
            .versioned_secrets
            .state()
            .iter()
            .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
            .map(|s| s.metadata.clone())
            .collect();
        Snapshot {
            qjob: self.qjobs.get(&ObjectRef::new(qjob).within(namespace)),
            output_service_account,
            service_account_exists,
            versioned_secrets,
        }
    }
}

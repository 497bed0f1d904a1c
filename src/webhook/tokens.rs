//! Token Secrets for the output service accounts. The output-persist container mounts the token
//! of the namespace's output service account from a `kubernetes.io/service-account-token`
//! Secret named [`token_secret_name`]. Since Kubernetes 1.24 no such Secret exists by default, so
//! the operator creates one per monitored namespace once the service account exists, and
//! Kubernetes' token controller fills in the token (on older versions too).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use super::mutate::token_secret_name;
use crate::api::labels::{LABEL_MONITORED, LABEL_QJOB_SERVICE_ACCOUNT};

/// The annotation that ties a token Secret to its service account.
pub const SERVICE_ACCOUNT_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";

/// Keep a token Secret for the output service account of every monitored namespace, until
/// `shutdown` resolves.
pub async fn run(
    client: Client,
    monitored_id: String,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let namespaces = Api::<Namespace>::all(client.clone());
    let selector = watcher::Config::default().labels(&format!("{LABEL_MONITORED}={monitored_id}"));
    Controller::new(namespaces, selector)
        .watches(
            Api::<ServiceAccount>::all(client.clone()),
            watcher::Config::default(),
            |sa| sa.namespace().map(|ns| ObjectRef::new(&ns)),
        )
        .graceful_shutdown_on(shutdown)
        .run(ensure, error_policy, Arc::new(client))
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn ensure(ns: Arc<Namespace>, client: Arc<Client>) -> Result<Action, kube::Error> {
    let name = ns.name_any();
    let Some(sa) = ns
        .labels()
        .get(LABEL_QJOB_SERVICE_ACCOUNT)
        .filter(|s| !s.is_empty())
    else {
        return Ok(Action::await_change());
    };
    // the token controller deletes token Secrets of accounts that do not exist
    if Api::<ServiceAccount>::namespaced((*client).clone(), &name)
        .get_opt(sa)
        .await?
        .is_none()
    {
        return Ok(Action::await_change());
    }
    let secrets = Api::<Secret>::namespaced((*client).clone(), &name);
    let secret_name = token_secret_name(sa);
    if secrets.get_metadata_opt(&secret_name).await?.is_some() {
        return Ok(Action::await_change());
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.clone()),
            annotations: Some([(SERVICE_ACCOUNT_NAME_ANNOTATION.to_string(), sa.clone())].into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/service-account-token".into()),
        ..Default::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            info!("Created token secret '{name}/{secret_name}' for output service account '{sa}'")
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e),
    }
    Ok(Action::await_change())
}

fn error_policy(ns: Arc<Namespace>, error: &kube::Error, _: Arc<Client>) -> Action {
    warn!(
        "Cannot ensure the output token secret in namespace '{}': {error}",
        ns.name_any()
    );
    Action::requeue(Duration::from_secs(10))
}

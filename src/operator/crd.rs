//! Applying the QuarksJob CRD at start (`--apply-crd`) and waiting until it is Established.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};

use crate::core::api::{CRD_NAME, crd};
use crate::{Error, Result};

/// The field manager of everything the operator applies.
pub const FIELD_MANAGER: &str = "quarks-job";

/// Server-side apply the CRD (create or update in place, never delete) and wait until the
/// apiserver reports it Established, so QuarksJobs can be served right after.
pub async fn apply_crd(client: Client, timeout: Duration) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(CRD_NAME, &params, &Patch::Apply(crd()))
        .await
        .map_err(|source| Error::ApplyCrd {
            name: CRD_NAME.into(),
            source,
        })?;
    tokio::time::timeout(
        timeout,
        await_condition(api, CRD_NAME, conditions::is_crd_established()),
    )
    .await
    .map_err(|_| Error::CrdNotEstablished {
        name: CRD_NAME.into(),
        timeout,
    })?
    .map_err(|source| Error::WatchCrd {
        name: CRD_NAME.into(),
        source,
    })?;
    Ok(())
}

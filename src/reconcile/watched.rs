//! A QuarksJob as the reconciler watches and caches it (pure): read leniently (see
//! [`crate::core::lenient`]), plus its raw `spec.template` as stored.
//!
//! The typed QuarksJob drops the template fields the Rust types do not know (a newer Kubernetes'
//! pod fields, say), and the Job must be built from the template as written. Keeping the raw
//! template next to the typed object (as compact JSON text; it is only parsed when a Job is
//! built) lets a reconcile start from the cache instead of a fresh GET.

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::core::api::QuarksJob;
use crate::core::lenient::Lenient;

/// A QuarksJob as watched: read if it can be, and its raw `spec.template`.
#[derive(Clone, Debug)]
pub struct Watched {
    /// The QuarksJob, read leniently.
    pub qjob: Lenient<QuarksJob>,
    /// `spec.template` as stored (JSON), if there is one.
    template: Option<Arc<str>>,
}

impl Watched {
    /// Read `value`; never fails.
    pub fn from_value(value: &Value) -> Watched {
        Watched {
            qjob: Lenient::from_value(value),
            template: value
                .pointer("/spec/template")
                .map(|t| Arc::from(t.to_string())),
        }
    }

    /// The QuarksJob, if it could be read.
    pub fn get(&self) -> Option<&QuarksJob> {
        self.qjob.get()
    }

    /// The raw `spec.template`, if there is one.
    pub fn template(&self) -> Option<Value> {
        self.template
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
    }
}

impl<'de> Deserialize<'de> for Watched {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Ok(Watched::from_value(&value))
    }
}

impl Resource for Watched {
    type DynamicType = ();
    type Scope = <QuarksJob as Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        QuarksJob::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        QuarksJob::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        QuarksJob::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        QuarksJob::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        self.qjob.meta()
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.qjob.meta_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_the_template_as_written() {
        let value = json!({
            "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
            "metadata": {"name": "q", "namespace": "n"},
            "spec": {"template": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "futureField": {"x": 1}}]
            }}}}}
        });
        let w: Watched = serde_json::from_value(value.clone()).unwrap();
        assert!(w.get().is_some());
        assert_eq!(w.template().unwrap(), value["spec"]["template"]);
        // (the typed one does not know the field)
        let typed = serde_json::to_value(w.get().unwrap()).unwrap();
        assert!(
            typed
                .pointer("/spec/template/spec/template/spec/containers/0/futureField")
                .is_none()
        );
    }

    #[test]
    fn an_unreadable_one_is_still_watched() {
        let w = Watched::from_value(&json!({
            "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
            "metadata": {"name": "q", "namespace": "n"},
            "spec": {"template": {"spec": {"template": {"spec": {"containers": "x"}}}}}
        }));
        assert!(w.get().is_none() && w.qjob.error().is_some());
        assert_eq!(w.meta().name.as_deref(), Some("q"));
    }
}

//! Reading stored objects one at a time, so that one object the Rust types cannot read never
//! fails a whole list or watch, and never puts the object's contents into an error message.
//!
//! A typed list fails as a whole when one item does not decode (kube-client then also logs the
//! whole response body at WARN). [`Lenient<K>`] decodes every object: as `K` where it can, and
//! otherwise as its metadata plus a [`DecodeError`] naming *where* and *what kind of* mistake,
//! never the offending value. Lists and watches of `Lenient<K>` therefore always succeed.
//!
//! Layer: core: plain data and pure functions, no I/O (see `crate::core`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Why a stored object cannot be read as its type: the JSON path of the mistake and what kind
/// of mistake it is. Never carries the value found there (it may be a secret).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct DecodeError {
    /// Where, e.g. `spec.template.spec.template.spec.containers[0].env[0].value`.
    pub path: String,
    /// What, e.g. `invalid type: integer, expected a string`.
    pub problem: String,
}

/// Read `value` as a `K`; a failure says where and what, without the value.
pub fn decode<K: DeserializeOwned>(value: &Value) -> Result<K, DecodeError> {
    serde_path_to_error::deserialize(value).map_err(|e| DecodeError {
        path: e.path().to_string(),
        problem: redact(&e.inner().to_string()),
    })
}

/// serde's message without the value it quotes. The part after the last `, expected` is written
/// by the type (what it expects) and kept; before it, serde names the value found: only its kind
/// is kept (`integer`, `string`, `map`, ...). Messages of other shapes, which could hold a value
/// unquoted, become `invalid value`.
pub fn redact(message: &str) -> String {
    // (the last one: a string value may itself contain ", expected ")
    let (found, expected) = match message.rsplit_once(", expected ") {
        Some((found, expected)) => (found, Some(expected)),
        None => (message, None),
    };
    let kind = |s: &str| -> String {
        s.split(['`', '"'])
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let found = if let Some(rest) = found.strip_prefix("invalid type: ") {
        format!("invalid type: {}", kind(rest))
    } else if let Some(rest) = found.strip_prefix("invalid value: ") {
        format!("invalid value: {}", kind(rest))
    } else if found.starts_with("unknown variant ") {
        "unknown variant".into()
    } else if found.starts_with("unknown field ") {
        "unknown field".into()
    } else if let Some(len) = found.strip_prefix("invalid length ") {
        // a count, not a value
        format!("invalid length {}", kind(len))
    } else if (found.starts_with("missing field `") || found.starts_with("duplicate field `"))
        && expected.is_none()
    {
        // field names come from the type
        found.to_string()
    } else {
        return "invalid value".into();
    };
    match expected {
        Some(expected) => format!("{found}, expected {expected}"),
        None => found,
    }
}

/// An object as listed or watched: read as `K` if it can be, otherwise its metadata and why not.
#[derive(Clone, Debug)]
pub enum Lenient<K> {
    /// Read as `K`.
    Read(Arc<K>),
    /// Not readable as `K`.
    Unreadable {
        /// Its metadata (as far as it could be read).
        metadata: Box<ObjectMeta>,
        /// Why it cannot be read.
        error: DecodeError,
    },
}

impl<K: DeserializeOwned + Resource> Lenient<K> {
    /// Read `value`; never fails.
    pub fn from_value(value: &Value) -> Lenient<K> {
        match decode::<K>(value) {
            Ok(k) => Lenient::Read(Arc::new(k)),
            Err(error) => Lenient::Unreadable {
                metadata: Box::new(metadata_of(value)),
                error,
            },
        }
    }
}

impl<K> Lenient<K> {
    /// The object, if it could be read.
    pub fn get(&self) -> Option<&K> {
        match self {
            Lenient::Read(k) => Some(k),
            Lenient::Unreadable { .. } => None,
        }
    }

    /// The object, shared, if it could be read.
    pub fn shared(&self) -> Option<Arc<K>> {
        match self {
            Lenient::Read(k) => Some(k.clone()),
            Lenient::Unreadable { .. } => None,
        }
    }

    /// Why it could not be read.
    pub fn error(&self) -> Option<&DecodeError> {
        match self {
            Lenient::Read(_) => None,
            Lenient::Unreadable { error, .. } => Some(error),
        }
    }
}

/// The metadata of a stored object: all of it, or (should it not decode, which the apiserver's
/// validation rules out) the fields that identify it.
fn metadata_of(value: &Value) -> ObjectMeta {
    let meta = &value["metadata"];
    decode(meta).unwrap_or_else(|_| {
        let text = |key: &str| meta[key].as_str().map(str::to_string);
        ObjectMeta {
            name: text("name"),
            namespace: text("namespace"),
            uid: text("uid"),
            resource_version: text("resourceVersion"),
            generation: meta["generation"].as_i64(),
            ..ObjectMeta::default()
        }
    })
}

impl<'de, K: DeserializeOwned + Resource> Deserialize<'de> for Lenient<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Ok(Lenient::from_value(&value))
    }
}

impl<K: Resource + Clone> Resource for Lenient<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Lenient::Read(k) => k.meta(),
            Lenient::Unreadable { metadata, .. } => metadata,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Lenient::Read(k) => Arc::make_mut(k).meta_mut(),
            Lenient::Unreadable { metadata, .. } => metadata,
        }
    }
}

/// Remembers which unreadable objects were reported, so each version of one is reported once.
#[derive(Debug, Default)]
pub struct ReportOnce {
    /// uid → resourceVersion last reported.
    reported: HashMap<String, String>,
}

impl ReportOnce {
    /// Whether `meta` (an unreadable object) is new or changed since it was last reported; it
    /// counts as reported from now on.
    pub fn first_time(&mut self, meta: &ObjectMeta) -> bool {
        let uid = meta.uid.clone().unwrap_or_default();
        let version = meta.resource_version.clone().unwrap_or_default();
        self.reported.insert(uid, version.clone()).as_deref() != Some(version.as_str())
    }

    /// `meta` is gone (or readable again): forget it.
    pub fn forget(&mut self, meta: &ObjectMeta) {
        self.reported
            .remove(meta.uid.as_deref().unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::api::QuarksJob;
    use kube::ResourceExt;
    use kube::core::ObjectList;
    use serde_json::json;

    fn qjob(name: &str, env_value: Value) -> Value {
        json!({
            "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJob",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "resourceVersion": "7"},
            "spec": {"template": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "env": [{"name": "PORT", "value": env_value}]}]
            }}}}}
        })
    }

    #[test]
    fn one_bad_item_does_not_fail_the_list() {
        let list = json!({
            "apiVersion": "quarks.cloudfoundry.org/v1alpha1", "kind": "QuarksJobList",
            "metadata": {"resourceVersion": "9"},
            "items": [qjob("good", json!("8080")), qjob("bad", json!(918_273_645))]
        });
        let text = list.to_string();
        assert!(
            serde_json::from_str::<ObjectList<QuarksJob>>(&text).is_err(),
            "a typed list fails as a whole"
        );
        let list: ObjectList<Lenient<QuarksJob>> = serde_json::from_str(&text).unwrap();
        let [good, bad] = &list.items[..] else {
            panic!("two items: {list:?}")
        };
        assert_eq!(good.get().unwrap().name_any(), "good");
        assert!(good.error().is_none());
        assert!(bad.get().is_none());
        assert_eq!(
            (bad.name_any(), bad.namespace(), bad.uid()),
            ("bad".into(), Some("ns".into()), Some("uid-bad".into()))
        );
        let error = bad.error().unwrap();
        assert_eq!(
            error.to_string(),
            "spec.template.spec.template.spec.containers[0].env[0].value: \
             invalid type: integer, expected a string"
        );
    }

    #[test]
    fn watch_events_are_lenient_too() {
        let line = json!({"type": "MODIFIED", "object": qjob("bad", json!({"k": "v"}))});
        let event: kube::core::WatchEvent<Lenient<QuarksJob>> =
            serde_json::from_value(line).unwrap();
        let kube::core::WatchEvent::Modified(obj) = event else {
            panic!("{event:?}")
        };
        assert_eq!(
            obj.error().unwrap().problem,
            "invalid type: map, expected a string"
        );
    }

    #[test]
    fn the_resource_is_the_inner_one() {
        assert_eq!(Lenient::<QuarksJob>::kind(&()), "QuarksJob");
        assert_eq!(Lenient::<QuarksJob>::plural(&()), "quarksjobs");
        assert_eq!(
            Lenient::<QuarksJob>::url_path(&(), Some("ns")),
            QuarksJob::url_path(&(), Some("ns"))
        );
        assert!(!Lenient::<QuarksJob>::metadata_api());
    }

    #[test]
    fn unreadable_metadata_keeps_what_identifies_the_object() {
        let mut v = qjob("bad", json!(1));
        v["metadata"]["labels"] = json!("not a map");
        let obj = Lenient::<QuarksJob>::from_value(&v);
        assert_eq!(obj.meta().name.as_deref(), Some("bad"));
        assert_eq!(obj.meta().resource_version.as_deref(), Some("7"));
        assert_eq!(obj.error().unwrap().path, "metadata.labels");
    }

    #[test]
    fn messages_keep_the_kind_and_drop_the_value() {
        let cases = [
            (
                "invalid type: integer `918273645`, expected a string",
                "invalid type: integer, expected a string",
            ),
            (
                "invalid type: string \"s3cr3t, expected x\", expected i32",
                "invalid type: string, expected i32",
            ),
            (
                "invalid type: floating point `1.5`, expected i32",
                "invalid type: floating point, expected i32",
            ),
            (
                "invalid value: integer `-1`, expected u32",
                "invalid value: integer, expected u32",
            ),
            (
                "unknown variant `s3cr3t`, expected one of `manual`, `once`",
                "unknown variant, expected one of `manual`, `once`",
            ),
            (
                "unknown field `s3cr3t`, expected `name`",
                "unknown field, expected `name`",
            ),
            ("missing field `name`", "missing field `name`"),
            (
                "invalid length 3, expected 2 elements",
                "invalid length 3, expected 2 elements",
            ),
            ("failed to parse s3cr3t as a date", "invalid value"),
        ];
        for (message, want) in cases {
            assert_eq!(redact(message), want, "{message}");
            if message.contains("s3cr3t") || message.contains("918273645") {
                assert!(!redact(message).contains("s3cr3t"));
            }
        }
    }

    #[test]
    fn each_version_is_reported_once() {
        let meta = |uid: &str, rv: &str| ObjectMeta {
            uid: Some(uid.into()),
            resource_version: Some(rv.into()),
            ..ObjectMeta::default()
        };
        let mut once = ReportOnce::default();
        assert!(once.first_time(&meta("a", "1")));
        assert!(!once.first_time(&meta("a", "1")), "seen");
        assert!(once.first_time(&meta("b", "1")), "another object");
        assert!(once.first_time(&meta("a", "2")), "changed");
        once.forget(&meta("a", "2"));
        assert!(once.first_time(&meta("a", "2")), "forgotten");
    }
}

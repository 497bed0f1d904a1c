//! Which Secrets one output file becomes: names, labels, annotations and data (upstream §7.2),
//! checked completely before anything is written.

use std::collections::BTreeMap;

use crate::core::api::labels::{
    LABEL_CONTAINER_NAME, LABEL_REMOTE_ID, is_reserved_output_key, reserved_output_key_message,
};
use crate::core::api::{Output, PersistenceMethod, SecretOptions};
use crate::core::names::{sanitize, sanitize_subdomain};
use crate::core::versioned;

use super::parse::{self, ParseError};
use crate::core::kube_rules::{data_key, dns_subdomain, label_value, qualified_name};

/// One Secret (or, when `versioned`, the next version of one) to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSecret {
    /// The Secret's name, or the prefix of its versions.
    pub name: String,
    /// Write `<name>-v<N>` instead of `<name>`.
    pub versioned: bool,
    /// Labels (without the versioned-secret bookkeeping labels).
    pub labels: BTreeMap<String, String>,
    /// Annotations (without the source description of versioned secrets).
    pub annotations: BTreeMap<String, String>,
    /// The data.
    pub data: BTreeMap<String, String>,
    /// The container whose file this is.
    pub container: String,
    /// The file, relative to the container's output directory.
    pub file: String,
}

/// Why a file cannot become Secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The content is not usable output.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A name, key, label or annotation the apiserver would refuse.
    #[error("{0}")]
    Invalid(String),
}

/// The labels of a container's output Secrets, in upstream's merge order (later wins):
/// `spec.output.secretLabels`, the file's `secretLabels` (values sanitised as DNS labels), then
/// `container-name` (sanitised), then `remote-id` from the container's `REMOTE_ID` (as is).
pub fn labels(
    output: &Output,
    options: &SecretOptions,
    container: &str,
    remote_id: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for (k, v) in output.secret_labels.iter().chain(&options.secret_labels) {
        labels.insert(k.clone(), sanitize(v));
    }
    labels.insert(LABEL_CONTAINER_NAME.to_string(), sanitize(container));
    if let Some(id) = remote_id {
        labels.insert(LABEL_REMOTE_ID.to_string(), id.to_string());
    }
    labels
}

/// The Secrets one file becomes.
pub fn plan_file(
    output: &Output,
    container: &str,
    remote_id: Option<&str>,
    file: &str,
    options: &SecretOptions,
    contents: &[u8],
) -> Result<Vec<PlannedSecret>, PlanError> {
    reserved_keys(output, options).map_err(PlanError::Invalid)?;
    let labels = labels(output, options, container, remote_id);
    let named: Vec<(String, BTreeMap<String, String>)> = match options.persistence_method {
        PersistenceMethod::OneToOne => vec![(
            sanitize_subdomain(&options.name),
            parse::parse_flat(contents)?,
        )],
        PersistenceMethod::FanOut => parse::parse_fan_out(contents)?
            .into_iter()
            .map(|(key, data)| (sanitize_subdomain(&format!("{}-{key}", options.name)), data))
            .collect(),
    };
    let planned: Vec<PlannedSecret> = named
        .into_iter()
        .map(|(name, data)| PlannedSecret {
            name,
            versioned: options.versioned,
            labels: labels.clone(),
            annotations: options.secret_annotations.clone(),
            data,
            container: container.to_string(),
            file: file.to_string(),
        })
        .collect();
    for secret in &planned {
        check(secret).map_err(PlanError::Invalid)?;
    }
    Ok(planned)
}

/// The validating webhook rejects QuarksJobs asking for keys quarks-job sets itself; objects
/// stored before it existed are refused here (defence in depth).
fn reserved_keys(output: &Output, options: &SecretOptions) -> Result<(), String> {
    let labels = output
        .secret_labels
        .keys()
        .chain(options.secret_labels.keys());
    let requested = labels
        .map(|k| ("label", k))
        .chain(options.secret_annotations.keys().map(|k| ("annotation", k)));
    for (what, key) in requested {
        if is_reserved_output_key(key) {
            let message = reserved_output_key_message(key);
            let message = message.strip_prefix("key ").unwrap_or(&message);
            return Err(format!(
                "secret '{}': {what} key {message}",
                sanitize_subdomain(&options.name)
            ));
        }
    }
    Ok(())
}

/// Everything the apiserver would check, so that a bad file fails before any Secret is written.
fn check(s: &PlannedSecret) -> Result<(), String> {
    let name_check = if s.versioned {
        versioned::versioned_name(&s.name, 1).map_err(|e| e.to_string())
    } else {
        versioned::validate_name(&s.name)
            .map(|()| s.name.clone())
            .map_err(|e| e.to_string())
    };
    let name = name_check.map_err(|e| format!("cannot name a secret '{}': {e}", s.name))?;
    dns_subdomain(&name).map_err(|e| format!("cannot name a secret '{name}': it {e}"))?;
    for key in s.data.keys() {
        data_key(key).map_err(|e| format!("secret '{}': data key '{key}' {e}", s.name))?;
    }
    for (k, v) in &s.labels {
        qualified_name(k).map_err(|e| format!("secret '{}': label key '{k}' {e}", s.name))?;
        label_value(v).map_err(|e| format!("secret '{}': label '{k}' value '{v}' {e}", s.name))?;
    }
    for k in s.annotations.keys() {
        qualified_name(k).map_err(|e| format!("secret '{}': annotation key '{k}' {e}", s.name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn options(name: &str) -> SecretOptions {
        SecretOptions {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn label_merge_order_and_sanitising() {
        let output = Output {
            secret_labels: map(&[
                ("key", "value"),
                ("shared", "from-output"),
                ("fake-label", "Fake_Deployment"),
            ]),
            ..Default::default()
        };
        let mut opts = options("foo-busybox");
        opts.secret_labels = map(&[
            ("shared", "from-file"),
            ("quarks.cloudfoundry.org/entanglement", "foo-busybox"),
            (LABEL_CONTAINER_NAME, "overridden"),
        ]);
        let got = labels(&output, &opts, "Busy_Box", Some("Zone_A"));
        assert_eq!(
            got,
            map(&[
                ("key", "value"),
                ("shared", "from-file"),
                ("fake-label", "fake-deployment"),
                ("quarks.cloudfoundry.org/entanglement", "foo-busybox"),
                (LABEL_CONTAINER_NAME, "busy-box"),
                (LABEL_REMOTE_ID, "Zone_A"),
            ])
        );
        assert!(!labels(&output, &opts, "c", None).contains_key(LABEL_REMOTE_ID));
    }

    #[test]
    fn one_to_one_as_upstream() {
        let output = Output {
            secret_labels: map(&[("key", "value")]),
            ..Default::default()
        };
        let mut opts = options("foo-busybox");
        opts.secret_labels = map(&[("quarks.cloudfoundry.org/entanglement", "foo-busybox")]);
        let plan = plan_file(
            &output,
            "busybox",
            None,
            "output.json",
            &opts,
            br#"{"hello": "world"}"#,
        )
        .unwrap();
        assert_eq!(plan.len(), 1);
        let s = &plan[0];
        assert_eq!(s.name, "foo-busybox");
        assert!(!s.versioned);
        assert_eq!(s.data, map(&[("hello", "world")]));
        assert_eq!(
            s.labels,
            map(&[
                (LABEL_CONTAINER_NAME, "busybox"),
                ("quarks.cloudfoundry.org/entanglement", "foo-busybox"),
                ("key", "value")
            ])
        );
        assert_eq!(
            (s.container.as_str(), s.file.as_str()),
            ("busybox", "output.json")
        );
    }

    #[test]
    fn secret_names_are_sanitised_as_subdomains() {
        let plan = plan_file(
            &Output::default(),
            "c",
            None,
            "f",
            &options("link-kubecf-routing_api-routing_api"),
            b"{}",
        )
        .unwrap();
        assert_eq!(plan[0].name, "link-kubecf-routing-api-routing-api");
    }

    #[test]
    fn fan_out_names_and_data() {
        let mut opts = options("link-nats-deployment");
        opts.persistence_method = PersistenceMethod::FanOut;
        opts.secret_annotations = map(&[("note", "x")]);
        let file = serde_json::to_vec(&serde_json::json!({
            "nats-nats": r#"{"nats.user": "admin"}"#,
            "Nats_Nuts": r#"{"nats.user": "udmin"}"#,
        }))
        .unwrap();
        let plan = plan_file(
            &Output::default(),
            "busybox",
            None,
            "provides.json",
            &opts,
            &file,
        )
        .unwrap();
        let names: Vec<_> = plan.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "link-nats-deployment-nats-nuts",
                "link-nats-deployment-nats-nats"
            ]
        );
        assert_eq!(plan[1].data, map(&[("nats.user", "admin")]));
        assert!(plan.iter().all(|s| s.annotations == map(&[("note", "x")])));
    }

    #[test]
    fn keys_reserved_for_quarks_job_are_refused() {
        // objects admitted before the validating webhook existed can still carry them
        let output = Output {
            secret_labels: map(&[("quarks.cloudfoundry.org/secret-kind", "versionedSecret")]),
            ..Default::default()
        };
        let err = plan_file(&output, "c", None, "f", &options("s"), b"{}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "secret 's': label key \"quarks.cloudfoundry.org/secret-kind\" is reserved"
            ),
            "{err}"
        );
        let mut opts = options("s");
        opts.secret_labels = map(&[("quarks.cloudfoundry.org/secret-version", "99")]);
        assert!(plan_file(&Output::default(), "c", None, "f", &opts, b"{}").is_err());
        let mut opts = options("s");
        opts.secret_annotations = map(&[("quarks.cloudfoundry.org/source-description", "x")]);
        let err = plan_file(&Output::default(), "c", None, "f", &opts, b"{}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "annotation key \"quarks.cloudfoundry.org/source-description\" is reserved"
            ),
            "{err}"
        );
        // what quarks-job sets itself is not refused, nor quarks-operator's keys
        let mut opts = options("s");
        opts.secret_labels = map(&[("quarks.cloudfoundry.org/entanglement", "true")]);
        assert!(plan_file(&Output::default(), "c", Some("r"), "f", &opts, b"{}").is_ok());
    }

    #[test]
    fn apiserver_rules_are_checked_before_writing() {
        let bad = |opts: &SecretOptions, content: &[u8]| {
            plan_file(&Output::default(), "c", None, "f", opts, content)
                .unwrap_err()
                .to_string()
        };
        assert!(bad(&options(""), b"{}").contains("cannot name a secret ''"));
        // upstream's sanitising trims only one dash: the result is no valid name
        let err = bad(&options("--a--"), b"{}");
        assert!(
            err.contains("cannot name a secret '-a-': it is not a DNS-1123 subdomain"),
            "{err}"
        );
        let long = "a".repeat(252);
        assert!(plan_file(&Output::default(), "c", None, "f", &options(&long), b"{}").is_ok());
        let mut versioned = options(&long);
        versioned.versioned = true;
        let err = bad(&versioned, b"{}");
        assert!(
            err.contains("exceeds maximum number of allowed characters"),
            "{err}"
        );
        let err = bad(&options("s"), br#"{"has space": "x"}"#);
        assert!(
            err.contains("data key 'has space' is not a valid secret key"),
            "{err}"
        );
        let mut labelled = options("s");
        labelled.secret_labels = map(&[("bad key!", "v")]);
        assert!(bad(&labelled, b"{}").contains("label key 'bad key!'"));
        let err = plan_file(
            &Output::default(),
            "c",
            Some("not valid!"),
            "f",
            &options("s"),
            b"{}",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("label 'quarks.cloudfoundry.org/remote-id' value 'not valid!'"),
            "{err}"
        );
        let mut annotated = options("s");
        annotated.secret_annotations = map(&[("-x", "v")]);
        assert!(bad(&annotated, b"{}").contains("annotation key '-x'"));
        assert!(matches!(
            plan_file(&Output::default(), "c", None, "f", &options("s"), b"[]"),
            Err(PlanError::Parse(_))
        ));
    }
}

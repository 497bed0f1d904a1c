//! Validating a QuarksJob at apply time (pure). The CRD schema checks the typed parts; this
//! checks what the schemaless `spec.template` and the output map must satisfy for the QuarksJob
//! to ever work, with messages a user can act on. Things that work but are probably not meant
//! (upstream's misplaced `spec.template.backoffLimit`) are warnings, not rejections, so existing
//! manifests keep applying.

use k8s_openapi::api::batch::v1::JobTemplateSpec;
use serde_json::Value;

use crate::core::api::QuarksJob;
use crate::core::api::labels::OUTPUT_PERSIST_CONTAINER;
use crate::core::api::labels::{is_reserved_output_key, reserved_output_key_message};
use crate::core::job_names::check_qjob_name;
use crate::core::kube_rules::{dns_subdomain, qualified_name};
use crate::core::lenient::decode;
use crate::core::names::sanitize_subdomain;
use crate::core::versioned;

/// The verdict on a QuarksJob.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Reasons to reject it; empty means allowed.
    pub errors: Vec<String>,
    /// Shown to the user by kubectl, the object is still accepted.
    pub warnings: Vec<String>,
}

/// Validate a QuarksJob given as JSON (the object of an AdmissionReview).
pub fn validate(object: &Value) -> Verdict {
    let mut v = Verdict::default();
    // (a QuarksJob created with `generateName` gets a name of at most 63 characters)
    if let Some(name) = object["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        && let Err(e) = check_qjob_name(name)
    {
        v.errors.push(format!("metadata.name: {e}"));
    }
    let spec = &object["spec"];
    let template = &spec["template"];
    for misplaced in [
        "backoffLimit",
        "activeDeadlineSeconds",
        "completions",
        "parallelism",
    ] {
        if template.get(misplaced).is_some() {
            v.warnings.push(format!(
                "spec.template.{misplaced} is ignored by Kubernetes: move it to spec.template.spec.{misplaced}"
            ));
        }
    }
    // (decode errors name the place and the kind of mistake, never the value: they are logged)
    let job: JobTemplateSpec = match decode(template) {
        Ok(job) => job,
        Err(e) => {
            let path = match e.path.as_str() {
                "." => "spec.template".to_string(),
                path => format!("spec.template.{path}"),
            };
            v.errors.push(format!(
                "spec.template is not a batch/v1 JobTemplateSpec: {path}: {}",
                e.problem
            ));
            return v;
        }
    };
    let qjob: QuarksJob = match decode(object) {
        Ok(q) => q,
        Err(e) => {
            v.errors.push(format!("not a valid QuarksJob: {e}"));
            return v;
        }
    };
    let pod = job.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let Some(pod) = pod else {
        v.errors
            .push("spec.template.spec.template.spec (the pod spec) is missing".into());
        return v;
    };
    let at = "spec.template.spec.template.spec";
    if pod.containers.is_empty() {
        v.errors.push(format!(
            "{at}.containers: at least one container is required"
        ));
    }
    match pod.restart_policy.as_deref() {
        Some("Never") | Some("OnFailure") => {}
        other => v.errors.push(format!(
            "{at}.restartPolicy must be Never or OnFailure for a Job (got {})",
            other.unwrap_or("nothing, which means Always")
        )),
    }
    for (kind, list) in [
        ("containers", Some(&pod.containers)),
        ("initContainers", pod.init_containers.as_ref()),
    ] {
        for (i, c) in list.into_iter().flatten().enumerate() {
            if c.name == OUTPUT_PERSIST_CONTAINER {
                v.errors.push(format!(
                    "{at}.{kind}[{i}]: the name {OUTPUT_PERSIST_CONTAINER} is reserved for the container quarks-job adds"
                ));
            }
            if c.image.as_deref().is_none_or(str::is_empty) {
                v.errors
                    .push(format!("{at}.{kind}[{i}] ({}): image is required", c.name));
            }
        }
    }
    if let Some(output) = &qjob.spec.output {
        for key in output.secret_labels.keys() {
            if let Err(e) = qualified_name(key) {
                v.errors
                    .push(format!("spec.output.secretLabels: key {key:?} {e}"));
            }
            reserved_key(&mut v, "spec.output.secretLabels", key);
        }
        for (container, files) in &output.output_map {
            if !pod.containers.iter().any(|c| &c.name == container) {
                let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
                v.errors.push(format!(
                    "spec.output.outputMap.{container}: no container of that name in the template (containers: {})",
                    names.join(", ")
                ));
            }
            for (file, options) in files {
                let at = format!("spec.output.outputMap.{container}.{file:?}");
                check_secret_name(&mut v, &at, &options.name, options.versioned);
                for key in options
                    .secret_labels
                    .keys()
                    .chain(options.secret_annotations.keys())
                {
                    if let Err(e) = qualified_name(key) {
                        v.errors
                            .push(format!("{at}: label/annotation key {key:?} {e}"));
                    }
                }
                for key in options.secret_labels.keys() {
                    reserved_key(&mut v, &format!("{at}.secretLabels"), key);
                }
                for key in options.secret_annotations.keys() {
                    reserved_key(&mut v, &format!("{at}.secretAnnotations"), key);
                }
            }
        }
    }
    v
}

/// Validate an update of a QuarksJob: only what the update makes wrong is rejected. Problems the
/// stored object already had (it was stored before this webhook existed, or before a rule was
/// added) are warnings, so that the operator's own spec writes (`now` → `manual`, `once` →
/// `done`) and unrelated edits still go through, and the object can be fixed step by step.
pub fn validate_update(old: &Value, new: &Value) -> Verdict {
    let before = validate(old);
    let mut v = validate(new);
    let (kept, introduced): (Vec<String>, Vec<String>) =
        v.errors.drain(..).partition(|e| before.errors.contains(e));
    v.errors = introduced;
    v.warnings.extend(kept.into_iter().map(|e| {
        format!("{e} (already so before this update: the QuarksJob cannot work until it is fixed)")
    }));
    v
}

/// Keys quarks-job sets on output Secrets itself cannot be asked for (see
/// [`is_reserved_output_key`]).
fn reserved_key(v: &mut Verdict, at: &str, key: &str) {
    if is_reserved_output_key(key) {
        v.errors
            .push(format!("{at}: {}", reserved_output_key_message(key)));
    }
}

fn check_secret_name(v: &mut Verdict, at: &str, name: &str, versioned: bool) {
    let sanitized = sanitize_subdomain(name);
    if sanitized.is_empty() {
        v.errors
            .push(format!("{at}.name: {name:?} cannot become a Secret name"));
        return;
    }
    // fan-out appends "-<key>" per key; only the prefix can be checked here
    let full = if versioned {
        versioned::versioned_name(&sanitized, 1).map_err(|e| e.to_string())
    } else {
        Ok(sanitized)
    };
    match full {
        Ok(full) => {
            if let Err(e) = dns_subdomain(&full) {
                v.errors
                    .push(format!("{at}.name: {name:?} becomes {full:?}, which {e}"));
            }
        }
        Err(e) => v.errors.push(format!("{at}.name: {name:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn qjob(pod: Value, output: Option<Value>) -> Value {
        let mut q = json!({
            "apiVersion": "quarks.cloudfoundry.org/v1alpha1",
            "kind": "QuarksJob",
            "metadata": {"name": "q"},
            "spec": {"trigger": {"strategy": "once"}, "template": {"spec": {"template": {"spec": pod}}}}
        });
        if let Some(o) = output {
            q["spec"]["output"] = o;
        }
        q
    }

    fn good_pod() -> Value {
        json!({"restartPolicy": "Never", "containers": [{"name": "jsonout", "image": "busybox"}]})
    }

    #[test]
    fn a_good_quarksjob_passes() {
        let out = json!({"outputMap": {"jsonout": {"output.json": {"name": "foo-json", "versioned": true}}}});
        assert_eq!(validate(&qjob(good_pod(), Some(out))), Verdict::default());
    }

    #[test]
    fn every_upstream_example_is_allowed_with_a_warning_for_the_misplaced_backoff_limit() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/upstream-examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value: Value = serde::Deserialize::deserialize(doc).unwrap();
                if value["kind"] != "QuarksJob" {
                    continue;
                }
                seen += 1;
                let verdict = validate(&value);
                assert!(
                    verdict.errors.is_empty(),
                    "{}: {:?}",
                    path.display(),
                    verdict.errors
                );
                let misplaced = value["spec"]["template"].get("backoffLimit").is_some();
                assert_eq!(
                    verdict.warnings.len(),
                    usize::from(misplaced),
                    "{}",
                    path.display()
                );
            }
        }
        assert_eq!(seen, 7);
    }

    #[test]
    fn an_update_is_rejected_only_for_what_it_makes_wrong() {
        let mut always = qjob(good_pod(), None);
        always["spec"]["template"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        // the operator's own strategy write on an object stored before the webhook: allowed,
        // the old problem is still shown
        let mut manual = always.clone();
        manual["spec"]["trigger"]["strategy"] = json!("manual");
        let v = validate_update(&always, &manual);
        assert!(v.errors.is_empty(), "{v:?}");
        assert!(
            v.warnings
                .iter()
                .any(|w| w.contains("restartPolicy must be Never or OnFailure")
                    && w.contains("already so before this update")),
            "{v:?}"
        );
        // a new problem is rejected, the old one stays a warning
        let mut worse = manual.clone();
        worse["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
        let v = validate_update(&always, &worse);
        assert_eq!(v.errors.len(), 1, "{v:?}");
        assert!(v.errors[0].contains("image is required"), "{v:?}");
        // an update of a good object is checked in full
        let good = qjob(good_pod(), None);
        assert_eq!(
            validate_update(&good, &always).errors,
            validate(&always).errors
        );
    }

    #[test]
    fn names_that_cannot_work_are_rejected_naming_the_limit() {
        let mut q = qjob(good_pod(), None);
        q["metadata"]["name"] = json!("a".repeat(64));
        let v = validate(&q);
        assert_eq!(v.errors.len(), 1, "{v:?}");
        assert!(
            v.errors[0].starts_with("metadata.name: the name \"aaaa")
                && v.errors[0].contains("at most 63 characters"),
            "{v:?}"
        );
        q["metadata"]["name"] = json!("a".repeat(63));
        assert_eq!(validate(&q), Verdict::default());
        // generateName: the apiserver makes a name that fits
        q["metadata"] = json!({"generateName": "a".repeat(80)});
        assert_eq!(validate(&q), Verdict::default());
    }

    #[test]
    fn broken_templates_are_rejected_with_the_path() {
        let v = validate(&qjob(json!({"containers": "busybox"}), None));
        assert_eq!(
            v.errors,
            ["spec.template is not a batch/v1 JobTemplateSpec: \
                 spec.template.spec.template.spec.containers: invalid type: string, expected a sequence"]
        );
        // the value of a wrong type is not repeated: the message is logged
        let pod = json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "i",
                         "env": [{"name": "PORT", "value": 918_273_645}]}]});
        let v = validate(&qjob(pod, None));
        assert_eq!(
            v.errors,
            ["spec.template is not a batch/v1 JobTemplateSpec: \
                 spec.template.spec.template.spec.containers[0].env[0].value: \
                 invalid type: integer, expected a string"]
        );

        let v = validate(&qjob(
            json!({"restartPolicy": "Never", "containers": []}),
            None,
        ));
        assert_eq!(
            v.errors,
            ["spec.template.spec.template.spec.containers: at least one container is required"]
        );

        let v = validate(&qjob(
            json!({"containers": [{"name": "a", "image": "i"}]}),
            None,
        ));
        assert!(
            v.errors[0].contains("restartPolicy must be Never or OnFailure"),
            "{v:?}"
        );

        let mut q = qjob(good_pod(), None);
        q["spec"]["template"] = json!({});
        assert_eq!(
            validate(&q).errors,
            ["spec.template.spec.template.spec (the pod spec) is missing"]
        );
    }

    #[test]
    fn the_injected_container_name_is_reserved() {
        let pod = json!({"restartPolicy": "Never", "containers": [{"name": "output-persist", "image": "i"}],
                          "initContainers": [{"name": "output-persist", "image": "i"}]});
        let v = validate(&qjob(pod, None));
        assert_eq!(v.errors.len(), 2, "{v:?}");
        assert!(v.errors.iter().all(|e| e.contains("reserved")));
        let v = validate(&qjob(
            json!({"restartPolicy": "Never", "containers": [{"name": "x"}]}),
            None,
        ));
        assert_eq!(
            v.errors,
            ["spec.template.spec.template.spec.containers[0] (x): image is required"]
        );
    }

    #[test]
    fn output_map_must_name_template_containers_and_writable_secrets() {
        let out = json!({"outputMap": {"jsonot": {"o.json": {"name": "foo"}}}});
        let v = validate(&qjob(good_pod(), Some(out)));
        assert_eq!(
            v.errors,
            [
                "spec.output.outputMap.jsonot: no container of that name in the template (containers: jsonout)"
            ]
        );

        let out = json!({"outputMap": {"jsonout": {"o.json": {"name": "!!!"}}}});
        assert!(
            validate(&qjob(good_pod(), Some(out))).errors[0]
                .contains("cannot become a Secret name")
        );
        // upstream's sanitiser turns "___" into "-", which is no valid Secret name either
        let out = json!({"outputMap": {"jsonout": {"o.json": {"name": "___"}}}});
        let v = validate(&qjob(good_pod(), Some(out)));
        assert!(v.errors[0].contains("becomes \"-\""), "{v:?}");

        let out = json!({"outputMap": {"jsonout": {"o.json": {"name": "ok", "secretLabels": {"bad key!": "v"}}}}});
        assert!(validate(&qjob(good_pod(), Some(out))).errors[0].contains("\"bad key!\""));

        let out = json!({"outputMap": {"jsonout": {}}, "secretLabels": {"-x": "v"}});
        assert!(
            validate(&qjob(good_pod(), Some(out))).errors[0]
                .starts_with("spec.output.secretLabels")
        );
    }

    #[test]
    fn output_keys_under_the_api_group_are_rejected() {
        // forging secret-kind/secret-version made a fake "latest" version the webhook mounted
        let out = json!({
            "secretLabels": {"quarks.cloudfoundry.org/secret-kind": "versionedSecret", "team": "a"},
            "outputMap": {"jsonout": {"o.json": {"name": "creds",
                "secretLabels": {"quarks.cloudfoundry.org/secret-version": "99", "sub.quarks.cloudfoundry.org/x": "y"},
                "secretAnnotations": {"quarks.cloudfoundry.org/source-description": "me"}}}}
        });
        let v = validate(&qjob(good_pod(), Some(out)));
        assert_eq!(v.errors.len(), 4, "{v:?}");
        assert!(
            v.errors[0].starts_with(
                "spec.output.secretLabels: key \"quarks.cloudfoundry.org/secret-kind\" is reserved"
            ),
            "{v:?}"
        );
        for key in [
            "quarks.cloudfoundry.org/secret-version",
            "sub.quarks.cloudfoundry.org/x",
            "quarks.cloudfoundry.org/source-description",
        ] {
            assert!(
                v.errors
                    .iter()
                    .any(|e| e.contains(&format!("{key:?} is reserved"))),
                "{key}: {v:?}"
            );
        }
        // the keys upstream's quarks-operator put on its QuarksJobs' output stay allowed
        let out = json!({
            "secretLabels": {"quarks.cloudfoundry.org/deployment-name": "cf"},
            "outputMap": {"jsonout": {"o.json": {"name": "creds",
                "secretLabels": {"quarks.cloudfoundry.org/entanglement": "true", "quarks.cloudfoundry.org/secret-type": "bpm"},
                "secretAnnotations": {"quarks.cloudfoundry.org/restart-on-update": "true"}}}}
        });
        assert_eq!(validate(&qjob(good_pod(), Some(out))), Verdict::default());
    }

    #[test]
    fn long_names_are_sanitised_like_persist_output_does() {
        // upstream truncates to 253 characters with an md5 suffix, so a long name is writable ...
        let long = "a".repeat(300);
        let out = json!({"outputMap": {"jsonout": {"o.json": {"name": long}}}});
        assert_eq!(
            validate(&qjob(good_pod(), Some(out))).errors,
            Vec::<String>::new()
        );
        // ... but not as versions: `-v<N>` would exceed 253, which persist-output would refuse
        let out = json!({"outputMap": {"jsonout": {"o.json": {"name": long, "versioned": true}}}});
        let v = validate(&qjob(good_pod(), Some(out)));
        assert_eq!(v.errors.len(), 1, "{v:?}");
        assert!(v.errors[0].contains("253"), "{v:?}");
    }
}

//! `QuarksJob` types. The JSON is wire-compatible with upstream Quarks Job manifests: same field
//! names (including the lower-case `persistencemethod`), same enum values, same defaults.
//!
//! Layer: core: plain data and pure functions, no I/O (see `crate::core`).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::JobTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a QuarksJob.
// `printcolumn(... type_ = ...)` repeated is not a duplicated attribute.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "quarks.cloudfoundry.org",
    version = "v1alpha1",
    kind = "QuarksJob",
    plural = "quarksjobs",
    shortname = "qjob",
    shortname = "qjobs",
    namespaced,
    status = "QuarksJobStatus",
    derive = "PartialEq",
    doc = "QuarksJob runs a batch Job on demand (errand) or automatically, and turns the JSON files its containers write into Secrets.",
    printcolumn = r#"{"name": "completed", "type": "boolean", "jsonPath": ".status.completed"}"#,
    printcolumn = r#"{"name": "strategy", "type": "string", "jsonPath": ".spec.trigger.strategy"}"#,
    printcolumn = r#"{"name": "last run", "type": "string", "description": "The result of the newest run", "jsonPath": ".status.runs[0].result"}"#,
    printcolumn = r#"{"name": "finished", "type": "date", "description": "When the newest run finished", "jsonPath": ".status.runs[0].finished"}"#,
    printcolumn = r#"{"name": "runs", "type": "integer", "description": "Runs started so far", "jsonPath": ".status.createdRun"}"#,
    printcolumn = r#"{"name": "updateOnConfigChange", "type": "boolean", "jsonPath": ".spec.updateOnConfigChange", "priority": 20}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct QuarksJobSpec {
    /// Which files of which containers become Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Output>,

    /// When the Job runs. A QuarksJob without a trigger never runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,

    /// A batch/v1 JobTemplateSpec: `metadata` and `spec`, with the pod template at
    /// `spec.template`.
    // Schemaless, as upstream: a full PodSpec schema makes the CRD too large for client-side
    // apply.
    #[serde(default)]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub template: JobTemplateSpec,

    /// Re-run a `once`/`done` QuarksJob when a ConfigMap or Secret it references changes.
    #[serde(default)]
    pub update_on_config_change: bool,
}

/// `spec.trigger`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Trigger {
    /// `manual` (errand, waits), `now` (run, then `manual`), `once` (run on creation, then
    /// `done`), `done` (ran once).
    pub strategy: Strategy,
}

/// `spec.trigger.strategy`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// An errand: runs only when the strategy is changed to `now`.
    Manual,
    /// Run once as soon as possible, then becomes `done`.
    Once,
    /// Run now, then becomes `manual`.
    Now,
    /// A `once` QuarksJob that ran.
    Done,
}

impl Strategy {
    /// The value as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Manual => "manual",
            Strategy::Once => "once",
            Strategy::Now => "now",
            Strategy::Done => "done",
        }
    }

    /// `once` and `done` are "auto-errands" (upstream `IsAutoErrand`).
    pub fn is_auto_errand(self) -> bool {
        matches!(self, Strategy::Once | Strategy::Done)
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `spec.output`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// Container name → file name (relative to `/mnt/quarks`) → the Secret it becomes.
    pub output_map: BTreeMap<String, BTreeMap<String, SecretOptions>>,

    /// Documented upstream as the output format (`json`); only JSON is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_type: Option<String>,

    /// Labels put on every output Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_labels: BTreeMap<String, String>,

    /// Also write the output of containers that exited non-zero.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub write_on_failure: bool,
}

/// How one output file becomes one or more Secrets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SecretOptions {
    /// Name of the Secret (or the prefix of its versions, or of its fan-out Secrets).
    #[serde(default)]
    pub name: String,

    /// Labels added to this file's Secrets.
    #[serde(
        default,
        rename = "secretLabels",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub secret_labels: BTreeMap<String, String>,

    /// Annotations added to this file's Secrets.
    #[serde(
        default,
        rename = "secretAnnotations",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub secret_annotations: BTreeMap<String, String>,

    /// Write a new version `<name>-v<N>` instead of overwriting one Secret.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub versioned: bool,

    /// `one-to-one` (default) or `fan-out` (one Secret per top-level key).
    #[serde(default, rename = "persistencemethod")]
    pub persistence_method: PersistenceMethod,
}

/// `outputMap.<container>.<file>.persistencemethod`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PersistenceMethod {
    /// One Secret named `name` holding the file's keys.
    #[default]
    #[serde(rename = "one-to-one")]
    OneToOne,
    /// One Secret per top-level key `k`, named `<name>-<k>`, whose value is itself a flat JSON
    /// object.
    #[serde(rename = "fan-out")]
    FanOut,
}

/// Observed state of a QuarksJob.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuarksJobStatus {
    /// When the last Job was created (upstream: the start of the reconcile "meltdown" window);
    /// kept for compatibility and serialized as `null` when unset, as upstream did. Config-change
    /// re-runs wait until `--meltdown-duration` has passed since this time.
    #[serde(default)]
    pub last_reconcile: Option<Time>,

    /// True once a Job of this QuarksJob has succeeded.
    #[serde(default)]
    pub completed: bool,

    /// Standard conditions telling what the QuarksJob is doing and how its last run ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "condition_list")]
    pub conditions: Vec<Condition>,

    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Name of the last Job created for this QuarksJob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job_name: Option<String>,

    /// Number of the last run handed out. Runs are numbered from 1; the Job of run `n` has a
    /// name derived from the QuarksJob's uid and `n`. Written together with `createdRun` (a run
    /// in flight is marked by its Job); earlier versions wrote it first, and a value greater
    /// than `createdRun` is still resumed (see the reconciler's documentation).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requested_run: i64,

    /// Number of the last run whose Job is known to have been created.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub created_run: i64,

    /// Digest of the referenced ConfigMaps/Secrets when the last Job was created
    /// (`updateOnConfigChange` re-runs when it differs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,

    /// Per referenced ConfigMap/Secret (`<Kind>/<name as written>`), a short digest of what it
    /// resolved to at the last run, to name the reference whose change started a re-run
    /// (`updateOnConfigChange` only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reference_digests: BTreeMap<String, String>,

    /// The last runs, newest first: at most `--run-history` of them (default 5, at most 20),
    /// each with at most 20 outputs, so the status stays a few kilobytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunRecord>,
}

/// One run of a QuarksJob in `status.runs`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// The run number (`status.createdRun` when it started).
    pub run: i64,
    /// What started it: `now`, `once`, `configChange`, or `resumed` (a run started before a
    /// restart whose trigger was consumed already).
    pub trigger: String,
    /// The field manager that last set `spec.trigger.strategy` (e.g. `kubectl-qjob`,
    /// `kubectl-patch`), from `metadata.managedFields`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_by: Option<String>,
    /// For `configChange`: the references whose content changed (`<Kind>/<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// The run's Job.
    pub job_name: String,
    /// The pod the result is read from (the newest pod of the Job), once the Job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// When the Job was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Time>,
    /// When the Job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Time>,
    /// `Running`, `Succeeded`, `Failed`, or `Unknown` (the Job disappeared before it finished).
    pub result: String,
    /// Why it failed: the Job's reason (e.g. `BackoffLimitExceeded`), or `JobNotFound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The container that failed, in the pod named by `podName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Its exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The Secrets the run wrote (never their data).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<RunOutput>,
    /// How many more Secrets it wrote than `outputs` lists (capped).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub outputs_omitted: i64,
}

/// A Secret a run wrote.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunOutput {
    /// The Secret's name (for a versioned secret, the version's name `<name>-v<N>`).
    pub name: String,
    /// The version number of a versioned secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl QuarksJob {
    /// The trigger strategy, if the QuarksJob has a trigger.
    pub fn strategy(&self) -> Option<Strategy> {
        self.spec.trigger.as_ref().map(|t| t.strategy)
    }
}

fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

fn condition_list(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let item = generator.subschema_for::<Condition>();
    schemars::json_schema!({
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_round_trips_lowercase() {
        for s in [
            Strategy::Manual,
            Strategy::Once,
            Strategy::Now,
            Strategy::Done,
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<Strategy>(&json).unwrap(), s);
        }
        assert!(serde_json::from_str::<Strategy>("\"sometimes\"").is_err());
        assert!(Strategy::Once.is_auto_errand() && Strategy::Done.is_auto_errand());
        assert!(!Strategy::Now.is_auto_errand() && !Strategy::Manual.is_auto_errand());
    }

    #[test]
    fn upstream_output_fields_keep_their_names() {
        let spec: QuarksJobSpec = serde_json::from_value(serde_json::json!({
            "trigger": {"strategy": "once"},
            "updateOnConfigChange": true,
            "template": {"spec": {"backoffLimit": 2, "template": {"spec": {"containers": [{"name": "c"}]}}}},
            "output": {
                "outputType": "json",
                "writeOnFailure": true,
                "secretLabels": {"key": "value"},
                "outputMap": {"c": {"provides.json": {
                    "name": "link-nats",
                    "versioned": true,
                    "persistencemethod": "fan-out",
                    "secretLabels": {"a": "b"},
                    "secretAnnotations": {"c": "d"}
                }}}
            }
        }))
        .unwrap();
        assert!(spec.update_on_config_change);
        assert_eq!(spec.template.spec.as_ref().unwrap().backoff_limit, Some(2));
        let output = spec.output.as_ref().unwrap();
        assert!(output.write_on_failure);
        assert_eq!(output.output_type.as_deref(), Some("json"));
        let file = &output.output_map["c"]["provides.json"];
        assert_eq!(file.name, "link-nats");
        assert!(file.versioned);
        assert_eq!(file.persistence_method, PersistenceMethod::FanOut);
        assert_eq!(file.secret_labels["a"], "b");
        assert_eq!(file.secret_annotations["c"], "d");

        // and back out, with the same keys
        let back = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            back["output"]["outputMap"]["c"]["provides.json"]["persistencemethod"],
            "fan-out"
        );
        assert_eq!(back["output"]["writeOnFailure"], true);
        assert_eq!(back["updateOnConfigChange"], true);
    }

    #[test]
    fn persistence_method_defaults_to_one_to_one() {
        let o: SecretOptions = serde_json::from_str(r#"{"name": "x"}"#).unwrap();
        assert_eq!(o.persistence_method, PersistenceMethod::OneToOne);
        assert!(!o.versioned);
        assert!(
            serde_json::from_str::<SecretOptions>(r#"{"persistencemethod": "fanout"}"#).is_err()
        );
    }

    #[test]
    fn missing_trigger_means_no_strategy() {
        let q = QuarksJob::new("x", QuarksJobSpec::default());
        assert_eq!(q.strategy(), None);
    }

    #[test]
    fn status_keeps_upstream_fields() {
        let status = QuarksJobStatus::default();
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"lastReconcile": null, "completed": false})
        );
    }
}

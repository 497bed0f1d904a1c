//! The scripted apiserver of the mock tier (test only): a [`kube::Client`] over
//! `tower_test::mock::pair`, a [`Context`] with a filled namespace cache, and an [`ApiServer`]
//! that takes the reconciler's requests one at a time, asserts each (method, path, the parts of
//! the body that matter) and answers it. One `expect_*` method per kind of request, so a
//! changed write sequence means changing the scripts in one obvious place.
//!
//! The QuarksJob is kept as the apiserver would keep it: status and spec patches are merged
//! into it and bump its `resourceVersion`, so scripts can check the end state.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

use super::objects::{
    Cache, MONITORED_ID, NAME, NS, OWNER, UID, core_path, job_of, job_uid, jobs_path, namespaces,
    qjob_path, qjob_selector,
};
use crate::core::api::labels::LABEL_QJOB_NAME;
use crate::reconcile::context::{Config, Context, Watched};
use crate::reconcile::error::Result;
use crate::reconcile::job::{Owned, owner_reference};
use crate::reconcile::jobs::JobIndex;
use crate::reconcile::reconciler::reconcile;
use kube::runtime::watcher::Event;

/// A scenario not finished by then failed: the reconciler waits for an answer the script does
/// not give, or the script for a request the reconciler does not make (a liveness limit, not a
/// timing assertion: scenarios take milliseconds).
const SCENARIO_LIMIT: Duration = Duration::from_secs(20);

/// A request as the reconciler sent it.
#[derive(Debug)]
pub struct Seen {
    /// Method.
    pub method: Method,
    /// Path, without the query.
    pub path: String,
    /// The query, decoded.
    pub query: BTreeMap<String, String>,
    /// The body as JSON (`null` when empty).
    pub body: Value,
}

/// The scripted apiserver.
pub struct ApiServer {
    handle: Handle<Request<Body>, Response<Body>>,
    /// The QuarksJob as stored.
    pub qjob: Value,
    /// What was asked so far (`METHOD path`), for the failure messages.
    pub seen: Vec<String>,
}

impl ApiServer {
    /// The next request, which must be `what` (`method` on `path`).
    async fn next(
        &mut self,
        what: &str,
        method: Method,
        path: &str,
    ) -> (Seen, SendResponse<Response<Body>>) {
        let Some((request, reply)) = self.handle.next_request().await else {
            panic!(
                "expected {what}, but the reconciler made no further request; seen: {:#?}",
                self.seen
            )
        };
        let (parts, body) = request.into_parts();
        let bytes = body.collect().await.expect("request body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        let seen = Seen {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(decode_query).unwrap_or_default(),
            body,
        };
        self.seen.push(format!("{} {}", seen.method, seen.path));
        assert_eq!(
            (&seen.method, seen.path.as_str()),
            (&method, path),
            "expected {what}; the request: {seen:#?}; seen before: {:#?}",
            self.seen
        );
        (seen, reply)
    }

    /// GET of the QuarksJob: answered with the stored one.
    pub async fn expect_get_qjob(&mut self) {
        let (_, reply) = self
            .next("GET of the QuarksJob", Method::GET, &qjob_path())
            .await;
        answer(reply, StatusCode::OK, &self.qjob);
    }

    /// A merge patch of the status subresource: `check` sees its body; merged into the stored
    /// QuarksJob (a `resourceVersion` in it must be the stored one). Returns the body.
    pub async fn expect_status_patch(&mut self, check: impl FnOnce(&Value)) -> Value {
        let (seen, reply) = self
            .next(
                "status patch",
                Method::PATCH,
                &format!("{}/status", qjob_path()),
            )
            .await;
        check(&seen.body);
        self.store(&seen.body, true);
        answer(reply, StatusCode::OK, &self.qjob);
        seen.body
    }

    /// A spec patch answered 409 Conflict (someone wrote the QuarksJob since it was read).
    pub async fn expect_spec_patch_conflict(&mut self, check: impl FnOnce(&Value)) {
        let (seen, reply) = self.next("spec patch", Method::PATCH, &qjob_path()).await;
        check(&seen.body);
        answer(
            reply,
            StatusCode::CONFLICT,
            &failure(409, "Conflict", "the object has been modified"),
        );
    }

    /// A merge patch of the QuarksJob (its spec): `check` sees its body; merged as
    /// [`ApiServer::expect_status_patch`] does.
    pub async fn expect_spec_patch(&mut self, check: impl FnOnce(&Value)) -> Value {
        let (seen, reply) = self.next("spec patch", Method::PATCH, &qjob_path()).await;
        check(&seen.body);
        self.store(&seen.body, false);
        answer(reply, StatusCode::OK, &self.qjob);
        seen.body
    }

    /// The create of the Job of run `run`: its name, controller owner reference, labels and
    /// the template's unknown field are checked. Answered 201, or 409 AlreadyExists if `exists`.
    pub async fn expect_job_create(&mut self, run: i64, exists: bool) -> Value {
        let (seen, reply) = self
            .next("create of a Job", Method::POST, &jobs_path())
            .await;
        let job = seen.body;
        assert_eq!(
            job["metadata"]["name"],
            job_of(run),
            "the deterministic name of run {run}"
        );
        assert_eq!(
            job["metadata"]["ownerReferences"],
            json!([owner_reference(&OWNER, Owned::Job)])
        );
        assert_eq!(
            job["metadata"]["labels"],
            json!({"team": "blue", LABEL_QJOB_NAME: NAME})
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"][LABEL_QJOB_NAME],
            NAME
        );
        assert_eq!(
            job["spec"]["someFutureField"],
            json!({"kept": true}),
            "unknown fields kept"
        );
        if exists {
            answer(
                reply,
                StatusCode::CONFLICT,
                &failure(409, "AlreadyExists", "jobs.batch already exists"),
            );
        } else {
            let mut created = job.clone();
            created["metadata"]["uid"] = json!(job_uid(run));
            answer(reply, StatusCode::CREATED, &created);
        }
        job
    }

    /// An event (events.k8s.io/v1) about the QuarksJob with `reason`: answered as created.
    /// Returns it (for checks of its `related` object and note).
    pub async fn expect_event(&mut self, reason: &str) -> Value {
        let what = format!("event {reason}");
        let events = format!("/apis/events.k8s.io/v1/namespaces/{NS}/events");
        let (seen, reply) = self.next(&what, Method::POST, &events).await;
        assert_eq!(seen.body["reason"], reason, "{what}: {:#}", seen.body);
        assert_eq!(seen.body["regarding"]["name"], NAME);
        assert_eq!(seen.body["regarding"]["kind"], "QuarksJob");
        answer(reply, StatusCode::CREATED, &seen.body);
        seen.body
    }

    /// A list of pods with the label selector `selector`: answered with `pods`.
    pub async fn expect_list_pods(&mut self, selector: &str, pods: Vec<Value>) {
        let what = format!("list of pods {selector}");
        let (seen, reply) = self.next(&what, Method::GET, &core_path("pods")).await;
        assert_eq!(
            seen.query.get("labelSelector").map(String::as_str),
            Some(selector),
            "{what}"
        );
        answer(reply, StatusCode::OK, &list("PodList", "v1", pods));
    }

    /// A metadata-only list of the QuarksJob's output Secrets: answered with `metadata` (of
    /// each Secret).
    pub async fn expect_list_output_secrets(&mut self, metadata: Vec<Value>) {
        let (seen, reply) = self
            .next("list of output Secrets", Method::GET, &core_path("secrets"))
            .await;
        assert_eq!(seen.query.get("labelSelector"), Some(&qjob_selector()));
        let items = metadata
            .into_iter()
            .map(|m| json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": m}))
            .collect();
        answer(
            reply,
            StatusCode::OK,
            &list("PartialObjectMetadataList", "meta.k8s.io/v1", items),
        );
    }

    /// A merge patch of the pod `name`: `check` sees its body; answered with `answer_with`.
    pub async fn expect_pod_patch(
        &mut self,
        name: &str,
        answer_with: Value,
        check: impl FnOnce(&Value),
    ) {
        let path = format!("{}/{name}", core_path("pods"));
        let (seen, reply) = self
            .next(&format!("patch of pod {name}"), Method::PATCH, &path)
            .await;
        check(&seen.body);
        answer(reply, StatusCode::OK, &answer_with);
    }

    /// The delete of `plural` (`jobs` or `pods`) `name`: `check` sees the DeleteOptions.
    pub async fn expect_delete(&mut self, plural: &str, name: &str, check: impl FnOnce(&Value)) {
        let path = match plural {
            "jobs" => format!("{}/{name}", jobs_path()),
            _ => format!("{}/{name}", core_path(plural)),
        };
        let (seen, reply) = self
            .next(&format!("delete of {plural} {name}"), Method::DELETE, &path)
            .await;
        check(&seen.body);
        answer(
            reply,
            StatusCode::OK,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        );
    }

    /// The script is over: the reconciler must not ask anything more (waits until it has
    /// finished and let go of its client).
    async fn finished(mut self) -> ApiServer {
        if let Some((request, _)) = self.handle.next_request().await {
            panic!(
                "unexpected request after the script: {} {}; seen before: {:#?}",
                request.method(),
                request.uri(),
                self.seen
            );
        }
        self
    }

    /// Merge a patch into the stored QuarksJob: only `status` for the status subresource,
    /// everything else otherwise. A `resourceVersion` precondition must match (the script
    /// answers conflicts explicitly); the `resourceVersion` goes up by one.
    fn store(&mut self, patch: &Value, status: bool) {
        let mut patch = patch.clone();
        let stored_rv = self.qjob["metadata"]["resourceVersion"].clone();
        if let Some(rv) = patch
            .get_mut("metadata")
            .and_then(|m| m.as_object_mut())
            .and_then(|m| m.remove("resourceVersion"))
        {
            assert_eq!(
                rv, stored_rv,
                "the precondition is the resourceVersion last answered"
            );
        }
        let part = |p: &mut Value, keep_status: bool| {
            if let Some(o) = p.as_object_mut() {
                o.retain(|k, _| (k == "status") == keep_status);
            }
        };
        part(&mut patch, status);
        json_patch::merge(&mut self.qjob, &patch);
        let rv: u64 = stored_rv.as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
        self.qjob["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
    }
}

/// A Job index that listed `jobs`.
fn job_index(jobs: Vec<Value>) -> JobIndex {
    let mut index = JobIndex::default();
    index.apply(Event::Init);
    for job in jobs {
        index.apply(Event::InitApply(
            serde_json::from_value(job).expect("a Job"),
        ));
    }
    index.apply(Event::InitDone);
    index
}

fn answer(reply: SendResponse<Response<Body>>, code: StatusCode, body: &Value) {
    let response = Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("JSON")))
        .expect("response");
    reply.send_response(response);
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": "1"}, "items": items})
}

fn failure(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "reason": reason, "message": message, "code": code})
}

/// `a=b&c=d` with %-escapes decoded.
fn decode_query(query: &str) -> BTreeMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                    out.push(u8::from_str_radix(hex, 16).expect("%-escape"));
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).expect("UTF-8 query")
    };
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// One reconcile of `stored` (the QuarksJob as the watch delivered it and the apiserver keeps
/// it) in a namespace `ns`, with `jobs` in the Job index (as the Job watch delivered them),
/// against `script`. Fails if the script fails, if the reconciler asks
/// anything the script does not expect (also after its end), or if the two do not finish
/// within [`SCENARIO_LIMIT`]. Returns the reconcile's result and the apiserver (its stored
/// QuarksJob, the requests seen).
pub async fn scenario<F, Fut>(
    stored: Value,
    ns: Cache,
    jobs: Vec<Value>,
    script: F,
) -> (Result<Action>, ApiServer)
where
    F: FnOnce(ApiServer) -> Fut + Send + 'static,
    Fut: Future<Output = ApiServer> + Send + 'static,
{
    scenario_having_seen(stored, ns, None, jobs, script).await
}

/// [`scenario`], where this process last read or wrote the QuarksJob at `seen` (a version the
/// cached object is not at), so the cache cannot stand in for a fresh read.
pub async fn scenario_having_seen<F, Fut>(
    stored: Value,
    ns: Cache,
    seen: Option<&str>,
    jobs: Vec<Value>,
    script: F,
) -> (Result<Action>, ApiServer)
where
    F: FnOnce(ApiServer) -> Fut + Send + 'static,
    Fut: Future<Output = ApiServer> + Send + 'static,
{
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let ctx = Arc::new(Context::new(
        Client::new(service, NS),
        Config::new(MONITORED_ID),
        namespaces(ns),
        Arc::new(Mutex::new(job_index(jobs))),
    ));
    if let Some(seen) = seen {
        ctx.versions.saw(UID, Some(seen));
    }
    let watched = Arc::new(Watched::from_value(&stored));
    let server = ApiServer {
        handle,
        qjob: stored,
        seen: Vec::new(),
    };
    let script = tokio::spawn(async move { script(server).await.finished().await });
    // (`reconcile` owns the only context: when it returns, the client is gone, which ends the
    // script's `finished`)
    let both = async { (reconcile(watched, ctx).await, script.await) };
    let (result, script) = tokio::time::timeout(SCENARIO_LIMIT, both)
        .await
        .unwrap_or_else(|_| panic!("the scenario did not finish within {SCENARIO_LIMIT:?}"));
    let server = script.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    (result, server)
}

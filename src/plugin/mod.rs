//! `kubectl qjob`: the kubectl plugin, in the operator's binary (`argv[0]` `kubectl-qjob`, or
//! `quarks-job qjob ...`). See `docs/kubectl-plugin.md`.
//!
//! | module | concern | pure? |
//! |---|---|---|
//! | [`decide`] | may a run be triggered, has it finished, exit codes | pure |
//! | [`render`] | tables, the run summary, log prefixes | pure |
//! | `mod` (this) | kubeconfig, the API calls, waiting, log streaming | I/O |

pub mod decide;
pub mod render;

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use tokio::time::{Instant, sleep};

use crate::core::api::labels::OUTPUT_PERSIST_CONTAINER as OUTPUT_CONTAINER_NAME;
use crate::core::api::{QuarksJob, RunRecord};
use crate::core::job_names::job_name;
use crate::core::lenient::Lenient;
use decide::{EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, FIELD_MANAGER};

/// Where to talk to, as kubectl's flags say.
#[derive(Clone, Debug, Default)]
pub struct Target {
    /// `--kubeconfig` or `$KUBECONFIG` (paths separated as in `$PATH`).
    pub kubeconfig: Option<String>,
    /// `--context`.
    pub context: Option<String>,
    /// `-n/--namespace`.
    pub namespace: Option<String>,
}

/// `-o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// `resource/name` lines.
    Name,
}

/// `run`.
#[derive(Clone, Debug)]
pub struct RunArgs {
    /// The QuarksJob.
    pub name: String,
    /// Wait for the run to finish.
    pub wait: bool,
    /// At most this long.
    pub timeout: Duration,
    /// Follow the logs (implies waiting).
    pub logs: bool,
    /// Also the output-persist container's logs.
    pub all_containers: bool,
    /// `-o`.
    pub output: Option<OutputFormat>,
}

/// `status`.
#[derive(Clone, Debug)]
pub struct StatusArgs {
    /// The QuarksJob.
    pub name: String,
    /// `-o`.
    pub output: Option<OutputFormat>,
}

/// `outputs`.
#[derive(Clone, Debug)]
pub struct OutputsArgs {
    /// The QuarksJob.
    pub name: String,
    /// The run, else the newest finished.
    pub run: Option<i64>,
    /// `-o`.
    pub output: Option<OutputFormat>,
}

/// `list`.
#[derive(Clone, Debug)]
pub struct ListArgs {
    /// `-A`.
    pub all_namespaces: bool,
}

/// What the plugin is asked to do.
#[derive(Clone, Debug)]
pub enum Request {
    /// `run`.
    Run(RunArgs),
    /// `status`.
    Status(StatusArgs),
    /// `outputs`.
    Outputs(OutputsArgs),
    /// `list`.
    List(ListArgs),
}

/// How often `--wait` reads the QuarksJob, and `--logs` looks for new pods and containers.
const POLL: Duration = Duration::from_millis(500);

/// A failure with its exit code and message.
struct Failure(u8, String);

type Outcome = Result<u8, Failure>;

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure(EXIT_FAILED, e.to_string())
}

/// Run `request` against `target`; the exit code says how it went.
pub async fn run(target: &Target, request: &Request) -> ExitCode {
    let outcome = match connect(target).await {
        Ok((client, ns)) => dispatch(client, &ns, request).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(Failure(code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

async fn dispatch(client: Client, ns: &str, request: &Request) -> Outcome {
    match request {
        Request::Run(a) => run_errand(client, ns, a).await,
        Request::Status(a) => status(client, ns, a).await,
        Request::Outputs(a) => outputs(client, ns, a).await,
        Request::List(a) => list(client, ns, a).await,
    }
}

/// The client and namespace as kubectl finds them: `--kubeconfig` (or `$KUBECONFIG`, paths
/// separated by `:` merged), else `~/.kube/config`, else in-cluster; `--context`; `-n`, else the
/// context's namespace, else `default`.
async fn connect(target: &Target) -> Result<(Client, String), Failure> {
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let kubeconfig = match target.kubeconfig.as_deref().filter(|k| !k.is_empty()) {
        Some(paths) => {
            let mut merged: Option<Kubeconfig> = None;
            for path in std::env::split_paths(paths) {
                let next = Kubeconfig::read_from(&path)
                    .map_err(|e| fail(format!("kubeconfig {}: {e}", path.display())))?;
                merged = Some(match merged {
                    None => next,
                    Some(m) => m.merge(next).map_err(fail)?,
                });
            }
            merged
        }
        None => Kubeconfig::read().ok(),
    };
    let config = match kubeconfig {
        Some(kc) => Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(fail)?,
        None if target.context.is_some() => {
            return Err(fail("--context given, but there is no kubeconfig"));
        }
        None => Config::incluster().map_err(|e| {
            fail(format!(
                "no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a cluster: {e}"
            ))
        })?,
    };
    let ns = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(fail)?;
    Ok((client, ns))
}

/// The QuarksJob `ns/name`, read leniently: one the Rust types cannot read fails with where the
/// mistake is, never with the value found there (kube's own decode error quotes it).
async fn get(client: &Client, ns: &str, name: &str) -> Result<QuarksJob, Failure> {
    let api: Api<Lenient<QuarksJob>> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await.map_err(fail)? {
        Some(Lenient::Read(q)) => Ok(Arc::unwrap_or_clone(q)),
        Some(Lenient::Unreadable { error, .. }) => Err(fail(format!(
            "QuarksJob '{ns}/{name}' cannot be read: {error} (fix it with kubectl edit qjob {name} -n {ns})"
        ))),
        None => Err(fail(format!(
            "QuarksJob '{ns}/{name}' not found (kubectl qjob list -n {ns})"
        ))),
    }
}

async fn run_errand(client: Client, ns: &str, a: &RunArgs) -> Outcome {
    let api: Api<QuarksJob> = Api::namespaced(client.clone(), ns);
    let q = get(&client, ns, &a.name).await?;
    let run = decide::next_run(&q).map_err(|why| Failure(EXIT_USAGE, why))?;
    let uid = q.uid().unwrap_or_default();
    let job = job_name(&a.name, &uid, run);
    let rv = q.resource_version().unwrap_or_default();
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api
        .patch(&a.name, &params, &Patch::Merge(decide::trigger_patch(&rv)))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            return Err(fail(format!(
                "QuarksJob '{ns}/{}' changed while it was being triggered; nothing was triggered, try again",
                a.name
            )));
        }
        Err(e) => return Err(fail(e)),
    }
    let wait = a.wait || a.logs;
    if !wait {
        match a.output {
            Some(OutputFormat::Name) => println!("job.batch/{job}"),
            _ => println!("quarksjob {ns}/{} triggered: run {run}, job {job}", a.name),
        }
        return Ok(EXIT_OK);
    }
    if a.output.is_none() {
        eprintln!(
            "quarksjob {ns}/{} triggered: run {run}, job {job}; waiting",
            a.name
        );
    }
    let deadline = Instant::now() + a.timeout;
    let logs = a.logs.then(|| {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        tokio::spawn(follow_logs(pods, job.clone(), a.all_containers))
    });
    let record = loop {
        let q = get(&client, ns, &a.name).await?;
        if let Some(r) = decide::finished(&q.status.unwrap_or_default(), run, &job) {
            break r;
        }
        if Instant::now() >= deadline {
            if let Some(l) = logs {
                l.abort();
            }
            return Err(Failure(
                EXIT_TIMEOUT,
                format!(
                    "run {run} of quarksjob {ns}/{} did not finish within {}s; it goes on: kubectl qjob status {} -n {ns}",
                    a.name,
                    a.timeout.as_secs(),
                    a.name
                ),
            ));
        }
        sleep(POLL).await;
    };
    if let Some(l) = logs {
        // the streams end with their containers; a little time for the last lines
        let _ = tokio::time::timeout(Duration::from_secs(5), l).await;
    }
    print_record(ns, &a.name, &record, a.output)?;
    Ok(decide::exit_code(&record))
}

fn print_record(
    ns: &str,
    name: &str,
    r: &RunRecord,
    output: Option<OutputFormat>,
) -> Result<(), Failure> {
    match output {
        None => print!("{}", render::summary(ns, name, r, Timestamp::now())),
        Some(OutputFormat::Json) => println!("{}", serde_json::to_string_pretty(r).map_err(fail)?),
        Some(OutputFormat::Yaml) => print!("{}", serde_yaml::to_string(r).map_err(fail)?),
        Some(OutputFormat::Name) => println!("job.batch/{}", r.job_name),
    }
    Ok(())
}

/// Stream the logs of the pods of `job` as they appear, each line prefixed with its pod and
/// container; the user's containers only unless `all` (also `output-persist`).
async fn follow_logs(pods: Api<Pod>, job: String, all: bool) {
    let mut started: HashSet<(String, String)> = HashSet::new();
    let mut streams = tokio::task::JoinSet::new();
    let lp = ListParams::default().labels(&format!("job-name={job}"));
    loop {
        if let Ok(list) = pods.list(&lp).await {
            for pod in list.items {
                let pod_name = pod.name_any();
                for (container, ready) in containers(&pod, all) {
                    let key = (pod_name.clone(), container.clone());
                    if ready && started.insert(key) {
                        streams.spawn(stream_log(pods.clone(), pod_name.clone(), container));
                    }
                }
            }
        }
        sleep(POLL).await;
        while streams.try_join_next().is_some() {}
    }
}

/// The containers of `pod` to follow (init containers first) and whether their log can be read
/// (running or terminated).
fn containers(pod: &Pod, all: bool) -> Vec<(String, bool)> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .filter(|c| all || c.name != OUTPUT_CONTAINER_NAME)
        .map(|c| {
            let state = c.state.as_ref();
            let ready = state.is_some_and(|s| s.running.is_some() || s.terminated.is_some());
            (c.name.clone(), ready)
        })
        .collect()
}

async fn stream_log(pods: Api<Pod>, pod: String, container: String) {
    let lp = LogParams {
        container: Some(container.clone()),
        follow: true,
        ..Default::default()
    };
    match pods.log_stream(&pod, &lp).await {
        Ok(stream) => {
            let mut lines = stream.lines();
            while let Some(Ok(line)) = lines.next().await {
                println!("{}", render::log_line(&pod, &container, &line));
            }
        }
        Err(e) => eprintln!(
            "{}",
            render::log_line(&pod, &container, &format!("(no logs: {e})"))
        ),
    }
}

async fn status(client: Client, ns: &str, a: &StatusArgs) -> Outcome {
    let q = get(&client, ns, &a.name).await?;
    let runs = q.status.unwrap_or_default().runs;
    match a.output {
        Some(OutputFormat::Json) => {
            println!("{}", serde_json::to_string_pretty(&runs).map_err(fail)?)
        }
        Some(OutputFormat::Yaml) => print!("{}", serde_yaml::to_string(&runs).map_err(fail)?),
        Some(OutputFormat::Name) => runs
            .iter()
            .for_each(|r| println!("job.batch/{}", r.job_name)),
        None if runs.is_empty() => println!("quarksjob {ns}/{} has no runs yet", a.name),
        None => print!("{}", render::runs_table(&runs, Timestamp::now())),
    }
    Ok(EXIT_OK)
}

async fn outputs(client: Client, ns: &str, a: &OutputsArgs) -> Outcome {
    let q = get(&client, ns, &a.name).await?;
    let runs = q.status.unwrap_or_default().runs;
    let r = decide::pick_run(&runs, a.run)
        .map_err(|e| fail(format!("quarksjob {ns}/{}: {e}", a.name)))?;
    match a.output {
        Some(OutputFormat::Json) => println!(
            "{}",
            serde_json::to_string_pretty(&r.outputs).map_err(fail)?
        ),
        Some(OutputFormat::Yaml) => print!("{}", serde_yaml::to_string(&r.outputs).map_err(fail)?),
        Some(OutputFormat::Name) => r.outputs.iter().for_each(|o| println!("secret/{}", o.name)),
        None => print!("{}", render::outputs_table(ns, r)),
    }
    Ok(EXIT_OK)
}

async fn list(client: Client, ns: &str, a: &ListArgs) -> Outcome {
    let api: Api<Lenient<QuarksJob>> = if a.all_namespaces {
        Api::all(client)
    } else {
        Api::namespaced(client, ns)
    };
    let mut items = api.list(&ListParams::default()).await.map_err(fail)?.items;
    items.sort_by_key(|q| (q.namespace(), q.name_any()));
    for note in render::unreadable_notes(&items) {
        eprintln!("{note}");
    }
    if items.is_empty() {
        if a.all_namespaces {
            eprintln!("No QuarksJobs found.");
        } else {
            eprintln!("No QuarksJobs found in namespace {ns}.");
        }
        return Ok(EXIT_OK);
    }
    print!(
        "{}",
        render::list_table(&items, a.all_namespaces, Timestamp::now())
    );
    Ok(EXIT_OK)
}

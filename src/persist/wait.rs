//! Waiting until every container with output has terminated and written its files: one watch on
//! the pod, plus a look at the output directory every [`DIR_CHECK_INTERVAL`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tracing::{debug, warn};

use super::PersistError;

/// How often the output directory is looked at while the pod watch is quiet.
pub const DIR_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What to do about one container, given its state and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputVerdict {
    /// Still running (or about to be restarted), or its files are not all there yet.
    Waiting,
    /// Terminated and its output is to be written.
    Write {
        /// The exit code.
        exit_code: i32,
    },
    /// Terminated with a failure and `writeOnFailure` is off: nothing to write.
    Skip {
        /// The exit code.
        exit_code: i32,
    },
    /// Terminated, its output is to be written, but files are missing.
    Missing {
        /// The exit code.
        exit_code: i32,
        /// The missing files.
        files: Vec<String>,
    },
}

/// The gate: a container's output is written when it exited 0, or exited non-zero and
/// `writeOnFailure` is set (upstream honoured only exit code 1).
pub fn should_write(exit_code: i32, write_on_failure: bool) -> bool {
    exit_code == 0 || write_on_failure
}

/// Decide about one container. `terminated` is the exit code of `state.terminated`;
/// `restarts_on_failure` is true under `restartPolicy: OnFailure`, where a failed container runs
/// again, so only its successful end is final.
pub fn verdict(
    terminated: Option<i32>,
    restarts_on_failure: bool,
    write_on_failure: bool,
    missing: Vec<String>,
) -> OutputVerdict {
    match terminated {
        None => OutputVerdict::Waiting,
        Some(code) if code != 0 && restarts_on_failure => OutputVerdict::Waiting,
        Some(exit_code) if !should_write(exit_code, write_on_failure) => {
            OutputVerdict::Skip { exit_code }
        }
        Some(exit_code) if missing.is_empty() => OutputVerdict::Write { exit_code },
        Some(exit_code) => OutputVerdict::Missing {
            exit_code,
            files: missing,
        },
    }
}

/// A container whose files are awaited.
#[derive(Debug, Clone)]
pub struct AwaitedContainer {
    /// The container.
    pub container: String,
    /// Its mapped files, relative to its output directory.
    pub files: Vec<String>,
}

/// `<output-dir>/<container>/<file>`
pub fn file_path(dir: &Path, container: &str, file: &str) -> PathBuf {
    dir.join(container).join(file)
}

fn missing_files(dir: &Path, target: &AwaitedContainer) -> Vec<String> {
    target
        .files
        .iter()
        .map(|f| file_path(dir, &target.container, f))
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect()
}

fn exit_code(pod: &Pod, container: &str) -> Option<i32> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let status = statuses.iter().find(|s| s.name == container)?;
    Some(status.state.as_ref()?.terminated.as_ref()?.exit_code)
}

/// Decide about every target given the pod as last seen: `Ok(Some(decisions))` when all are
/// decided, `Ok(None)` while some are waiting, an error for missing files.
fn evaluate(
    pod: &Pod,
    pod_ref: &str,
    targets: &[AwaitedContainer],
    dir: &Path,
    write_on_failure: bool,
) -> Result<Option<BTreeMap<String, OutputVerdict>>, PersistError> {
    let on_failure =
        pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) == Some("OnFailure");
    let mut decided = BTreeMap::new();
    let mut waiting = false;
    for t in targets {
        let terminated = exit_code(pod, &t.container);
        match verdict(
            terminated,
            on_failure,
            write_on_failure,
            missing_files(dir, t),
        ) {
            OutputVerdict::Waiting => waiting = true,
            // a definite failure: report it without waiting for the other containers
            OutputVerdict::Missing { exit_code, files } => {
                return Err(PersistError::MissingOutput {
                    pod: pod_ref.to_string(),
                    container: t.container.clone(),
                    exit_code,
                    files,
                });
            }
            r => {
                decided.insert(t.container.clone(), r);
            }
        }
    }
    if waiting {
        return Ok(None);
    }
    Ok(Some(decided))
}

fn describe_waiting(pod: Option<&Pod>, targets: &[AwaitedContainer], dir: &Path) -> String {
    targets
        .iter()
        .filter_map(|t| {
            let running = pod.is_none_or(|p| exit_code(p, &t.container).is_none());
            let missing = missing_files(dir, t);
            match (running, missing.is_empty()) {
                (true, true) => Some(format!("container '{}' has not terminated", t.container)),
                (true, false) => Some(format!(
                    "container '{}' has not terminated nor written {}",
                    t.container,
                    missing.join(", ")
                )),
                (false, _) => None,
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Wait until every target is decided (written or skipped), at most `timeout` (`None`: no limit).
pub async fn wait_for_output(
    pods: &Api<Pod>,
    pod_name: &str,
    pod_ref: &str,
    targets: &[AwaitedContainer],
    dir: &Path,
    write_on_failure: bool,
    timeout: Option<Duration>,
) -> Result<BTreeMap<String, OutputVerdict>, PersistError> {
    let mut last_seen: Option<Pod> = None;
    let waiting = wait_loop(
        pods,
        pod_name,
        pod_ref,
        targets,
        dir,
        write_on_failure,
        &mut last_seen,
    );
    match timeout {
        None => waiting.await,
        Some(after) => match tokio::time::timeout(after, waiting).await {
            Ok(result) => result,
            Err(_) => Err(PersistError::Timeout {
                pod: pod_ref.to_string(),
                after,
                waiting: describe_waiting(last_seen.as_ref(), targets, dir),
            }),
        },
    }
}

async fn wait_loop(
    pods: &Api<Pod>,
    pod_name: &str,
    pod_ref: &str,
    targets: &[AwaitedContainer],
    dir: &Path,
    write_on_failure: bool,
    last_seen: &mut Option<Pod>,
) -> Result<BTreeMap<String, OutputVerdict>, PersistError> {
    let config = watcher::Config::default().fields(&format!("metadata.name={pod_name}"));
    let mut events = watcher(pods.clone(), config).default_backoff().boxed();
    let mut tick = tokio::time::interval(DIR_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen_since_init = false;
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                    seen_since_init = true;
                    *last_seen = Some(pod);
                }
                Some(Ok(watcher::Event::Init)) => seen_since_init = false,
                Some(Ok(watcher::Event::InitDone)) if !seen_since_init => {
                    return Err(PersistError::PodDeleted { pod: pod_ref.to_string() });
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    debug!("watching pod '{pod_ref}': its containers' states are known");
                }
                Some(Ok(watcher::Event::Delete(_))) => {
                    return Err(PersistError::PodDeleted { pod: pod_ref.to_string() });
                }
                Some(Err(e)) => {
                    if let Some(source) = fatal(&e) {
                        return Err(PersistError::Kube { action: format!("watch pod '{pod_ref}'"), source: Box::new(source) });
                    }
                    warn!("watching pod '{pod_ref}' failed, retrying: {e}");
                }
                None => return Err(PersistError::PodDeleted { pod: pod_ref.to_string() }),
            },
            _ = tick.tick() => {}
        }
        if let Some(pod) = last_seen.as_ref()
            && let Some(decided) = evaluate(pod, pod_ref, targets, dir, write_on_failure)?
        {
            return Ok(decided);
        }
    }
}

/// Watch errors that retrying cannot cure (no permission).
fn fatal(e: &watcher::Error) -> Option<kube::Error> {
    let source = match e {
        watcher::Error::InitialListFailed(s)
        | watcher::Error::WatchStartFailed(s)
        | watcher::Error::WatchFailed(s) => s,
        _ => return None,
    };
    match source {
        kube::Error::Api(status) if status.is_forbidden() || status.code == 401 => {
            Some(kube::Error::Api(status.clone()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn gate() {
        assert!(should_write(0, false));
        assert!(should_write(0, true));
        assert!(!should_write(1, false));
        assert!(should_write(1, true));
        assert!(should_write(2, true), "upstream honoured only exit code 1");
        assert!(should_write(137, true));
    }

    #[test]
    fn running_containers_are_awaited_even_with_their_files() {
        assert_eq!(verdict(None, false, false, vec![]), OutputVerdict::Waiting);
        assert_eq!(
            verdict(None, false, true, files(&["f"])),
            OutputVerdict::Waiting
        );
    }

    #[test]
    fn terminated_containers_are_decided() {
        assert_eq!(
            verdict(Some(0), false, false, vec![]),
            OutputVerdict::Write { exit_code: 0 }
        );
        assert_eq!(
            verdict(Some(0), false, false, files(&["/o/c/f"])),
            OutputVerdict::Missing {
                exit_code: 0,
                files: files(&["/o/c/f"])
            }
        );
        // failed without writeOnFailure: nothing to write, files or not
        assert_eq!(
            verdict(Some(3), false, false, files(&["/o/c/f"])),
            OutputVerdict::Skip { exit_code: 3 }
        );
        assert_eq!(
            verdict(Some(3), false, true, vec![]),
            OutputVerdict::Write { exit_code: 3 }
        );
        assert_eq!(
            verdict(Some(3), false, true, files(&["/o/c/f"])),
            OutputVerdict::Missing {
                exit_code: 3,
                files: files(&["/o/c/f"])
            }
        );
    }

    #[test]
    fn on_failure_restarts_are_awaited() {
        assert_eq!(verdict(Some(1), true, true, vec![]), OutputVerdict::Waiting);
        assert_eq!(
            verdict(Some(0), true, false, vec![]),
            OutputVerdict::Write { exit_code: 0 }
        );
    }

    fn pod(statuses: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "restartPolicy": "Never"},
            "status": {"containerStatuses": statuses},
        }))
        .unwrap()
    }

    #[test]
    fn evaluate_waits_for_all_and_reports_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/out.json"), "{}").unwrap();
        let targets = [
            AwaitedContainer {
                container: "a".into(),
                files: files(&["out.json"]),
            },
            AwaitedContainer {
                container: "b".into(),
                files: files(&["b.json"]),
            },
        ];
        let terminated = |code: i32| serde_json::json!({"terminated": {"exitCode": code}});
        let running = serde_json::json!({"running": {}});
        let p = pod(serde_json::json!([
            {"name": "a", "state": terminated(0), "ready": false, "restartCount": 0, "image": "", "imageID": ""},
            {"name": "b", "state": running, "ready": true, "restartCount": 0, "image": "", "imageID": ""},
        ]));
        assert_eq!(
            evaluate(&p, "n/p", &targets, dir.path(), false).unwrap(),
            None
        );
        assert!(
            describe_waiting(Some(&p), &targets, dir.path())
                .starts_with("container 'b' has not terminated nor")
        );

        // a container that ended without its file fails the run at once, while others still run
        let p = pod(serde_json::json!([
            {"name": "a", "state": running, "ready": true, "restartCount": 0, "image": "", "imageID": ""},
            {"name": "b", "state": terminated(0), "ready": false, "restartCount": 0, "image": "", "imageID": ""},
        ]));
        let err = evaluate(&p, "n/p", &targets, dir.path(), false).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("container 'b' of pod 'n/p' terminated (exit code 0)"),
            "{err}"
        );

        let p = pod(serde_json::json!([
            {"name": "a", "state": terminated(0), "ready": false, "restartCount": 0, "image": "", "imageID": ""},
            {"name": "b", "state": terminated(2), "ready": false, "restartCount": 0, "image": "", "imageID": ""},
        ]));
        let decided = evaluate(&p, "n/p", &targets, dir.path(), false)
            .unwrap()
            .unwrap();
        assert_eq!(decided["a"], OutputVerdict::Write { exit_code: 0 });
        assert_eq!(decided["b"], OutputVerdict::Skip { exit_code: 2 });

        let err = evaluate(&p, "n/p", &targets, dir.path(), true).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("container 'b' of pod 'n/p' terminated (exit code 2) without writing"),
            "{text}"
        );
        assert!(text.contains("b/b.json"), "{text}");
    }
}

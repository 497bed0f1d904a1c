//! A kubelet stand-in. No kubelet runs in the test environment, so pods stay Pending; tests move
//! them on by writing what a kubelet would write through the `pods/status` subresource:
//! containers running or terminated with chosen exit codes, and the pod phase that follows.
//! The real job controller then counts the pod as succeeded or failed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

/// What a container is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Started and still running.
    Running,
    /// Exited with this code.
    Terminated(i32),
}

/// The phase a kubelet reports for these container states (restartPolicy `Never`/`OnFailure`
/// with no restarts left): Running while any container runs, then Succeeded when every one
/// exited 0, else Failed.
pub fn phase_for(states: &[State]) -> &'static str {
    if states.contains(&State::Running) {
        "Running"
    } else if states.iter().all(|s| *s == State::Terminated(0)) {
        "Succeeded"
    } else {
        "Failed"
    }
}

/// Set the state of the named containers of `pod`; containers not named keep the state they
/// have (or become Running if they have none yet). Returns the pod as stored afterwards.
pub async fn set_containers(pods: &Api<Pod>, pod: &str, set: &[(&str, State)]) -> Pod {
    let current = pods.get(pod).await.expect("get pod for the kubelet stand-in");
    let spec = current.spec.clone().unwrap_or_default();
    let previous: BTreeMap<String, State> = current
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|list| {
            list.iter()
                .map(|cs| {
                    let state = match cs.state.as_ref().and_then(|s| s.terminated.as_ref()) {
                        Some(t) => State::Terminated(t.exit_code),
                        None => State::Running,
                    };
                    (cs.name.clone(), state)
                })
                .collect()
        })
        .unwrap_or_default();
    let wanted: BTreeMap<&str, State> = set.iter().copied().collect();
    for name in wanted.keys() {
        assert!(spec.containers.iter().any(|c| c.name == *name), "pod {pod} has no container {name}");
    }
    let now = jiff::Timestamp::now().to_string();
    let mut states = Vec::new();
    let statuses: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| {
            let state = wanted
                .get(c.name.as_str())
                .copied()
                .or_else(|| previous.get(&c.name).copied())
                .unwrap_or(State::Running);
            states.push(state);
            let state_json = match state {
                State::Running => json!({"running": {"startedAt": now}}),
                State::Terminated(code) => json!({"terminated": {
                    "exitCode": code,
                    "reason": if code == 0 { "Completed" } else { "Error" },
                    "startedAt": now,
                    "finishedAt": now,
                }}),
            };
            json!({
                "name": c.name,
                "image": c.image.clone().unwrap_or_default(),
                "imageID": "",
                "ready": state == State::Running,
                "restartCount": 0,
                "started": state == State::Running,
                "state": state_json,
            })
        })
        .collect();
    let phase = phase_for(&states);
    let patch = json!({"status": {
        "phase": phase,
        "hostIP": "127.0.0.1",
        "podIP": "127.0.0.1",
        "startTime": now,
        "containerStatuses": statuses,
    }});
    pods.patch_status(pod, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch pod status")
}

/// Terminate every container of `pod` with the same exit code.
pub async fn finish_pod(pods: &Api<Pod>, pod: &str, exit_code: i32) -> Pod {
    let current = pods.get(pod).await.expect("get pod");
    let names: Vec<String> = current.spec.unwrap_or_default().containers.into_iter().map(|c| c.name).collect();
    let set: Vec<(&str, State)> = names.iter().map(|n| (n.as_str(), State::Terminated(exit_code))).collect();
    set_containers(pods, pod, &set).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases() {
        assert_eq!(phase_for(&[State::Running, State::Terminated(0)]), "Running");
        assert_eq!(phase_for(&[State::Terminated(0), State::Terminated(0)]), "Succeeded");
        assert_eq!(phase_for(&[State::Terminated(0), State::Terminated(3)]), "Failed");
    }
}

//! Playing the kubelet for one pod of a QuarksJob, on the local control plane (no kubelet, no
//! container runtime there). What a kubelet would do, and what the test does instead:
//!
//! * emptyDir volumes → a directory each, in a temp dir;
//! * a container's file system → a directory in which each of its `volumeMounts` is a symlink
//!   to the volume's directory (so `/mnt/quarks/jsonout` of `output-persist` and `/mnt/quarks`
//!   of `jsonout` are the same directory, as the mutated pod spec says);
//! * user containers → not run: the test writes the files their commands would write, through
//!   their mounts, and marks them terminated with exit code 0 (`pods/status`);
//! * the injected `output-persist` container → run for real: the same binary (the image's
//!   entrypoint) with the container's `args` and `env` (downward-API fields resolved from the
//!   pod), `OUTPUT_DIR` pointing at its `/mnt/quarks` (the flag's default, documented), and a
//!   kubeconfig holding the token of the Secret the pod mounts at the service-account path
//!   (the token it would get in the pod); its exit code goes into the pod status.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::Client;
use kube::api::Api;
use quarks_job::webhook::mutate::{OUTPUT_DIR, TOKEN_MOUNT_PATH};
use quarks_job::webhook::validate::OUTPUT_PERSIST_CONTAINER;

use crate::support::kubelet::{self, State};
use crate::support::{eventually_some, process, shared};

/// A file a container's command writes.
pub struct Write<'a> {
    pub container: &'a str,
    /// Its path inside the container, e.g. `/mnt/quarks/output.json`.
    pub path: &'a str,
    pub content: &'a str,
}

/// The volume a container sees at `path`, and the path inside that volume (longest mount
/// path that contains it).
pub fn volume_at(container: &Container, path: &str) -> Option<(String, PathBuf)> {
    container
        .volume_mounts
        .iter()
        .flatten()
        .filter_map(|m| {
            let rest = Path::new(path).strip_prefix(&m.mount_path).ok()?;
            Some((m.mount_path.len(), m.name.clone(), rest.to_path_buf()))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, volume, rest)| (volume, rest))
}

/// The container's environment with downward-API fields resolved; other sources are not
/// something the stand-in can provide.
pub fn resolve_env(container: &Container, pod: &Pod) -> Result<Vec<(String, String)>, String> {
    container
        .env
        .iter()
        .flatten()
        .map(|e| {
            if let Some(v) = &e.value {
                return Ok((e.name.clone(), v.clone()));
            }
            let field = e
                .value_from
                .as_ref()
                .and_then(|f| f.field_ref.as_ref())
                .map(|f| f.field_path.as_str());
            let value = match field {
                Some("metadata.name") => pod.metadata.name.clone(),
                Some("metadata.namespace") => pod.metadata.namespace.clone(),
                _ => None,
            };
            value.map(|v| (e.name.clone(), v)).ok_or_else(|| {
                format!(
                    "env {} of {}: unsupported source {e:?}",
                    e.name, container.name
                )
            })
        })
        .collect()
}

/// The Secret mounted at the service-account token path of `container`.
pub fn token_secret(spec: &PodSpec, container: &Container) -> Option<String> {
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == TOKEN_MOUNT_PATH)?;
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)?;
    volume.secret.as_ref()?.secret_name.clone()
}

/// Run pod `name` of namespace `ns` to success: write `writes`, terminate the user containers
/// with 0, run `output-persist` (if the webhook injected one) and record its exit code.
/// Returns persist-output's stdout and stderr (empty without it).
pub async fn run_pod(client: &Client, ns: &str, name: &str, writes: &[Write<'_>]) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = pods.get(name).await.expect("get pod");
    let spec = pod.spec.clone().expect("pod spec");
    let dir = tempfile::tempdir().unwrap();
    let volumes = dir.path().join("volumes");
    for v in spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.empty_dir.is_some())
    {
        std::fs::create_dir_all(volumes.join(&v.name)).unwrap();
    }

    // output-persist starts with the other containers and waits for them
    let persist = spec
        .containers
        .iter()
        .find(|c| c.name == OUTPUT_PERSIST_CONTAINER);
    let running = match persist {
        Some(c) => Some(start_persist_output(client, &pod, c, dir.path(), &volumes).await),
        None => None,
    };

    for w in writes {
        let container = spec
            .containers
            .iter()
            .find(|c| c.name == w.container)
            .unwrap_or_else(|| panic!("pod {name} has no container {}", w.container));
        let (volume, rest) = volume_at(container, w.path).unwrap_or_else(|| {
            panic!("{} has no volume at {}: {container:?}", w.container, w.path)
        });
        let file = volumes.join(volume).join(rest);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, w.content).unwrap();
    }
    let users: Vec<(&str, State)> = spec
        .containers
        .iter()
        .filter(|c| c.name != OUTPUT_PERSIST_CONTAINER)
        .map(|c| (c.name.as_str(), State::Terminated(0)))
        .collect();
    kubelet::set_containers(&pods, name, &users).await;

    let Some((mut child, log)) = running else {
        return String::new();
    };
    let status = tokio::time::timeout(std::time::Duration::from_secs(120), child.wait())
        .await
        .unwrap_or_else(|_| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("persist-output in pod {ns}/{name} still runs after 120 s:\n{log}")
        })
        .expect("wait for persist-output");
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let code = status.code().unwrap_or(-1);
    kubelet::set_containers(
        &pods,
        name,
        &[(OUTPUT_PERSIST_CONTAINER, State::Terminated(code))],
    )
    .await;
    assert!(
        status.success(),
        "persist-output in pod {ns}/{name}: {status}\n{output}"
    );
    output
}

async fn start_persist_output(
    client: &Client,
    pod: &Pod,
    container: &Container,
    dir: &Path,
    volumes: &Path,
) -> (tokio::process::Child, PathBuf) {
    let spec = pod.spec.as_ref().unwrap();
    let ns = pod.metadata.namespace.clone().unwrap();
    assert!(
        container.command.is_none(),
        "output-persist relies on the image's entrypoint: {container:?}"
    );
    // its file system: each emptyDir mount a symlink to the volume
    let root = dir.join("output-persist");
    for m in container.volume_mounts.iter().flatten() {
        let target = volumes.join(&m.name);
        if target.is_dir() {
            let link = root.join(m.mount_path.trim_start_matches('/'));
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&target, &link).unwrap();
        }
    }
    // the token it would get: the token controller fills the Secret the pod mounts
    let secret = token_secret(spec, container).expect("output-persist mounts a token Secret");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let token = eventually_some(
        std::time::Duration::from_secs(60),
        &format!("token in Secret {ns}/{secret}"),
        || async {
            let s = secrets.get_opt(&secret).await.ok()??;
            String::from_utf8(s.data?.get("token")?.0.clone()).ok()
        },
    )
    .await;
    let kubeconfig = shared().kubeconfig_for_token(&format!("{ns}-{secret}"), &token);

    let mut cmd = process::quarks_job();
    cmd.args(container.args.iter().flatten())
        .envs(resolve_env(container, pod).unwrap_or_else(|e| panic!("{e}")))
        .env("OUTPUT_DIR", root.join(OUTPUT_DIR.trim_start_matches('/')))
        .env("KUBECONFIG", &kubeconfig);
    let log = dir.join("output-persist.log");
    let file = std::fs::File::create(&log).unwrap();
    cmd.stdin(std::process::Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    (cmd.spawn().expect("start persist-output"), log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p-1", "namespace": "ns"},
            "spec": {
                "volumes": [{"name": "output-a", "emptyDir": {}},
                            {"name": "tok", "secret": {"secretName": "sa-qjob-token"}}],
                "containers": [
                    {"name": "a", "volumeMounts": [{"name": "output-a", "mountPath": "/mnt/quarks"}]},
                    {"name": "output-persist", "args": ["persist-output"],
                     "env": [{"name": "NAMESPACE", "value": "ns"},
                             {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                     "volumeMounts": [{"name": "tok", "mountPath": TOKEN_MOUNT_PATH},
                                      {"name": "output-a", "mountPath": "/mnt/quarks/a"}]},
                ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn paths_map_to_the_volume_of_the_longest_mount() {
        let p = pod();
        let c = &p.spec.as_ref().unwrap().containers;
        assert_eq!(
            volume_at(&c[0], "/mnt/quarks/output.json"),
            Some(("output-a".into(), PathBuf::from("output.json")))
        );
        assert_eq!(
            volume_at(&c[1], "/mnt/quarks/a/output.json"),
            Some(("output-a".into(), PathBuf::from("output.json")))
        );
        assert_eq!(volume_at(&c[0], "/mnt/quarksy/x"), None);
        assert_eq!(volume_at(&c[0], "/etc/x"), None);
    }

    #[test]
    fn env_resolves_downward_api_fields_and_refuses_the_rest() {
        let mut p = pod();
        let c = p.spec.as_ref().unwrap().containers[1].clone();
        assert_eq!(
            resolve_env(&c, &p).unwrap(),
            vec![
                ("NAMESPACE".to_string(), "ns".to_string()),
                ("POD_NAME".to_string(), "p-1".to_string())
            ]
        );
        let mut c2 = c.clone();
        c2.env.as_mut().unwrap()[1]
            .value_from
            .as_mut()
            .unwrap()
            .field_ref = None;
        assert!(resolve_env(&c2, &p).unwrap_err().contains("POD_NAME"));
        p.metadata.name = None;
        assert!(resolve_env(&c, &p).is_err());
    }

    #[test]
    fn the_token_is_the_secret_mounted_at_the_service_account_path() {
        let p = pod();
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(
            token_secret(spec, &spec.containers[1]).as_deref(),
            Some("sa-qjob-token")
        );
        assert_eq!(token_secret(spec, &spec.containers[0]), None);
    }
}

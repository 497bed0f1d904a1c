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
//!   (the token it would get in the pod); its exit code goes into the pod status. When the test
//!   runs as root it also applies the container's security context as a kubelet would: its
//!   `runAsUser`/`runAsGroup`, and `readOnlyRootFilesystem` as a private mount namespace in which
//!   `/` is read-only. emptyDir volumes are world-writable directories (as the kubelet makes
//!   them) and the files "written by the user containers" get the default umask, so this proves
//!   that persist-output, as the non-root user the webhook sets, reads what other containers
//!   wrote and writes nothing to its file system.

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
    // reachable by the non-root user output-persist runs as; emptyDirs writable by anyone
    set_mode(dir.path(), 0o755);
    let volumes = dir.path().join("volumes");
    for v in spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.empty_dir.is_some())
    {
        std::fs::create_dir_all(volumes.join(&v.name)).unwrap();
        set_mode(&volumes.join(&v.name), 0o777);
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
    apply_security_context(&mut cmd, container);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    (cmd.spawn().expect("start persist-output"), log)
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The container's user, group and read-only root file system, applied to the process as a
/// kubelet would (only possible as root; otherwise it runs as this non-root test user).
fn apply_security_context(cmd: &mut std::process::Command, container: &Container) {
    use std::os::unix::process::CommandExt;
    let sc = container.security_context.clone().unwrap_or_default();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("--- not root: output-persist runs as this user, on a writable file system");
        return;
    }
    let user = sc.run_as_user.map(|u| u as libc::uid_t);
    let group = sc.run_as_group.or(sc.run_as_user).map(|g| g as libc::gid_t);
    let read_only = sc.read_only_root_filesystem == Some(true);
    eprintln!(
        "--- output-persist runs as user {user:?}, group {group:?}, read-only root: {read_only}"
    );
    let root = c"/";
    // SAFETY: the closure runs in the child between fork and exec and only makes system calls
    // (no allocation, no locks).
    unsafe {
        cmd.pre_exec(move || {
            let check = |r: libc::c_int| {
                if r == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            if read_only {
                check(libc::unshare(libc::CLONE_NEWNS))?;
                let private = (libc::MS_REC | libc::MS_PRIVATE) as libc::c_ulong;
                check(libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    private,
                    std::ptr::null(),
                ))?;
                let ro = (libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY) as libc::c_ulong;
                check(libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    ro,
                    std::ptr::null(),
                ))?;
            }
            if let Some(g) = group {
                check(libc::setgroups(0, std::ptr::null()))?;
                check(libc::setgid(g))?;
            }
            if let Some(u) = user {
                check(libc::setuid(u))?;
            }
            Ok(())
        });
    }
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

//! Pod Security "restricted": the mutated pod of a compliant template must stay compliant.
//!
//! Pod Security admission exists from Kubernetes 1.23 (the test control plane is 1.20), so
//! `violations` checks a pod against the profile's documented rules (Pod Security Standards,
//! "Baseline" and "Restricted", policy version `latest`), for every container: init, regular
//! and ephemeral.
use super::*;
use k8s_openapi::api::core::v1::{Capabilities, PodSecurityContext, SecurityContext};

/// Sysctls the baseline profile allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
];

/// What the rules look at in a container: where it is, its security context, its host ports.
type Seen<'a> = (String, Option<&'a SecurityContext>, Vec<i32>);

fn seen<'a>(
    list: &str,
    name: &str,
    sc: Option<&'a SecurityContext>,
    ports: Option<&Vec<k8s_openapi::api::core::v1::ContainerPort>>,
) -> Seen<'a> {
    let host_ports = ports.into_iter().flatten().filter_map(|p| p.host_port);
    (format!("{list}[{name}]"), sc, host_ports.collect())
}

/// Every container of the pod: init, regular and ephemeral.
fn containers(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<Seen<'_>> {
    let regular = spec.containers.iter().map(|c| {
        seen(
            "containers",
            &c.name,
            c.security_context.as_ref(),
            c.ports.as_ref(),
        )
    });
    let init = spec.init_containers.iter().flatten().map(|c| {
        seen(
            "initContainers",
            &c.name,
            c.security_context.as_ref(),
            c.ports.as_ref(),
        )
    });
    let ephemeral = spec.ephemeral_containers.iter().flatten().map(|c| {
        seen(
            "ephemeralContainers",
            &c.name,
            c.security_context.as_ref(),
            c.ports.as_ref(),
        )
    });
    regular.chain(init).chain(ephemeral).collect()
}

/// The rules of the `restricted` profile this pod breaks (empty: compliant).
pub(super) fn violations(pod: &Pod) -> Vec<String> {
    let mut out = Vec::new();
    let Some(spec) = pod.spec.as_ref() else {
        return out;
    };
    let default_psc = PodSecurityContext::default();
    let psc = spec.security_context.as_ref().unwrap_or(&default_psc);
    // baseline: host namespaces, host paths, sysctls, Windows host process, SELinux, AppArmor
    for (field, set) in [
        ("hostNetwork", spec.host_network),
        ("hostPID", spec.host_pid),
        ("hostIPC", spec.host_ipc),
    ] {
        if set == Some(true) {
            out.push(format!("spec.{field} must not be true"));
        }
    }
    if psc
        .windows_options
        .as_ref()
        .and_then(|w| w.host_process)
        .unwrap_or(false)
    {
        out.push("spec.securityContext.windowsOptions.hostProcess must not be true".into());
    }
    for s in psc.sysctls.iter().flatten() {
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            out.push(format!("sysctl {} is not allowed", s.name));
        }
    }
    let selinux_ok = |o: &k8s_openapi::api::core::v1::SELinuxOptions| {
        o.user.is_none()
            && o.role.is_none()
            && o.type_.as_deref().is_none_or(|t| {
                ["", "container_t", "container_init_t", "container_kvm_t"].contains(&t)
            })
    };
    if psc
        .se_linux_options
        .as_ref()
        .is_some_and(|o| !selinux_ok(o))
    {
        out.push("spec.securityContext.seLinuxOptions is not allowed".into());
    }
    for (key, value) in pod.metadata.annotations.iter().flatten() {
        if key.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && value != "runtime/default"
            && !value.starts_with("localhost/")
        {
            out.push(format!("AppArmor profile {value} is not allowed"));
        }
    }
    // restricted: volume types
    for v in spec.volumes.iter().flatten() {
        let allowed = v.config_map.is_some()
            || v.csi.is_some()
            || v.downward_api.is_some()
            || v.empty_dir.is_some()
            || v.ephemeral.is_some()
            || v.persistent_volume_claim.is_some()
            || v.projected.is_some()
            || v.secret.is_some();
        if !allowed {
            out.push(format!(
                "volume {} has a type restricted pods may not use",
                v.name
            ));
        }
    }
    let pod_seccomp = psc.seccomp_profile.as_ref().map(|p| p.type_.as_str());
    if pod_seccomp == Some("Unconfined") {
        out.push("spec.securityContext.seccompProfile must not be Unconfined".into());
    }
    if psc.run_as_user == Some(0) {
        out.push("spec.securityContext.runAsUser must not be 0".into());
    }
    for (at, sc, host_ports) in containers(spec) {
        let default_sc = SecurityContext::default();
        let sc = sc.unwrap_or(&default_sc);
        if host_ports.iter().any(|p| *p != 0) {
            out.push(format!("{at}: hostPort is not allowed"));
        }
        if sc.privileged == Some(true) {
            out.push(format!("{at}: privileged must not be true"));
        }
        if sc.proc_mount.as_deref().is_some_and(|m| m != "Default") {
            out.push(format!("{at}: procMount must be Default"));
        }
        if sc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true) {
            out.push(format!("{at}: windowsOptions.hostProcess must not be true"));
        }
        if sc.se_linux_options.as_ref().is_some_and(|o| !selinux_ok(o)) {
            out.push(format!("{at}: seLinuxOptions is not allowed"));
        }
        if sc.allow_privilege_escalation != Some(false) {
            out.push(format!("{at}: allowPrivilegeEscalation must be false"));
        }
        // runAsNonRoot: true on the container, or on the pod and not false on the container
        let non_root = sc.run_as_non_root.or(psc.run_as_non_root);
        if non_root != Some(true) {
            out.push(format!("{at}: runAsNonRoot must be true"));
        }
        if sc.run_as_user == Some(0) {
            out.push(format!("{at}: runAsUser must not be 0"));
        }
        let seccomp = sc
            .seccomp_profile
            .as_ref()
            .map(|p| p.type_.as_str())
            .or(pod_seccomp);
        if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
            out.push(format!(
                "{at}: seccompProfile must be RuntimeDefault or Localhost"
            ));
        }
        let default_caps = Capabilities::default();
        let caps = sc.capabilities.as_ref().unwrap_or(&default_caps);
        if !caps.drop.iter().flatten().any(|c| c == "ALL") {
            out.push(format!("{at}: capabilities must drop ALL"));
        }
        for add in caps.add.iter().flatten() {
            if add != "NET_BIND_SERVICE" {
                out.push(format!("{at}: capability {add} must not be added"));
            }
        }
    }
    out
}

/// A template that passes `restricted` by itself: settings on the pod and on its container.
fn compliant() -> Pod {
    pod(json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [{"name": "init", "image": "busybox",
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
        "containers": [{"name": "c1", "image": "busybox",
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
    }))
}

#[test]
fn the_check_finds_each_rule_broken() {
    assert_eq!(violations(&compliant()), Vec::<String>::new());
    let broken = |change: Value| {
        let mut value = serde_json::to_value(compliant()).unwrap();
        json_patch::merge(&mut value, &change);
        violations(&serde_json::from_value(value).unwrap())
    };
    let sc = |sc: Value| json!({"spec": {"containers": [{"name": "c1", "image": "busybox", "securityContext": sc}]}});
    let cases = [
        (
            sc(json!({"capabilities": {"drop": ["ALL"]}})),
            "containers[c1]: allowPrivilegeEscalation must be false",
        ),
        (
            sc(json!({"allowPrivilegeEscalation": false})),
            "containers[c1]: capabilities must drop ALL",
        ),
        (
            sc(
                json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}),
            ),
            "containers[c1]: capability NET_ADMIN must not be added",
        ),
        (
            sc(
                json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": false}),
            ),
            "containers[c1]: runAsNonRoot must be true",
        ),
        (
            sc(
                json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "runAsUser": 0}),
            ),
            "containers[c1]: runAsUser must not be 0",
        ),
        (
            sc(
                json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
                      "seccompProfile": {"type": "Unconfined"}}),
            ),
            "containers[c1]: seccompProfile must be RuntimeDefault or Localhost",
        ),
        (
            sc(
                json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "privileged": true}),
            ),
            "containers[c1]: privileged must not be true",
        ),
        (
            json!({"spec": {"securityContext": {"runAsNonRoot": null}}}),
            "containers[c1]: runAsNonRoot must be true",
        ),
        (
            json!({"spec": {"securityContext": {"seccompProfile": null}}}),
            "containers[c1]: seccompProfile must be RuntimeDefault or Localhost",
        ),
        (
            json!({"spec": {"hostNetwork": true}}),
            "spec.hostNetwork must not be true",
        ),
        (
            json!({"spec": {"volumes": [{"name": "host", "hostPath": {"path": "/"}}]}}),
            "volume host has a type restricted pods may not use",
        ),
    ];
    for (change, expected) in cases {
        let found = broken(change.clone());
        assert!(found.iter().any(|v| v == expected), "{change}: {found:?}");
    }
}

#[test]
fn the_mutated_pod_of_a_compliant_template_is_restricted() {
    let q = qjob(true);
    let out = apply(&compliant(), &ctx(Some(&q), &[]));
    assert!(
        out.spec
            .as_ref()
            .unwrap()
            .containers
            .iter()
            .any(|c| c.name == OUTPUT_PERSIST_CONTAINER),
        "output-persist added"
    );
    assert_eq!(violations(&out), Vec::<String>::new());
}

#[test]
fn the_output_container_is_restricted_whatever_the_pod_says() {
    // nothing on the pod, and a pod-level root user: the output container's own settings count
    let q = qjob(true);
    let template = pod(json!({
        "securityContext": {"runAsUser": 0},
        "containers": [{"name": "c1", "image": "busybox"}]
    }));
    let out = apply(&template, &ctx(Some(&q), &[]));
    let persist: Vec<String> = violations(&out)
        .into_iter()
        .filter(|v| v.contains(OUTPUT_PERSIST_CONTAINER))
        .collect();
    assert_eq!(persist, Vec::<String>::new());
    let sc = container(&out, OUTPUT_PERSIST_CONTAINER)
        .security_context
        .clone()
        .expect("a security context");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.run_as_user, Some(OUTPUT_PERSIST_USER));
    assert_eq!(sc.run_as_group, Some(OUTPUT_PERSIST_USER));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
}

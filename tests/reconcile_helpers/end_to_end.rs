//! One errand with output, run end to end by an operator binary (shipped-RBAC and Helm tests).

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use quarks_job::core::api::Strategy;
use serde_json::json;

use super::{World, created_run};
use crate::support::WAIT;
use crate::support::{self, eventually};

/// A `now` errand with output in `w`'s namespace, run by an operator binary whose log is
/// `log()`: its Job is created, the job controller's pod is mutated by the operator's webhook
/// (an `output-persist` container), the kubelet stand-in finishes the pod, the Job is cleaned
/// up, the QuarksJob completes and the kept pod is re-owned to it. Returns the mutated pod.
pub async fn errand_with_output(w: &World, log: impl Fn() -> String) -> Pod {
    w.create(json!({
        "metadata": {"name": "errand"},
        "spec": {
            "trigger": {"strategy": "now"},
            "output": {"outputMap": {"jsonout": {"output.json": {"name": "foo-json"}}}},
            "template": {"spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "jsonout", "image": "busybox",
                    "command": ["/bin/sh", "-c", "echo '{\"foo\": \"1\"}' > /mnt/quarks/output.json"]}]
            }}}}
        }
    }))
    .await;
    let q = w
        .wait_qjob("errand", "Job created", |q| created_run(q) == 1)
        .await;
    assert_eq!(q.strategy(), Some(Strategy::Manual), "{}", log());
    let job = w.wait_jobs("errand", 1).await.remove(0).name_any();

    // the pod the job controller created was mutated by the operator's webhook
    let pod = w.pod_of(&job).await;
    let spec = pod.spec.clone().unwrap();
    let persist = spec
        .containers
        .iter()
        .find(|c| c.name == "output-persist")
        .unwrap_or_else(|| panic!("pod not mutated: {spec:?}\n{}", log()));
    assert_eq!(
        persist.args.as_deref(),
        Some(&["persist-output".to_string()][..])
    );

    // the kubelet stand-in finishes the pod: the Job succeeds and is cleaned up
    support::kubelet::finish_pod(&w.pods(), &pod.name_any(), 0).await;
    w.wait_job_gone(&job).await;
    let q = w
        .wait_qjob("errand", "completed", |q| {
            q.status.as_ref().is_some_and(|s| s.completed)
        })
        .await;
    assert_eq!(q.strategy(), Some(Strategy::Manual));
    // the kept pod is re-owned to the QuarksJob (a patch the RBAC must allow)
    eventually(WAIT, "pod re-owned to the QuarksJob", || async {
        w.pods()
            .get(&pod.name_any())
            .await
            .unwrap()
            .owner_references()
            .iter()
            .any(|o| o.kind == "QuarksJob" && o.name == "errand")
    })
    .await;
    pod
}

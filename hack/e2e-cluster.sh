#!/usr/bin/env bash
# `make e2e-cluster`: the end-to-end suite on real pods, on the local node (hack/cluster.sh).
#
#   1. the node (started here, and stopped at the end, unless it was already running);
#   2. the operator image without Docker (release binary, the Dockerfile's layout) pushed into
#      the node's registry;
#   3. for DEPLOY in kustomize helm: `make deploy` (as a user installs), a ready Deployment, the
#      suite (`make e2e-suite`: the examples on real pods, then the leader hand-over), every
#      container of every pod checked to have run in containerd, the install lifecycle (`make
#      e2e-lifecycle`: upgrade to a second tag of the image while QuarksJobs are created every
#      second, a run, uninstall, nothing left that admission sends pods to, re-install, a run),
#      `make undeploy`.
#
# Environment: IMAGE_ORG, IMAGE_REPOSITORY, IMAGE_TAG, MONITORED_ID, IMAGE_PROFILE (the Makefile
# passes them);
# E2E_DEPLOYS (default "kustomize helm").
set -euo pipefail
cd "$(dirname "$0")/.."
export MONITORED_ID=${MONITORED_ID:-default}
T0=$SECONDS
step() { printf '\n==> e2e-cluster [%4ds] %s\n' $((SECONDS - T0)) "$*"; }

started=
stop_node() {
  local rc=$?
  if [ $rc != 0 ] && [ -n "${KC:-}" ]; then
    step "failed: the node's conditions and the cluster's recent warnings"
    kubectl --kubeconfig "$KC" get nodes -o 'jsonpath={range .items[*].status.conditions[*]}{.type}={.status} {.message}{"\n"}{end}' || true
    kubectl --kubeconfig "$KC" get events -A --field-selector type=Warning --sort-by=.lastTimestamp | tail -20 || true
  fi
  if [ -n "$started" ]; then
    step "node down"
    bash hack/cluster.sh down || rc=1
  fi
  exit $rc
}
trap stop_node EXIT
if ! bash hack/cluster.sh kubeconfig >/dev/null 2>&1; then
  step "node up"
  started=1
  bash hack/cluster.sh up
fi
KC=$(bash hack/cluster.sh kubeconfig)

step "operator image (make cluster-load)"
make --no-print-directory cluster-load

# The upgrade's second tag: the same binary, imaged again under another tag (hack/image.py)
UPGRADE_TAG=${IMAGE_TAG}-upgrade
step "the upgrade's image tag ${UPGRADE_TAG}"
python3 hack/image.py operator --binary "target/${IMAGE_PROFILE:-release}/quarks-job" \
  --name "${IMAGE_ORG}/${IMAGE_REPOSITORY}:${UPGRADE_TAG}" --out target/images/quarks-job-upgrade.tar
bash hack/cluster.sh load target/images/quarks-job-upgrade.tar "${IMAGE_ORG}/${IMAGE_REPOSITORY}:${UPGRADE_TAG}"

# Always: the node pulls the image just pushed, also when an older one has the same tag
vars=(DEPLOY_KUBECONFIG="$KC" PULL_POLICY=Always MONITORED_ID="$MONITORED_ID" UPGRADE_TAG="$UPGRADE_TAG")

# Every container of every pod in the cluster ran in containerd (nothing plays the kubelet).
check_containerd() {
  local pod ids id bad=0
  while read -r pod ids; do
    for id in $ids; do
      [[ "$id" == containerd://* ]] || { echo "pod $pod: container $id not run by containerd" >&2; bad=1; }
    done
  done < <(kubectl --kubeconfig "$KC" get pods -A -o \
    'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{range .status.containerStatuses[*]} {.containerID}{end}{"\n"}{end}')
  [ $bad = 0 ]
}

for deploy in ${E2E_DEPLOYS:-kustomize helm}; do
  step "$deploy: make deploy DEPLOY=$deploy"
  s=$SECONDS
  make --no-print-directory deploy DEPLOY="$deploy" "${vars[@]}"
  kubectl --kubeconfig "$KC" get deployment -n quarks-job quarks-job
  ready=$(kubectl --kubeconfig "$KC" get deployment -n quarks-job quarks-job -o 'jsonpath={.status.readyReplicas}/{.spec.replicas}')
  echo "$deploy install: Deployment quarks-job ready ($ready replicas) $((SECONDS - s)) s after make deploy started"
  kubectl --kubeconfig "$KC" get pods -n quarks-job -o wide

  step "$deploy: the end-to-end suite (make e2e-suite)"
  s=$SECONDS
  make --no-print-directory e2e-suite "${vars[@]}"
  echo "$deploy: suite passed in $((SECONDS - s)) s"

  step "$deploy: every container of every pod ran in containerd"
  check_containerd
  kubectl --kubeconfig "$KC" get pods -A -o \
    'custom-columns=NAMESPACE:.metadata.namespace,POD:.metadata.name,PHASE:.status.phase,CONTAINER-IDS:.status.containerStatuses[*].containerID'

  step "$deploy: the install lifecycle (make e2e-lifecycle)"
  s=$SECONDS
  make --no-print-directory e2e-lifecycle DEPLOY="$deploy" "${vars[@]}"
  echo "$deploy: lifecycle passed in $((SECONDS - s)) s"

  step "$deploy: make undeploy"
  make --no-print-directory undeploy DEPLOY="$deploy" "${vars[@]}"
done
step "passed: ${E2E_DEPLOYS:-kustomize helm} installs, suite, leader hand-over and install lifecycle on real pods"

#!/usr/bin/env bash
# `make run` when no cluster answers: the local node (hack/cluster.sh, real pods), the operator
# binary just built running inside it, and a first QuarksJob (docs/examples/qjob_output.yaml in
# the namespace `staging`) whose pod runs and whose Secret appears. Ctrl-C stops the operator,
# then the node (if this script started it).
#
#   hack/run-node.sh BINARY [OPERATOR FLAGS..]
#
# The operator runs as a process inside the node's network namespace (where the apiserver can
# call its webhook), with the admin kubeconfig; the output containers it injects run the image
# of the same binary, pushed into the node's registry (IMAGE_ORG, IMAGE_REPOSITORY, IMAGE_TAG).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 BINARY [OPERATOR FLAGS..]" >&2; exit 2; }
bin=$(realpath "$1")
shift
log() { echo "make run: $*" >&2; }

started=
op=
stop() {
  trap - INT TERM EXIT
  if [ -n "$op" ] && kill -0 "$op" 2>/dev/null; then
    log "stopping the operator"
    kill -TERM "$op" 2>/dev/null || true
    wait "$op" 2>/dev/null || true
  fi
  if [ -n "$started" ]; then
    log "stopping the local node"
    bash hack/cluster.sh down
  fi
}
trap stop EXIT
trap 'exit 130' INT TERM

kc=$(bash hack/cluster.sh kubeconfig 2>/dev/null) || {
  log "starting the local node (the first time builds kubelet, kube-scheduler, kube-proxy: ~6 min)"
  started=1
  bash hack/cluster.sh up
  kc=$(bash hack/cluster.sh kubeconfig)
}
k() { kubectl --kubeconfig "$kc" "$@"; }

# the image of this very binary, for the injected output-persist containers
make --no-print-directory cluster-load IMAGE_PROFILE=debug >/dev/null

# the node's own address: the apiserver advertises it, the webhook listens on it
node_ip=$(k get endpoints kubernetes -o 'jsonpath={.subsets[0].addresses[0].ip}')
bash hack/cluster.sh exec env KUBECONFIG="$kc" "$bin" \
  --webhook-server-host "$node_ip" --docker-image-pull-policy Always \
  --docker-image-org "${IMAGE_ORG:-cfcontainerization}" \
  --docker-image-repository "${IMAGE_REPOSITORY:-quarks-job}" \
  ${IMAGE_TAG:+--docker-image-tag "$IMAGE_TAG"} "$@" &
op=$!

log "waiting for the operator's CRD and webhooks"
monitored=default
for a in "$@"; do case "$a" in --monitored-id=*) monitored=${a#*=} ;; esac; done
for i in $(seq 120); do
  kill -0 "$op" 2>/dev/null || { log "the operator exited"; exit 1; }
  k get mutatingwebhookconfiguration "quarks-job-$monitored" >/dev/null 2>&1 &&
    k wait --for condition=established --timeout=1s crd/quarksjobs.quarks.cloudfoundry.org >/dev/null 2>&1 && break
  sleep 1
done

log "a first QuarksJob: docs/examples/qjob_output.yaml in namespace staging"
k apply -f manifests/persist-output-clusterrole.yaml -f manifests/staging-namespace.yaml >/dev/null
for i in $(seq 60); do k get serviceaccount -n staging default >/dev/null 2>&1 && break; sleep 1; done
k delete secret -n staging foo-json --ignore-not-found >/dev/null
k delete quarksjob -n staging myfoo --ignore-not-found >/dev/null
k apply -n staging -f docs/examples/qjob_output.yaml
for i in $(seq 120); do k get secret -n staging foo-json >/dev/null 2>&1 && break; sleep 1; done
# output-persist exits once the Secret is written
for i in $(seq 30); do
  [ "$(k get pods -n staging -l quarks.cloudfoundry.org/qjob-name=myfoo -o 'jsonpath={.items[*].status.phase}')" = Succeeded ] && break
  sleep 1
done
k get pods -n staging -o \
  'custom-columns=POD:.metadata.name,PHASE:.status.phase,CONTAINERS:.status.containerStatuses[*].name,EXIT:.status.containerStatuses[*].state.terminated.exitCode,IDS:.status.containerStatuses[*].containerID' >&2
if k get secret -n staging foo-json >/dev/null 2>&1; then
  log "Secret staging/foo-json:"
  k get secret -n staging foo-json -o go-template='{{range $k, $v := .data}}  {{$k}}={{$v | base64decode}}{{"\n"}}{{end}}' >&2
else
  log "no Secret staging/foo-json after 120 s: kubectl describe quarksjob -n staging myfoo"
fi
log "the operator runs on the local node; in another shell:"
echo "export KUBECONFIG=$kc"
log "Ctrl-C stops the operator${started:+ and the node}."
wait "$op"

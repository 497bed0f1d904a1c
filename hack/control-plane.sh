#!/usr/bin/env bash
# Provides the binaries of a real Kubernetes control plane for tests:
# etcd, kube-apiserver, kube-controller-manager (and kubectl).
#
#   hack/control-plane.sh path     print the directory holding the binaries (building if needed)
#   hack/control-plane.sh ensure   same, quiet on success except for the directory
#
# Order of preference:
#   1. $KUBEBUILDER_ASSETS (the envtest convention): used as is, nothing is built.
#   2. the cache: ${QUARKS_TESTENV_CACHE:-$HOME/.cache/quarks-job/control-plane-1.20.2}.
#   3. a build from Debian's `kubernetes` source package (1.20.2) with Debian's Go 1.19, which
#      takes about 6-7 minutes on 2 cores the first time; needs root (apt-get) on Debian/Ubuntu.
set -euo pipefail

CACHE="${QUARKS_TESTENV_CACHE:-${HOME}/.cache/quarks-job/control-plane-1.20.2}"
BINS=(etcd kube-apiserver kube-controller-manager)

log() { echo "control-plane: $*" >&2; }

have_all() {
  local dir=$1 b
  for b in "${BINS[@]}"; do [ -x "$dir/$b" ] || return 1; done
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

add_deb_src() {
  # Add deb-src entries mirroring the machine's own Debian `deb` entries (no host is hard-coded).
  local out=/etc/apt/sources.list.d/quarks-job-deb-src.sources
  [ -f "$out" ] && return 0
  if grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/*.sources 2>/dev/null \
     || grep -qs '^deb-src ' /etc/apt/sources.list 2>/dev/null; then
    return 0
  fi
  local tmp; tmp=$(mktemp)
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    grep -qi 'debian-archive-keyring' "$f" || continue
    sed -e 's/^Types:.*/Types: deb-src/' "$f" >>"$tmp"; echo >>"$tmp"
  done
  if [ -f /etc/apt/sources.list ]; then
    grep -E '^deb [^ ]+ [a-z-]+ main' /etc/apt/sources.list | sed -e 's/^deb /deb-src /' \
      >"${tmp}.list" || true
    [ -s "${tmp}.list" ] && as_root cp "${tmp}.list" /etc/apt/sources.list.d/quarks-job-deb-src.list
  fi
  [ -s "$tmp" ] && as_root cp "$tmp" "$out"
  rm -f "$tmp" "${tmp}.list"
}

build() {
  command -v apt-get >/dev/null || { log "no KUBEBUILDER_ASSETS and no apt-get: point KUBEBUILDER_ASSETS at etcd, kube-apiserver and kube-controller-manager binaries"; exit 1; }
  log "building kube-apiserver and kube-controller-manager 1.20.2 from Debian's source package (one time, ~7 min)"
  add_deb_src
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends dpkg-dev golang-1.19-go golang-1.19-src rsync \
    etcd-server golang-github-modern-go-reflect2-dev patch make >/dev/null
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  local work=$WORK
  (cd "$work" && apt-get source -qq --download-only kubernetes >/dev/null && dpkg-source -x --skip-patches ./kubernetes_*.dsc src >/dev/null)
  local src="$work/src"
  # Debian's patches (quilt series), applied with plain patch.
  if [ -f "$src/debian/patches/series" ]; then
    while read -r p _; do
      case "$p" in ''|'#'*) continue ;; esac
      patch -d "$src" -p1 -s --forward <"$src/debian/patches/$p" || log "patch $p did not apply cleanly, continuing"
    done <"$src/debian/patches/series"
  fi
  # reflect2 1.0.1 segfaults under Go 1.19: use Debian's packaged version.
  local r2=/usr/share/gocode/src/github.com/modern-go/reflect2
  [ -d "$r2" ] || { log "missing $r2"; exit 1; }
  rm -rf "$src/vendor/github.com/modern-go/reflect2"
  mkdir -p "$src/vendor/github.com/modern-go/reflect2"
  cp -r "$r2"/. "$src/vendor/github.com/modern-go/reflect2/"
  export GOROOT=/usr/lib/go-1.19 PATH=/usr/lib/go-1.19/bin:$PATH GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local
  export CGO_ENABLED=0 KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean
  (cd "$src" && make WHAT=cmd/kube-apiserver >/dev/null && make WHAT=cmd/kube-controller-manager >/dev/null)
  mkdir -p "$CACHE.tmp"
  cp "$src"/_output/local/bin/linux/*/kube-apiserver "$src"/_output/local/bin/linux/*/kube-controller-manager "$CACHE.tmp/"
  cp "$(command -v etcd || echo /usr/bin/etcd)" "$CACHE.tmp/etcd"
  rm -rf "$CACHE"; mv "$CACHE.tmp" "$CACHE"
  log "cached in $CACHE"
}

ensure_etcd_kubectl() {
  # etcd may be cached but kubectl must be on PATH for the tests.
  command -v kubectl >/dev/null && return 0
  command -v apt-get >/dev/null || { log "kubectl not found on PATH"; exit 1; }
  as_root apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
}

main() {
  local cmd=${1:-path}
  if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
    have_all "$KUBEBUILDER_ASSETS" || { log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks one of: ${BINS[*]}"; exit 1; }
    echo "$KUBEBUILDER_ASSETS"; return
  fi
  case "$cmd" in
    path|ensure) have_all "$CACHE" || build; ensure_etcd_kubectl; echo "$CACHE" ;;
    *) log "usage: $0 [path|ensure]"; exit 2 ;;
  esac
}
main "$@"

#!/usr/bin/env bash
# Provides the Kubernetes 1.20.2 binaries the tests and the local node run:
#
#   hack/control-plane.sh path     the control plane (etcd, kube-apiserver, kube-controller-manager):
#                                  print the directory holding them, building them if needed
#   hack/control-plane.sh ensure   same
#   hack/control-plane.sh node     the node (kubelet, kube-scheduler, kube-proxy, and a static
#                                  `pause` for the sandbox image): print their
#                                  directory, building them if needed
#   hack/control-plane.sh all      both, in ONE source extraction and Go build when both are
#                                  missing (a fresh machine: ~10 min instead of ~7 + ~6); prints
#                                  the control plane directory, then the node directory
#
# Order of preference, for each set:
#   1. an override, used as is (nothing is built): $KUBEBUILDER_ASSETS (the envtest convention)
#      for the control plane, $QUARKS_NODE_ASSETS for the node (all four);
#   2. the cache: ${QUARKS_TESTENV_CACHE:-$HOME/.cache/quarks-job/control-plane-1.20.2} and
#      ${QUARKS_NODE_CACHE:-$HOME/.cache/quarks-job/node-1.20.2};
#   3. a build from Debian's `kubernetes` source package (1.20.2) with Debian's Go 1.19 (2 cores:
#      control plane ~7 min, node ~6 min, both together ~10 min); needs root (apt-get) on
#      Debian/Ubuntu.
# kubectl is installed from Debian's kubernetes-client if it is not on PATH.
set -euo pipefail

CP_CACHE="${QUARKS_TESTENV_CACHE:-${HOME}/.cache/quarks-job/control-plane-1.20.2}"
NODE_CACHE="${QUARKS_NODE_CACHE:-${HOME}/.cache/quarks-job/node-1.20.2}"
CP_BINS=(etcd kube-apiserver kube-controller-manager)
# pause: the sandbox (pod infrastructure) container's program, from the same source, static
NODE_BINS=(kubelet kube-scheduler kube-proxy pause)

log() { echo "control-plane: $*" >&2; }

have_all() {
  local dir=$1 b
  shift
  for b in "$@"; do [ -x "$dir/$b" ] || return 1; done
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

# build CP NODE: build the control plane (CP=1) and/or the node binaries (NODE=1) from one
# extraction of the source package, with one `make`, and move each set into its cache.
build() {
  local want_cp=$1 want_node=$2 what=() b
  [ "$want_cp" = 1 ] && what+=(cmd/kube-apiserver cmd/kube-controller-manager)
  [ "$want_node" = 1 ] && what+=(cmd/kubelet cmd/kube-scheduler cmd/kube-proxy)
  command -v apt-get >/dev/null || {
    log "nothing to build with (no apt-get): set KUBEBUILDER_ASSETS (etcd, kube-apiserver, kube-controller-manager) and QUARKS_NODE_ASSETS (${NODE_BINS[*]})"
    exit 1
  }
  log "building ${what[*]#cmd/} 1.20.2 from Debian's source package (one time, see hack/control-plane.sh for durations)"
  add_deb_src
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  # gcc: the kubelet is built with cgo (as upstream does), the other binaries statically
  as_root apt-get install -y -qq --no-install-recommends dpkg-dev golang-1.19-go golang-1.19-src rsync \
    etcd-server golang-github-modern-go-reflect2-dev patch make gcc libc6-dev >/dev/null
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  local work=$WORK start=$SECONDS
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
  # hack/lib/golang.sh links apiserver, controller-manager, scheduler and proxy statically
  # (CGO_ENABLED=0) and the kubelet with cgo.
  export GOROOT=/usr/lib/go-1.19 PATH=/usr/lib/go-1.19/bin:$PATH GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local
  export KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean HOME="$work/home"
  mkdir -p "$HOME"
  (cd "$src" && make WHAT="${what[*]}" >/dev/null)
  local out=("$src"/_output/local/bin/linux/*)
  if [ "$want_cp" = 1 ]; then
    mkdir -p "$CP_CACHE.tmp"
    cp "${out[0]}/kube-apiserver" "${out[0]}/kube-controller-manager" "$CP_CACHE.tmp/"
    cp "$(command -v etcd || echo /usr/bin/etcd)" "$CP_CACHE.tmp/etcd"
    rm -rf "$CP_CACHE"; mv "$CP_CACHE.tmp" "$CP_CACHE"
    log "cached in $CP_CACHE"
  fi
  if [ "$want_node" = 1 ]; then
    mkdir -p "$NODE_CACHE.tmp"
    for b in kubelet kube-scheduler kube-proxy; do cp "${out[0]}/$b" "$NODE_CACHE.tmp/"; done
    gcc -Os -Wall -Werror -static -DVERSION=v3.2-quarks -o "$NODE_CACHE.tmp/pause" "$src/build/pause/linux/pause.c"
    strip "$NODE_CACHE.tmp/pause"
    rm -rf "$NODE_CACHE"; mv "$NODE_CACHE.tmp" "$NODE_CACHE"
    log "cached in $NODE_CACHE"
  fi
  log "built ${what[*]#cmd/} in $((SECONDS - start)) s"
}

ensure_kubectl() {
  command -v kubectl >/dev/null && return 0
  command -v apt-get >/dev/null || { log "kubectl not found on PATH"; exit 1; }
  as_root apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
}

# dir_of VAR CACHE BIN..: the directory of a set of binaries: the override variable VAR if set
# (checked), else the cache; `missing` when neither holds them yet.
dir_of() {
  local var=$1 cache=$2
  shift 2
  if [ -n "${!var:-}" ]; then
    have_all "${!var}" "$@" || { log "$var=${!var} lacks one of: $*"; exit 1; }
    echo "${!var}"
  elif have_all "$cache" "$@"; then echo "$cache"
  else echo missing
  fi
}
cp_dir() { dir_of KUBEBUILDER_ASSETS "$CP_CACHE" "${CP_BINS[@]}"; }
node_dir() { dir_of QUARKS_NODE_ASSETS "$NODE_CACHE" "${NODE_BINS[@]}"; }

main() {
  local cmd=${1:-path} cp node need_cp=0 need_node=0
  case "$cmd" in
    path|ensure) need_cp=1 ;;
    node) need_node=1 ;;
    all) need_cp=1; need_node=1 ;;
    *) log "usage: $0 [path|ensure|node|all]"; exit 2 ;;
  esac
  cp=$(cp_dir); node=$(node_dir)
  [ "$need_cp" = 1 ] && [ "$cp" = missing ] || need_cp=0
  [ "$need_node" = 1 ] && [ "$node" = missing ] || need_node=0
  if [ "$need_cp$need_node" != 00 ]; then
    (build "$need_cp" "$need_node")
    cp=$(cp_dir); node=$(node_dir)
  fi
  ensure_kubectl
  case "$cmd" in
    path|ensure) echo "$cp" ;;
    node) echo "$node" ;;
    all) echo "$cp"; echo "$node" ;;
  esac
}
main "$@"

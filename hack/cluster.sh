#!/usr/bin/env bash
# A one-node Kubernetes 1.20.2 cluster on this machine, with real pods (`make cluster-up`,
# `make cluster-down`, `make cluster-status`; docs/e2e.md).
#
#   hack/cluster.sh up                 start it (bounded waits) and print `export KUBECONFIG=...`
#   hack/cluster.sh down               stop it: no process, mount, netns, iptables rule or cgroup left
#   hack/cluster.sh status             what runs, the node's state, the KUBECONFIG line; exit 1 if down
#   hack/cluster.sh kubeconfig         print the kubeconfig path (exit 1 if the node is down)
#   hack/cluster.sh load ARCHIVE REF   push a docker-archive image into the node's registry as REF
#                                      (e.g. cfcontainerization/quarks-job:0.1.0)
#   hack/cluster.sh exec CMD [ARG..]   run CMD inside the node's network and mount namespaces
#
# What runs, all inside ONE network namespace that `up` creates (and a private mount namespace):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd (CRI, runc, cgroupfs,
# CNI bridge/host-local), kubelet, kube-proxy (iptables mode) and a registry (Debian's
# docker-registry) that is containerd's mirror for docker.io and registry.k8s.io and serves the
# busybox, pause and operator images. The namespace has no link to the host's network: pods get
# no route to anything outside it, and the host's interfaces, routes and iptables stay untouched.
# One way in: 127.0.0.1:$QUARKS_NODE_PORT on the host is forwarded (socat, through a Unix socket)
# to the apiserver, which listens on the same port inside, so one kubeconfig serves host shells,
# `make deploy`, the tests, and processes started with `exec`.
#
# Environment: QUARKS_NODE_DIR (state, default /var/tmp/quarks-job-node), QUARKS_NODE_PORT
# (default 16443), QUARKS_NODE_TIMEOUT (seconds each start-up step may take, default 120), and
# the binaries' overrides of hack/control-plane.sh (KUBEBUILDER_ASSETS, QUARKS_NODE_ASSETS).
# Needs root and Debian/Ubuntu (the packages are installed here when missing).
set -euo pipefail
shopt -s globstar nullglob
ROOT=$(cd "$(dirname "$0")/.." && pwd)

N=${QUARKS_NODE_DIR:-/var/tmp/quarks-job-node}
PORT=${QUARKS_NODE_PORT:-16443}
TIMEOUT=${QUARKS_NODE_TIMEOUT:-120}
NETNS=quarks-node
NODE_NAME=quarks-node
# addresses exist only inside the namespace: the node (on lo, this kernel may lack the dummy
# driver), the pods' bridge, the Services
NODE_IP=10.201.0.1
POD_CIDR=10.202.0.0/24
POD_GW=10.202.0.1
SERVICE_CIDR=10.203.0.0/24
SERVICE_IP=10.203.0.1
REGISTRY=127.0.0.1:5000
# the kubelet's cgroups (cgroupfs driver) live under this parent in every hierarchy
CGROUP_ROOT=quarks-node
KUBECONFIG_FILE=$N/kubeconfig
SOCK=$N/containerd/containerd.sock
# in start order
COMPONENTS=(etcd apiserver forward-in forward-host kcm scheduler registry containerd kubelet kube-proxy)

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }
T0=$SECONDS
step() { log "$(printf '[%3ds]' $((SECONDS - T0))) $*"; }

holder() { cat "$N/holder.pid" 2>/dev/null; }
# a recorded pid counts only while it is still one of ours (its command line names $N)
alive() { local p; p=$(cat "$N/run/$1.pid" 2>/dev/null) && { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -qF -- "$N/"; }
# the holder counts only while it is in the node's network namespace
running() {
  local h; h=$(holder) && [ -e "/run/netns/$NETNS" ] &&
    [ "$(readlink "/proc/$h/ns/net" 2>/dev/null)" = "net:[$(stat -L -c %i "/run/netns/$NETNS")]" ]
}
stop() { alive "$1" && kill "$(cat "$N/run/$1.pid")" 2>/dev/null || true; }
# run in the node's network and mount namespaces (nsenter, not `ip netns exec`, which remounts
# /sys and so hides the cgroup hierarchies; nsenter -m resets the working directory)
in_node() { nsenter -t "$(holder)" -m -n -- "$@"; }
kc() { kubectl --kubeconfig "$KUBECONFIG_FILE" --request-timeout=10s "$@"; }

# wait_for WHAT CMD..: poll CMD until it succeeds, for at most $TIMEOUT seconds; fail at once,
# with its log's end, when a component started so far has exited
wait_for() {
  local what=$1 deadline=$((SECONDS + TIMEOUT)) pid c
  shift
  until "$@" >/dev/null 2>&1; do
    for pid in "$N"/run/*.pid; do
      c=$(basename "$pid" .pid)
      alive "$c" || die "$c exited while waiting for $what; the end of $N/logs/$c.log:
$(tail -n 15 "$N/logs/$c.log" 2>/dev/null)"
    done
    [ $SECONDS -lt $deadline ] || die "timed out after ${TIMEOUT}s waiting for $what (logs: $N/logs/)"
    sleep 0.3
  done
}

# start NAME CMD..: start a component inside the node, in its own session (Ctrl-C in the
# terminal does not reach it), log in logs/NAME.log, pid in run/NAME.pid
start() {
  local name=$1
  shift
  setsid nsenter -t "$(holder)" -m -n -- "$@" </dev/null >"$N/logs/$name.log" 2>&1 &
  local pid=$!
  echo $pid >"$N/run/$name.pid"
  # until the child has exec'd, its command line is still this script's, and `alive` would take
  # it for a component that exited (seen once, on a loaded machine, for the registry)
  for _ in $(seq 50); do
    alive "$name" || ! kill -0 "$pid" 2>/dev/null && break
    sleep 0.1
  done
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

packages() {
  local need=() cmd pkg
  for cmd in containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
    iptables:iptables conntrack:conntrack docker-registry:docker-registry skopeo:skopeo \
    /bin/busybox:busybox-static socat:socat openssl:openssl python3:python3 nsenter:util-linux \
    ip:iproute2; do
    pkg=${cmd#*:}; cmd=${cmd%%:*}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "$cmd" ] || need+=("$pkg")
  done
  [ ${#need[@]} = 0 ] && return 0
  command -v apt-get >/dev/null || die "missing ${need[*]} (no apt-get to install them)"
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

pki() {
  local p=$N/pki
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$p/ca.key" -out "$p/ca.crt" -days 30 \
    -subj /CN=quarks-node-ca 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$p/apiserver.key" -out "$p/apiserver.csr" \
    -subj /CN=kube-apiserver 2>/dev/null
  printf 'subjectAltName=IP:%s,IP:%s,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n' \
    "$NODE_IP" "$SERVICE_IP" >"$p/san.ext"
  openssl x509 -req -in "$p/apiserver.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
    -out "$p/apiserver.crt" -days 30 -extfile "$p/san.ext" 2>/dev/null
  # the apiserver's client certificate for the kubelet's API (logs, exec), which accepts no one
  # else: pods reach the node's address, and must not reach the kubelet anonymously
  openssl req -newkey rsa:2048 -nodes -keyout "$p/kubelet-client.key" -out "$p/kubelet-client.csr" \
    -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
  openssl x509 -req -in "$p/kubelet-client.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
    -out "$p/kubelet-client.crt" -days 30 2>/dev/null
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  local token; token=$(openssl rand -hex 16)
  echo "$token,admin,admin,system:masters" >"$p/tokens.csv"
  # 127.0.0.1:$PORT is the forwarded port on the host and the apiserver itself inside the node
  cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: quarks-node
  cluster: {server: "https://127.0.0.1:$PORT", certificate-authority: "$p/ca.crt"}
users:
- name: admin
  user: {token: "$token"}
contexts:
- name: quarks-node
  context: {cluster: quarks-node, user: admin}
current-context: quarks-node
EOF
  chmod 600 "$KUBECONFIG_FILE"
}

configs() {
  cat >"$N/containerd/config.toml" <<EOF
version = 2
root = "$N/containerd/root"
state = "$N/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = ""
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.2"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  # machines without CAP_SYS_RESOURCE cannot lower oom_score_adj (the sandbox asks for -998):
  # runc then fails every sandbox with "can't get final child's PID from pipe: EOF"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
        Root = "$N/containerd/runc"
  # every image comes from the registry inside the node, never from outside
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["http://$REGISTRY"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]
    endpoint = ["http://$REGISTRY"]
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$N/cni/net.d"
    max_conf_num = 1
EOF
  cat >"$N/cni/net.d/10-quarks-node.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "quarks-node",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$N/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GW"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  cat >"$N/registry.yml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $N/registry}}
http: {addr: $REGISTRY}
EOF
  # no DNS server in the node: pods fall back to this (the Default DNS policy, with a warning)
  echo "nameserver $NODE_IP" >"$N/resolv.conf"
  # sysctls the kubelet sets host-wide: inside the node's mount namespace it finds files that
  # already hold its values, so the host keeps its own
  local f
  for f in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
    kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
    echo "${f#*=}" >"$N/sysctl/${f%%=*}"
  done
}

# The network namespace, and a holder process whose private mount namespace hides the paths the
# kubelet and CNI hard-code (/run, /var/lib, /var/log) and the sysctls above from the host.
namespaces() {
  ip netns add "$NETNS"
  ip -n "$NETNS" link set lo up
  ip -n "$NETNS" addr add "$NODE_IP/32" dev lo
  ip netns exec "$NETNS" sysctl -qw net.ipv4.ip_forward=1
  # the apiserver dials Service ClusterIPs (the operator's webhook): the routing decision comes
  # before kube-proxy's DNAT, so the Service range needs a route
  ip -n "$NETNS" route add "$SERVICE_CIDR" dev lo
  local binds="" f
  for f in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops \
    kernel/keys/root_maxkeys kernel/keys/root_maxbytes; do
    binds+="mount -n --bind $N/sysctl/$f /proc/sys/$f; "
  done
  setsid nsenter --net="/run/netns/$NETNS" unshare --mount --propagation slave sh -c "
    set -e
    mount -n -t tmpfs -o mode=755 quarks-node-run /run
    mkdir -p /run/lock
    mount -n --bind $N/varlog /var/log
    mount -n --bind $N/varlib /var/lib
    mount -n --bind $N/resolv.conf /etc/resolv.conf
    $binds
    echo \$\$ > $N/holder.pid
    exec sleep infinity" </dev/null >"$N/logs/holder.log" 2>&1 &
  wait_for "the namespace holder" test -s "$N/holder.pid"
}

images() {
  local bins=$1 img=$N/images
  python3 "$ROOT/hack/image.py" busybox --name docker.io/library/busybox:latest --out "$img/busybox.tar" >/dev/null
  python3 "$ROOT/hack/image.py" pause --binary "$bins/pause" --name registry.k8s.io/pause:3.2 --out "$img/pause.tar" >/dev/null
  push "$img/busybox.tar" docker.io/library/busybox:latest
  push "$img/pause.tar" registry.k8s.io/pause:3.2
}

# push ARCHIVE REF: under the path a mirror of docker.io or registry.k8s.io is asked for
# (busybox → library/busybox:latest, registry.k8s.io/pause:3.2 → pause:3.2)
push() {
  local archive=$1 path=$2
  case "$path" in
    registry.k8s.io/*) path=${path#registry.k8s.io/} ;;
    *) path=${path#docker.io/}; [[ "$path" == */* ]] || path=library/$path ;;
  esac
  [[ "${path##*/}" == *:* ]] || path=$path:latest
  in_node skopeo copy -q --dest-tls-verify=false "docker-archive:$archive" "docker://$REGISTRY/$path"
}

node_ready() {
  [ "$(kc get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

up() {
  if running; then
    log "already up (hack/cluster.sh status)"
    echo "export KUBECONFIG=$KUBECONFIG_FILE"
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "needs root (network namespace, mounts, cgroups)"
  if [ -e "$N" ] || ip netns list | grep -qw "$NETNS"; then
    log "state of a stopped node is left: cleaning it up first"
    down
  fi
  local h
  for h in $(hierarchies); do
    [ -d "$h/$CGROUP_ROOT" ] && die "cgroup $h/$CGROUP_ROOT exists: another node runs? (hack/cluster.sh down)"
  done
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && die "127.0.0.1:$PORT is in use: set QUARKS_NODE_PORT"
  packages
  local dirs cp nb
  dirs=$(bash "$ROOT/hack/control-plane.sh" all)
  cp=${dirs%%$'\n'*}; nb=${dirs##*$'\n'}
  step "binaries: $cp, $nb"

  mkdir -p -m 700 "$N"/pki
  mkdir -p "$N"/{logs,run,images,containerd,cni/net.d,cni/ipam,varlog,varlib,registry,kubelet-flex} \
    "$N"/sysctl/{vm,kernel/keys}
  pki
  configs
  host_kube_rules >"$N/host-kube-rules"
  for h in $(hierarchies); do mkdir "$h/$CGROUP_ROOT"; done
  namespaces
  step "network namespace $NETNS, holder $(holder)"

  start etcd "$cp/etcd" --name quarks-node --data-dir "$N/etcd" --logger=zap --log-level=warn \
    --listen-client-urls http://127.0.0.1:32379 --advertise-client-urls http://127.0.0.1:32379 \
    --listen-peer-urls http://127.0.0.1:32380 --initial-advertise-peer-urls http://127.0.0.1:32380 \
    --initial-cluster quarks-node=http://127.0.0.1:32380
  start apiserver "$cp/kube-apiserver" --etcd-servers=http://127.0.0.1:32379 \
    --bind-address=0.0.0.0 --advertise-address="$NODE_IP" --secure-port="$PORT" --insecure-port=0 \
    --cert-dir="$N/pki" --tls-cert-file="$N/pki/apiserver.crt" --tls-private-key-file="$N/pki/apiserver.key" \
    --client-ca-file="$N/pki/ca.crt" --token-auth-file="$N/pki/tokens.csv" --authorization-mode=Node,RBAC \
    --service-account-key-file="$N/pki/sa.pub" --service-account-signing-key-file="$N/pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range="$SERVICE_CIDR" \
    --allow-privileged=true --kubelet-preferred-address-types=InternalIP,Hostname \
    --kubelet-client-certificate="$N/pki/kubelet-client.crt" --kubelet-client-key="$N/pki/kubelet-client.key"
  wait_for "the apiserver" in_node kubectl --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz
  # the way in: host 127.0.0.1:PORT → Unix socket → apiserver inside
  start forward-in socat "UNIX-LISTEN:$N/apiserver.sock,fork,mode=600" "TCP:127.0.0.1:$PORT"
  wait_for "the forwarder's socket" test -S "$N/apiserver.sock"
  setsid socat "TCP-LISTEN:$PORT,bind=127.0.0.1,reuseaddr,fork" "UNIX-CONNECT:$N/apiserver.sock" \
    </dev/null >"$N/logs/forward-host.log" 2>&1 &
  echo $! >"$N/run/forward-host.pid"
  wait_for "the apiserver through 127.0.0.1:$PORT" kc get --raw /readyz
  step "etcd, kube-apiserver ready, forwarded to 127.0.0.1:$PORT"
  start kcm "$cp/kube-controller-manager" --kubeconfig="$KUBECONFIG_FILE" --bind-address=127.0.0.1 \
    --secure-port=0 --port=0 --leader-elect=false --controllers='*' --flex-volume-plugin-dir="$N/kubelet-flex" \
    --service-account-private-key-file="$N/pki/sa.key" --root-ca-file="$N/pki/ca.crt" \
    --cluster-signing-cert-file="$N/pki/ca.crt" --cluster-signing-key-file="$N/pki/ca.key"
  start scheduler "$nb/kube-scheduler" --kubeconfig="$KUBECONFIG_FILE" \
    --authentication-kubeconfig="$KUBECONFIG_FILE" --authorization-kubeconfig="$KUBECONFIG_FILE" \
    --bind-address=127.0.0.1 --secure-port=10259 --port=0 --leader-elect=false

  start registry docker-registry serve "$N/registry.yml"
  wait_for "the registry" in_node bash -c "exec 3<>/dev/tcp/${REGISTRY/://}"
  images "$nb"
  step "registry with busybox and pause"

  start containerd containerd --config "$N/containerd/config.toml"
  wait_for "containerd" in_node ctr -a "$SOCK" version
  # a short-lived node on a disk others use: disk pressure only below 1 GiB free (the defaults are
  # shares of the whole disk: a big, mostly full one taints the node at once), no image GC
  start kubelet "$nb/kubelet" --kubeconfig="$KUBECONFIG_FILE" \
    --eviction-hard='memory.available<100Mi,nodefs.available<1Gi,imagefs.available<1Gi,nodefs.inodesFree<5%' \
    --image-gc-high-threshold=100 --image-gc-low-threshold=99 \
    --container-runtime=remote --container-runtime-endpoint="unix://$SOCK" --containerd="$SOCK" \
    --runtime-request-timeout=5m --cgroup-driver=cgroupfs --cgroup-root="/$CGROUP_ROOT" --fail-swap-on=false \
    --root-dir=/var/lib/kubelet --volume-plugin-dir="$N/kubelet-flex" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --register-node=true \
    --resolv-conf="$N/resolv.conf" --cluster-domain=cluster.local \
    --address="$NODE_IP" --port=10250 --read-only-port=0 --healthz-bind-address=127.0.0.1 --healthz-port=10248 \
    --anonymous-auth=false --client-ca-file="$N/pki/ca.crt" --authorization-mode=AlwaysAllow --v=1
  wait_for "node $NODE_NAME Ready" node_ready
  step "containerd, kubelet: node $NODE_NAME Ready"
  # conntrack-max-per-core=0 leaves the host-wide nf_conntrack_max alone
  start kube-proxy "$nb/kube-proxy" --kubeconfig="$KUBECONFIG_FILE" --proxy-mode=iptables \
    --hostname-override="$NODE_NAME" --bind-address="$NODE_IP" --cluster-cidr="$POD_CIDR" \
    --conntrack-max-per-core=0 --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256
  wait_for "kube-proxy's rules for default/kubernetes" in_node sh -c \
    'iptables -t nat -S KUBE-SERVICES | grep -q "default/kubernetes:https"'
  step "kube-proxy (iptables)"
  # all traffic stays on this machine: the namespace has lo, the pods' bridge, and no way out
  [ -z "$(in_node ip route show default)" ] || die "the node's network namespace has a default route"

  # pods can only be created once their namespace's ServiceAccount has its token
  wait_for "the default ServiceAccount's token" sh -c \
    "kubectl --kubeconfig '$KUBECONFIG_FILE' get serviceaccount default -o jsonpath='{.secrets[0].name}' | grep -q ."
  step "up: node $NODE_NAME Ready, apiserver at https://127.0.0.1:$PORT (state and logs in $N)"
  echo "export KUBECONFIG=$KUBECONFIG_FILE"
}

# The cgroup hierarchies (v1: one per controller, symlinked aliases skipped; v2: the one tree).
hierarchies() {
  local h
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo /sys/fs/cgroup; return; fi
  for h in /sys/fs/cgroup/*/; do [ -L "${h%/}" ] || echo "${h%/}"; done
}
# The kubelet's cgroups (all under $CGROUP_ROOT), deepest first.
node_cgroups() { local h; for h in $(hierarchies); do [ -d "$h/$CGROUP_ROOT" ] && find "$h/$CGROUP_ROOT" -depth -type d; done; }
# Processes in them: the containers.
container_pids() { local c; for c in $(node_cgroups); do cat "$c/cgroup.procs"; done 2>/dev/null | sort -u; }

down() {
  local c p i
  if running; then
    # nothing restarts containers any more, then the containers, then the rest
    for c in kube-proxy kubelet scheduler kcm; do stop "$c"; done
    for p in $(container_pids); do kill -9 "$p" 2>/dev/null || true; done
    for c in containerd registry forward-in apiserver etcd; do stop "$c"; done
    for _ in $(seq 50); do
      alive containerd || alive apiserver || alive etcd || break
      sleep 0.1
    done
    # whatever is left in the node's mount namespace (containerd's shims, stragglers)
    local h mns; h=$(holder); mns=$(readlink "/proc/$h/ns/mnt")
    for p in /proc/[0-9]*; do
      [ "${p#/proc/}" = "$h" ] && continue
      [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$mns" ] && kill -9 "${p#/proc/}" 2>/dev/null
    done
    # the last process of the mount namespace: its mounts (tmpfs /run, overlays, volumes) go with it
    kill "$h"
    for _ in $(seq 50); do kill -0 "$h" 2>/dev/null || break; sleep 0.1; done
  fi
  # the forwarder on the host side is outside the node's namespaces
  stop forward-host
  # the kubelet's cgroups, once their last process is gone (the kernel refuses before)
  for _ in $(seq 50); do
    for p in $(container_pids); do kill -9 "$p" 2>/dev/null || true; done
    for c in $(node_cgroups); do rmdir "$c" 2>/dev/null || true; done
    [ -z "$(node_cgroups)" ] && break
    sleep 0.1
  done
  ip netns del "$NETNS" 2>/dev/null || true
  leftovers
  rm -rf "$N"
  log "down: no process, mount, network namespace or cgroup of the node left"
}

# How many KUBE-* chains and rules the host's own iptables has (the node must add none).
host_kube_rules() { { iptables-save 2>/dev/null || true; } | grep -c -- 'KUBE-' || true; }

# Fail naming anything of the node still present.
leftovers() {
  local left=() p
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = $$ ] && continue
    [ "${p#/proc/}" = "$BASHPID" ] && continue
    { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$N/" &&
      left+=("process ${p#/proc/}: $({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | cut -c1-100)")
  done
  grep -qF -- " $N/" /proc/self/mountinfo && left+=("mounts under $N")
  ip netns list | grep -qw "$NETNS" && left+=("network namespace $NETNS")
  for p in $(node_cgroups); do left+=("cgroup $p"); done
  [ "$(host_kube_rules)" -le "$(cat "$N/host-kube-rules" 2>/dev/null || echo 0)" ] ||
    left+=("KUBE-* iptables rules in the host's own network namespace")
  [ ${#left[@]} = 0 ] && return 0
  printf 'cluster: left behind: %s\n' "${left[@]}" >&2
  exit 1
}

status() {
  if ! running; then
    log "down"
    return 1
  fi
  local c
  for c in "${COMPONENTS[@]}"; do
    if alive "$c"; then log "$c: running (pid $(cat "$N/run/$c.pid"))"; else log "$c: NOT running (log: $N/logs/$c.log)"; fi
  done
  kc get nodes -o wide >&2 || true
  echo "export KUBECONFIG=$KUBECONFIG_FILE"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  kubeconfig) running || die "the node is down (make cluster-up)"; echo "$KUBECONFIG_FILE" ;;
  load)
    [ $# = 3 ] || die "usage: $0 load ARCHIVE REF"
    running || die "the node is down (make cluster-up)"
    push "$(realpath "$2")" "$3"
    ;;
  exec)
    shift
    running || die "the node is down (make cluster-up)"
    [ $# -gt 0 ] || die "usage: $0 exec CMD [ARG..]"
    in_node "$@"
    ;;
  *) die "usage: $0 up|down|status|kubeconfig|load ARCHIVE REF|exec CMD [ARG..]" ;;
esac

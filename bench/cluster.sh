#!/usr/bin/env bash
# `kina create cluster` (one node) until the control plane is Ready, then the node's idle memory
# (working set of its cgroup: usage minus inactive file cache) IDLE seconds after Ready, and the
# time `kina delete cluster` takes. Targets (issue: kubeadm bootstrap): create ≤ 0.6× a kind-style
# containerd node, idle node ≤ 300 MiB. The containerd baseline is not built by this script yet.
# Runs in a private network namespace; run as root:
#   IMAGE=_output/node-image bench/cluster.sh     (an OCI layout or archive of the node image)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${IMAGE:?set IMAGE to a node image (OCI layout dir or archive)}
IDLE=${IDLE:-120}
kina=${KINA:-$here/target/release/kina}
[ -x "$kina" ] || kina=$here/target/debug/kina
runtime=$(dirname "$kina")/kina-runtime
state=$(mktemp -d /tmp/kina-bench-cluster.XXXX)
ns=kina-bench-$$
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
cleanup() {
    nsenter --net=/run/netns/$ns -- env KINA_STATE_DIR="$state" KINA_RUNTIME="$runtime" \
        "$kina" delete cluster --name bench >/dev/null 2>&1 || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$state"
}
trap cleanup EXIT
k() { nsenter --net=/run/netns/$ns -- env KINA_STATE_DIR="$state" KINA_RUNTIME="$runtime" \
        KUBECONFIG="$state/kubeconfig" "$kina" "$@"; }

# Import the image first: a user's store already holds it.
k create cluster --name warmup --image "$IMAGE" --wait 5m -q >/dev/null 2>&1 || true
k delete cluster --name warmup >/dev/null 2>&1

t0=$EPOCHREALTIME
k create cluster --name bench --image "$IMAGE" --wait 5m 2>"$state/create.log"
t1=$EPOCHREALTIME
create_ms=$(( (${t1/./} - ${t0/./}) / 1000 ))
grep -E "✓" "$state/create.log" | sed 's/^/  /'
sleep "$IDLE"
cg=/sys/fs/cgroup/memory/kina-bench-control-plane
if [ -f "$cg/memory.usage_in_bytes" ]; then
    usage=$(<"$cg/memory.usage_in_bytes")
    inactive=$(awk '$1=="total_inactive_file"{print $2}' "$cg/memory.stat")
    rss=$(awk '$1=="total_rss"{print $2}' "$cg/memory.stat")
else
    cg=/sys/fs/cgroup/kina-bench-control-plane
    usage=$(<"$cg/memory.current")
    inactive=$(awk '$1=="inactive_file"{print $2}' "$cg/memory.stat")
    rss=$(awk '$1=="anon"{print $2}' "$cg/memory.stat")
fi
ws=$(( (usage - inactive) / 1048576 ))
t0=$EPOCHREALTIME
k delete cluster --name bench >/dev/null
t1=$EPOCHREALTIME
delete_ms=$(( (${t1/./} - ${t0/./}) / 1000 ))
echo "create (1 node) to control-plane Ready: ${create_ms} ms"
echo "idle node after ${IDLE}s: working set ${ws} MiB, anon $(( rss / 1048576 )) MiB (target ≤ 300 MiB; kind publishes 463 MiB)"
echo "delete: ${delete_ms} ms"
echo "baseline (kind-style containerd + runc node): not built by this script yet"

#!/usr/bin/env bash
# cri-server (kina-runtime + cri-monitor) vs containerd 1.6 + runc through the CRI, driven by
# crictl on host-network pods (so CNI cost is out of the picture):
#   - N × `crictl run` (RunPodSandbox + CreateContainer + StartContainer): p50/p95 in ms;
#   - N × `crictl rmp -f` (stop + remove of the pod and its container): p50/p95 in ms;
#   - idle RSS of the daemon plus its per-pod helpers (cri-monitor / containerd-shim) with 10 pods.
# Prints our/containerd ratios (target ≤ 0.5). Images (static kina-pause, busybox) are built
# locally and served from a docker-registry on 127.0.0.1. Run as root:  N=50 bench/cri-runtime.sh
set -euo pipefail

N=${N:-50}
REPO=$(cd "$(dirname "$0")/.." && pwd)
CRICTL=${CRICTL:-$REPO/../shared/bin/crictl}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
WORK=$(mktemp -d /var/tmp/kina-bench-cri.XXXXXX)
PIDS=()
cleanup() {
    # Pods outlive their runtime daemon: remove them while it still runs.
    for sock in "$WORK/ours/cri.sock" "$WORK/ctrd/containerd.sock"; do
        [ -S "$sock" ] && "$CRICTL" --runtime-endpoint "unix://$sock" --timeout 60s rmp -fa >/dev/null 2>&1 || true
    done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    grep -o "$WORK[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$WORK" || true
}
trap cleanup EXIT

for t in docker-registry skopeo containerd ctr python3 runc; do
    command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
[ -x "$CRICTL" ] || { echo "crictl not found at $CRICTL (set CRICTL)" >&2; exit 1; }

echo "building cri-server, cri-monitor, kina-runtime (release) and a static kina-pause..." >&2
(cd "$REPO" && cargo build -q --release -p cri-server -p cri-monitor -p kina-runtime)
"$REPO/pause/build-static.sh" "$WORK/pause" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
cat > "$WORK/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/registry}}
http: {addr: 127.0.0.1:$PORT}
YML
docker-registry serve "$WORK/registry.yml" >/dev/null 2>&1 & PIDS+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
REG=127.0.0.1:$PORT

# docker-save archives: busybox (sh, sleep) and pause.
python3 - "$WORK" <<'PY'
import hashlib, io, json, sys, tarfile
out = sys.argv[1]
def save(name, tag, files, config):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        for arc, src, link in files:
            if link:
                ti = tarfile.TarInfo(arc); ti.type = tarfile.SYMTYPE; ti.linkname = link; t.addfile(ti)
            else:
                t.add(src, arc)
    layer = raw.getvalue()
    config.update({"architecture": "amd64", "os": "linux",
                   "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}})
    cfg = json.dumps(config).encode()
    cname = hashlib.sha256(cfg).hexdigest() + ".json"
    with tarfile.open(f"{out}/{name}.tar", "w") as t:
        for arc, data in ((cname, cfg), ("l/layer.tar", layer),
                          ("manifest.json", json.dumps([{"Config": cname, "RepoTags": [tag], "Layers": ["l/layer.tar"]}]).encode())):
            ti = tarfile.TarInfo(arc); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
save("busybox", "bench/busybox:1", [("bin/busybox", "/bin/busybox", None), ("bin/sh", None, "busybox"),
     ("bin/sleep", None, "busybox")], {"config": {"Cmd": ["/bin/sh"]}})
save("pause", "bench/pause:1", [("pause", f"{out}/pause", None)], {"config": {"Entrypoint": ["/pause"]}})
PY
for img in busybox pause; do
    skopeo copy -q --dest-tls-verify=false "docker-archive:$WORK/$img.tar" "docker://$REG/bench/$img:1"
done
BUSYBOX=$REG/bench/busybox:1
PAUSE=$REG/bench/pause:1

cat > "$WORK/pod.json" <<JSON
{"metadata": {"name": "bench", "namespace": "bench", "uid": "UID", "attempt": 0},
 "log_directory": "$WORK/logs",
 "linux": {"security_context": {"namespace_options": {"network": 2}}}}
JSON
cat > "$WORK/ctr.json" <<JSON
{"metadata": {"name": "sleeper"}, "image": {"image": "$BUSYBOX"},
 "command": ["/bin/sleep", "3600"], "log_path": "sleeper.log"}
JSON

crictl_() { # $1 = socket
    "$CRICTL" --image-endpoint "unix://$1" --runtime-endpoint "unix://$1" --timeout 120s "${@:2}" \
        2>>"$WORK/crictl.err" || { tail -5 "$WORK/crictl.err" >&2; return 1; }
}
pod_json() { # $1 = runtime name, $2 = index
    sed "s/UID/u-$1-$2/; s/\"bench\", \"namespace/\"bench-$2\", \"namespace/" "$WORK/pod.json" > "$WORK/pod-$1-$2.json"
    echo "$WORK/pod-$1-$2.json"
}
rss_kb() { # sum of VmRSS of the given pids
    local total=0 p v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
pct() { # $1 = percentile; stdin = numbers
    sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int((NR-1)*p/100)+1; printf "%.1f", a[i]}'
}

measure() { # $1 = name, $2 = socket, $3 = state dir; prints "run_p50 run_p95 rm_p50 rm_p95 rss"
    local name=$1 sock=$2 dir=$3 i pod t0 t1
    : > "$WORK/$name.run"; : > "$WORK/$name.rm"
    crictl_ "$sock" pull "$BUSYBOX" >/dev/null
    for ((i = 0; i < N; i++)); do
        local pj; pj=$(pod_json "$name" "$i")
        t0=$EPOCHREALTIME
        crictl_ "$sock" run --no-pull "$WORK/ctr.json" "$pj" >/dev/null
        t1=$EPOCHREALTIME
        echo "($t1 - $t0) * 1000" | bc -l >> "$WORK/$name.run"
    done
    for pod in $(crictl_ "$sock" pods -q); do
        t0=$EPOCHREALTIME
        crictl_ "$sock" rmp -f "$pod" >/dev/null
        t1=$EPOCHREALTIME
        echo "($t1 - $t0) * 1000" | bc -l >> "$WORK/$name.rm"
    done
    for ((i = 0; i < 10; i++)); do
        crictl_ "$sock" run --no-pull "$WORK/ctr.json" "$(pod_json "$name-idle" "$i")" >/dev/null
    done
    sleep 2
    # The daemon and its per-pod helpers (cri-monitor / containerd-shim): every process whose
    # command line names this runtime's directory.
    local pids; pids=$(pgrep -f -- "$dir/" | tr '\n' ' ')
    # shellcheck disable=SC2086
    local rss; rss=$(rss_kb $pids)
    for pod in $(crictl_ "$sock" pods -q); do crictl_ "$sock" rmp -f "$pod" >/dev/null; done
    echo "$(pct 50 < "$WORK/$name.run") $(pct 95 < "$WORK/$name.run") $(pct 50 < "$WORK/$name.rm") $(pct 95 < "$WORK/$name.rm") $rss"
}

# --- cri-server on kina-runtime ---
D=$WORK/ours; mkdir -p "$D" "$WORK/logs"
cat > "$D/config.toml" <<TOML
root_dir = "$D/root"
state_dir = "$D/state"
listen = "$D/cri.sock"
log_level = "warn"
sandbox_image = "$PAUSE"
default_runtime_handler = "kina"
monitor_path = "$TARGET/release/cri-monitor"
[cni]
conf_dir = "$D/net.d"
[runtime_handlers]
kina = "$TARGET/release/kina-runtime"
TOML
"$TARGET/release/cri-server" --config "$D/config.toml" 2>"$D/log" & PIDS+=($!); DAEMON=$!
for _ in $(seq 200); do [ -S "$D/cri.sock" ] && break; sleep 0.05; done
crictl_ "$D/cri.sock" pull "$PAUSE" >/dev/null
read -r O_RUN50 O_RUN95 O_RM50 O_RM95 O_RSS < <(measure ours "$D/cri.sock" "$D")
echo "cri-server: run p50 $O_RUN50 ms, p95 $O_RUN95 ms; stop+remove p50 $O_RM50 ms, p95 $O_RM95 ms; RSS $O_RSS KiB" >&2
kill "$DAEMON"; wait "$DAEMON" 2>/dev/null || true

# --- containerd 1.6 + runc ---
C=$WORK/ctrd; mkdir -p "$C"
cat > "$C/config.toml" <<TOML
version = 2
root = "$C/root"
state = "$C/state"
[grpc]
  address = "$C/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  # containerd asks -998 for sandboxes; without CAP_SYS_RESOURCE (this host) runc then fails.
  restrict_oom_score_adj = true
  sandbox_image = "$PAUSE"
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "$C/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REG"]
    endpoint = ["http://$REG"]
TOML
containerd --config "$C/config.toml" >"$C/log" 2>&1 & PIDS+=($!); DAEMON=$!
for _ in $(seq 200); do [ -S "$C/containerd.sock" ] && break; sleep 0.05; done
ctr -a "$C/containerd.sock" -n k8s.io images pull --plain-http "$PAUSE" >/dev/null
ctr -a "$C/containerd.sock" -n k8s.io images pull --plain-http "$BUSYBOX" >/dev/null
read -r C_RUN50 C_RUN95 C_RM50 C_RM95 C_RSS < <(measure ctrd "$C/containerd.sock" "$C")
kill "$DAEMON"; wait "$DAEMON" 2>/dev/null || true

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
printf '%-34s %12s %12s %8s\n' "N=$N host-network pods" "cri-server" "containerd" "ratio"
printf '%-34s %12s %12s %8s\n' "run (runp+create+start) p50 ms" "$O_RUN50" "$C_RUN50" "$(ratio "$O_RUN50" "$C_RUN50")"
printf '%-34s %12s %12s %8s\n' "run (runp+create+start) p95 ms" "$O_RUN95" "$C_RUN95" "$(ratio "$O_RUN95" "$C_RUN95")"
printf '%-34s %12s %12s %8s\n' "stop+remove p50 ms" "$O_RM50" "$C_RM50" "$(ratio "$O_RM50" "$C_RM50")"
printf '%-34s %12s %12s %8s\n' "stop+remove p95 ms" "$O_RM95" "$C_RM95" "$(ratio "$O_RM95" "$C_RM95")"
printf '%-34s %12s %12s %8s\n' "idle RSS with 10 pods (KiB)" "$O_RSS" "$C_RSS" "$(ratio "$O_RSS" "$C_RSS")"
echo "(crictl process start-up is included in every timing, equally for both)"
exit 0

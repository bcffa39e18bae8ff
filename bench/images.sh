#!/usr/bin/env bash
# Image pull benchmark (not a test): pull + unpack of a ~100 MB, 3-layer image from a local
# docker-registry with
#   1. cri-server (release build, driven by crictl),
#   2. skopeo copy + umoci unpack,
#   3. containerd 1.6 (Debian package; `ctr -n k8s.io images pull --plain-http`),
# each into a fresh store, best of $RUNS. Then a second image sharing two layers is pulled on
# top of the first: prints the bytes each fetched.
#
# Usage: bench/images.sh            (needs root; installs containerd with apt if missing)
set -euo pipefail

RUNS=${RUNS:-3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
CRICTL=${CRICTL:-$REPO/../shared/bin/crictl}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
WORK=$(mktemp -d /var/tmp/kina-bench-images.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    umount -R "$WORK"/ctrd-root/io.containerd.snapshotter.v1.overlayfs/snapshots/*/fs 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "missing $1" >&2; exit 1; }; }
if ! command -v containerd >/dev/null; then
    apt-get install -y containerd >/dev/null
fi
for t in docker-registry skopeo umoci containerd ctr python3; do need "$t"; done
[ -x "$CRICTL" ] || { echo "crictl not found at $CRICTL (set CRICTL)" >&2; exit 1; }

echo "building cri-server (release)..." >&2
(cd "$REPO" && cargo build -q --release -p cri-server)
CRI="$TARGET/release/cri-server"

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- registry ---------------------------------------------------------------------------
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

# --- images: an OCI layout built from host files, pushed with skopeo --------------------
python3 - "$WORK/layout" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    with open(f"{out}/blobs/sha256/{d}", "wb") as f: f.write(data)
    return "sha256:" + d, len(data)
def layer(add):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t: add(t)
    raw = raw.getvalue()
    gz = gzip.compress(raw, compresslevel=6, mtime=0)
    d, n = blob(gz)
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n}, "sha256:" + hashlib.sha256(raw).hexdigest()
def tree(path, arc):
    return lambda t: (t.add("/bin/busybox", "bin/busybox"), t.add(path, arc))
def rand(name, mb, seed):
    def add(t):
        data = hashlib.shake_256(seed.encode()).digest(mb << 20)
        ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    return add
base = [layer(tree("/usr/lib/python3.11", "usr/lib/python3.11")), layer(tree("/usr/share/doc", "usr/share/doc"))]
index = []
for tag, top in (("1", layer(rand("data/blob1", 20, "one"))), ("2", layer(rand("data/blob2", 8, "two")))):
    layers = base + [top]
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/busybox", "sh"]},
                      "rootfs": {"type": "layers", "diff_ids": [l[1] for l in layers]}}).encode()
    cd, cn = blob(cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                      "layers": [l[0] for l in layers]}).encode()
    md, mn = blob(man)
    index.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
                  "annotations": {"org.opencontainers.image.ref.name": tag}})
    print(f"image {tag}: layers " + ", ".join(f"{l[0]['size']/1e6:.1f} MB" for l in layers)
          + f" = {sum(l[0]['size'] for l in layers)/1e6:.1f} MB compressed", file=sys.stderr)
json.dump({"schemaVersion": 2, "manifests": index}, open(f"{out}/index.json", "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(f"{out}/oci-layout", "w"))
PY
for tag in 1 2; do
    skopeo copy -q --dest-tls-verify=false "oci:$WORK/layout:$tag" "docker://$REG/bench/img:$tag"
done
IMG1=$REG/bench/img:1
IMG2=$REG/bench/img:2

# --- contenders ---------------------------------------------------------------------------
start_cri() { # $1 = dir
    mkdir -p "$1"
    "$CRI" --root "$1/root" --state "$1/state" --listen "$1/cri.sock" \
        --registry-config-path "$1/certs.d" --log-level info 2>"$1/log" & PIDS+=($!)
    for _ in $(seq 200); do [ -S "$1/cri.sock" ] && break; sleep 0.05; done
}
stop_last() { local p=${PIDS[-1]}; kill "$p"; wait "$p" 2>/dev/null || true; unset 'PIDS[-1]'; }
crictl_() {
    "$CRICTL" --image-endpoint "unix://$1/cri.sock" --runtime-endpoint "unix://$1/cri.sock" \
        --timeout 600s "${@:2}" 2>"$WORK/crictl.err" || { cat "$WORK/crictl.err" >&2; return 1; }
}

run_ours() { # $1 = run
    local d=$WORK/ours-$1; start_cri "$d"
    local t0; t0=$(now); crictl_ "$d" pull "$IMG1" >/dev/null; local t1; t1=$(now)
    elapsed "$t0" "$t1"
    if [ "$1" = 1 ]; then
        crictl_ "$d" pull "$IMG2" >/dev/null
        grep -o 'fetched_bytes=[0-9]*' "$d/log" | tail -1 | cut -d= -f2 > "$WORK/ours-fetched2"
    fi
    stop_last; rm -rf "$d"
}

run_skopeo() {
    local d=$WORK/skopeo-$1; mkdir -p "$d"
    local t0; t0=$(now)
    skopeo copy -q --src-tls-verify=false "docker://$IMG1" "oci:$d/layout:img"
    umoci unpack --image "$d/layout:img" "$d/bundle" >/dev/null 2>&1
    local t1; t1=$(now); elapsed "$t0" "$t1"; rm -rf "$d"
}

run_containerd() {
    local d=$WORK/ctrd-$1; mkdir -p "$d"
    cat > "$d/config.toml" <<TOML
version = 2
root = "$d/root"
state = "$d/state"
[grpc]
  address = "$d/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
TOML
    containerd --config "$d/config.toml" >"$d/log" 2>&1 & PIDS+=($!)
    for _ in $(seq 200); do [ -S "$d/containerd.sock" ] && break; sleep 0.05; done
    local t0; t0=$(now)
    ctr -a "$d/containerd.sock" -n k8s.io images pull --plain-http "$IMG1" >/dev/null
    local t1; t1=$(now); elapsed "$t0" "$t1"
    if [ "$1" = 1 ]; then
        local blobs="$d/root/io.containerd.content.v1.content/blobs"
        local b0; b0=$(du -sb "$blobs" | cut -f1)
        ctr -a "$d/containerd.sock" -n k8s.io images pull --plain-http "$IMG2" >/dev/null
        echo $(( $(du -sb "$blobs" | cut -f1) - b0 )) > "$WORK/ctrd-fetched2"
    fi
    ctr -a "$d/containerd.sock" -n k8s.io images rm "$IMG1" "$IMG2" >/dev/null 2>&1 || true
    stop_last
    umount "$d"/root/io.containerd.snapshotter.v1.overlayfs/snapshots/*/fs 2>/dev/null || true
    rm -rf "$d"
}

best() { sort -n | head -1; }
declare -A T
for name in ours skopeo containerd; do
    times=()
    for r in $(seq "$RUNS"); do
        sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
        times+=("$("run_$name" "$r")")
    done
    T[$name]=$(printf '%s\n' "${times[@]}" | best)
    echo "$name: ${times[*]} s (best ${T[$name]} s)" >&2
done

fastest_other=$(printf '%s\n' "${T[skopeo]}" "${T[containerd]}" | best)
echo
echo "pull+unpack $IMG1 (best of $RUNS):"
printf '  %-22s %8.3f s\n' "cri-server" "${T[ours]}" "skopeo+umoci" "${T[skopeo]}" "containerd 1.6" "${T[containerd]}"
python3 -c "o,s,c=${T[ours]},${T[skopeo]},${T[containerd]}; print(f'  ratio ours/skopeo+umoci = {o/s:.2f}x, ours/containerd = {o/c:.2f}x, ours/fastest other = {o/min(s,c):.2f}x (target <= 1.0x)')"
echo "second image sharing two layers ($IMG2), bytes fetched:"
echo "  cri-server: $(cat "$WORK/ours-fetched2") bytes (new layer + config)"
echo "  containerd: $(cat "$WORK/ctrd-fetched2") bytes (content store growth)"
: "$fastest_other"

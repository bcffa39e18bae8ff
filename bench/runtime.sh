#!/usr/bin/env bash
# kina-runtime vs crun vs runc: N × (create + start + wait for exit + delete) of /bin/true
# from a busybox-static bundle. Prints per-runtime median/mean (ms), the ratios ours/crun and
# ours/runc, and the peak RSS of kina-runtime's `create` and `run`. Run as root.
#   N=100 bench/runtime.sh
# crun fails on a hybrid cgroup layout with the cgroup2 `unified` mount visible, so its loop
# runs in a private mount namespace with that mount hidden.
set -euo pipefail

N=${N:-100}
here=$(cd "$(dirname "$0")/.." && pwd)

# One measured loop: prints one duration (ms) per iteration.
cycle_loop() {
    local bin=$1 root=$2 bundle=$3 n=$4 i id pid t0 t1 line
    for ((i = 0; i < n; i++)); do
        id="bench-$$-$i"
        t0=$EPOCHREALTIME
        "$bin" --root "$root" create --bundle "$bundle" --pid-file "$root/$id.pid" "$id" >/dev/null
        pid=$(<"$root/$id.pid")
        "$bin" --root "$root" start "$id"
        # Wait for the init to exit (gone, or a zombie waiting for its reaper) without
        # spawning processes.
        while [[ -e /proc/$pid ]]; do
            line=$(<"/proc/$pid/stat") 2>/dev/null || break
            line=${line##*) }
            [[ ${line:0:1} == Z ]] && break
        done
        "$bin" --root "$root" delete "$id"
        t1=$EPOCHREALTIME
        echo $(((${t1/./} - ${t0/./}) / 1000)).$(((${t1/./} - ${t0/./}) % 1000 / 100))
    done
}

if [[ ${1:-} == --inner ]]; then
    # Inside a private mount namespace (crun).
    shift
    umount /sys/fs/cgroup/unified 2>/dev/null || true
    cycle_loop "$@"
    exit 0
fi

[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
(cd "$here" && cargo build --release -p kina-runtime -q)
KINA=${KINA:-$CARGO_TARGET_DIR/release/kina-runtime}
RUNC=${RUNC:-/usr/sbin/runc}
CRUN=${CRUN:-/usr/bin/crun}

work=$(mktemp -d /tmp/kina-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/dev" "$bundle/rootfs/sys"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for a in sh true; do ln -s busybox "$bundle/rootfs/bin/$a"; done
(cd "$bundle" && "$RUNC" spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"\/bin\/true"/' "$bundle/config.json"

stats() { # name file → "name median mean"
    sort -n "$2" | awk -v name="$1" '{ v[NR] = $1; s += $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%-14s median %7.2f ms   mean %7.2f ms   (n=%d)\n", name, m, s / NR, NR }'
}
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for rt in kina runc crun; do
    mkdir -p "$work/root-$rt"
done
# Warm up caches once per runtime, then measure.
cycle_loop "$KINA" "$work/root-kina" "$bundle" 3 >/dev/null
cycle_loop "$KINA" "$work/root-kina" "$bundle" "$N" >"$work/kina.ms"
cycle_loop "$RUNC" "$work/root-runc" "$bundle" 3 >/dev/null
cycle_loop "$RUNC" "$work/root-runc" "$bundle" "$N" >"$work/runc.ms"
unshare -m bash "$0" --inner "$CRUN" "$work/root-crun" "$bundle" 3 >/dev/null
unshare -m bash "$0" --inner "$CRUN" "$work/root-crun" "$bundle" "$N" >"$work/crun.ms"

echo "create+start+wait+delete of /bin/true, $N iterations"
stats kina-runtime "$work/kina.ms"
stats runc "$work/runc.ms"
stats crun "$work/crun.ms"
k=$(median "$work/kina.ms"); r=$(median "$work/runc.ms"); c=$(median "$work/crun.ms")
awk -v k="$k" -v r="$r" -v c="$c" 'BEGIN { printf "ratio ours/crun %.2f   ours/runc %.2f   (target <= 0.80 vs crun)\n", k / c, k / r }'

# Peak RSS in KiB (to a file: a created container keeps the runtime's stdio open).
rss() { /usr/bin/time -o "$work/rss" -f %M "$@" >/dev/null 2>&1; tail -1 "$work/rss"; }
create_rss=$(rss "$KINA" --root "$work/root-kina" create --bundle "$bundle" rss-probe)
"$KINA" --root "$work/root-kina" delete --force rss-probe
run_rss=$(rss "$KINA" --root "$work/root-kina" run --bundle "$bundle" rss-probe2)
echo "kina-runtime peak RSS: create ${create_rss} KiB, run ${run_rss} KiB"

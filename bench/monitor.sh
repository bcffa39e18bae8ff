#!/usr/bin/env bash
# Memory of the per-container monitor: cri-monitor (dynamic and static release builds) vs CRI-O's
# conmon, each monitoring one running busybox `sleep` container under runc, measured in one run.
# Target: cri-monitor VmRSS <= 1 MiB. Prints VmRSS and Pss (proportional: shared pages split).
#
#   bench/monitor.sh            # needs root and runc; installs conmon from Debian if missing
#   KINA_TEST_RUNTIME=PATH ...  # another runc-compatible runtime
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runtime=${KINA_TEST_RUNTIME:-/usr/sbin/runc}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

if ! command -v conmon >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q conmon >/dev/null 2>&1 \
        || echo "conmon is not installable here; measuring cri-monitor only" >&2
fi

cargo build --manifest-path "$root/Cargo.toml" --release -p cri-monitor -q -j2
dyn_bin=$CARGO_TARGET_DIR/release/cri-monitor
target=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=$CARGO_TARGET_DIR/static \
    cargo build --manifest-path "$root/Cargo.toml" --release -p cri-monitor -q -j2 --target "$target"
static_bin=$CARGO_TARGET_DIR/static/$target/release/cri-monitor

work=$(mktemp -d /tmp/monbench.XXXXXX)
ids=()
cleanup() {
    for id in "${ids[@]}"; do "$runtime" --root "$work/rt" delete -f "$id" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# A busybox-static bundle running `sleep 1000`.
mkdir -p "$work/bundle/rootfs/bin" "$work/bundle/rootfs/proc" "$work/bundle/rootfs/dev"
cp /bin/busybox "$work/bundle/rootfs/bin/"
ln -s busybox "$work/bundle/rootfs/bin/sleep"
"$runtime" spec --bundle "$work/bundle"
sed -i -e 's/"terminal": true/"terminal": false/' \
       -e 's/^\(\s*\)"sh"$/\1"sleep", "1000"/' "$work/bundle/config.json"

N=${BENCH_MONITORS:-4}   # monitors per variant: Pss then shows the per-container cost

mem() { # pid... -> "VmRSS, RssAnon, Pss" averaged over the pids (kB)
    local rss=0 anon=0 pss=0 pid
    for pid in "$@"; do
        rss=$((rss + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")))
        anon=$((anon + $(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status")))
        pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")))
    done
    printf 'VmRSS %5d kB  RssAnon %4d kB  Pss %5d kB' $((rss / $#)) $((anon / $#)) $((pss / $#))
}

start_cri_monitor() { # key binary -> prints the monitor pid
    local id="bench-$1-$$"
    ids+=("$id")
    mkdir -p "$work/$id"
    local verdict
    verdict=$("$2" --runtime "$runtime" --root "$work/rt" --bundle "$work/bundle" --id "$id" \
        --log-path "$work/$id/log" --exit-file "$work/$id/exit" --pid-file "$work/$id/pid" \
        --socket-dir "$work/$id/s") || { echo "cri-monitor failed: $verdict" >&2; exit 1; }
    "$runtime" --root "$work/rt" start "$id"
    echo "$verdict" | sed -n 's/.*"monitor_pid":\([0-9]*\).*/\1/p'
}

start_conmon() { # key -> prints the conmon pid
    local id="bench-$1-$$"
    ids+=("$id")
    mkdir -p "$work/$id"
    conmon --api-version 1 -c "$id" -u "$id" -n "$id" -r "$runtime" -b "$work/bundle" \
        -p "$work/$id/pid" -P "$work/$id/conmon.pid" -l "k8s-file:$work/$id/log" \
        --exit-dir "$work/$id" --socket-dir-path "$work/$id" \
        --runtime-arg --root --runtime-arg "$work/rt" --log-level error 2>/dev/null
    # Without a sync pipe conmon's foreground process returns before the container exists.
    for _ in $(seq 200); do [ -s "$work/$id/pid" ] && break; sleep 0.05; done
    "$runtime" --root "$work/rt" start "$id"
    cat "$work/$id/conmon.pid"
}

measure() { # label starter args...
    local label=$1 starter=$2 pids=() i
    shift 2
    for i in $(seq "$N"); do
        # ids+= inside $(...) would be lost: register the id here too.
        ids+=("bench-$1$i-$$")
        pids+=("$("$starter" "$1$i" "${@:2}")")
    done
    sleep 0.5
    printf '%-24s %s\n' "$label" "$(mem "${pids[@]}")"
}

echo "per-monitor memory, $N monitors per variant, each with a running container (averages):"
measure "cri-monitor (release)" start_cri_monitor dyn "$dyn_bin"
measure "cri-monitor (static)" start_cri_monitor static "$static_bin"
if command -v conmon >/dev/null; then
    measure "conmon $(conmon --version | head -1 | awk '{print $3}')" start_conmon conmon
fi
echo "target: cri-monitor VmRSS <= 1024 kB; shared text pages count in VmRSS, Pss splits them."

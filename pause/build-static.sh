#!/usr/bin/env bash
# Builds kina-pause as a fully static binary (glibc + crt-static; no musl target needed) and copies
# it to the given path. Uses its own target directory so the normal workspace build keeps its cache.
#
#   pause/build-static.sh OUT            # e.g. pause/build-static.sh /tmp/image/pause
#   KINA_STATIC_TARGET_DIR=DIR ...       # override the target directory
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTPUT-PATH" >&2
    exit 2
fi
out=$1
root=$(cd "$(dirname "$0")/.." && pwd)
target=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR="${KINA_STATIC_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}/static}"
# --target makes RUSTFLAGS apply to the target crates only (build scripts stay dynamic).
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    "${CARGO:-cargo}" build --manifest-path "$root/Cargo.toml" --release --locked \
    -p kina-pause --target "$target" -j "${KINA_BUILD_JOBS:-2}"
bin="$CARGO_TARGET_DIR/$target/release/kina-pause"
mkdir -p "$(dirname "$out")"
cp "$bin" "$out"
strip "$out" 2>/dev/null || true
# Refuse to hand out a binary that still needs a dynamic loader.
if readelf -l "$out" | grep -q 'INTERP'; then
    echo "$0: $out is not static (has a PT_INTERP)" >&2
    exit 1
fi
echo "$out"

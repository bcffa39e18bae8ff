#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for kina and creates a one-node cluster: builds kina,
# cri-server, kina-runtime and friends, builds the node image (a systemd Debian root with
# cri-server, CNI plugins, Kubernetes and its images preloaded) into kina's image store, then runs
# `kina create cluster` and shows the nodes and pods with the cluster's own kubectl.
#
#   sudo hack/quickstart.sh                       # Kubernetes binaries from ../shared/kubernetes
#   sudo KUBE_BIN_DIR=/path/to/bins hack/quickstart.sh
#   sudo KUBE_VERSION=v1.36.2 hack/quickstart.sh  # download a release (needs dl.k8s.io)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

.ci/install-deps
cargo build --release --locked -p kina -p cri-server -p kina-runtime -p cri-monitor -p kina-addons
# The pause binary goes into the sandbox image, which has no libc: build it static.
pause/build-static.sh target/release/kina-pause >/dev/null

src=()
bins=
if [ -n "${KUBE_VERSION:-}" ]; then
  src=(--kube-version "$KUBE_VERSION")
else
  bins=${KUBE_BIN_DIR:-}
  if [ -z "$bins" ]; then
    bins=$root/_output/kubernetes
    tarball=$root/../shared/kubernetes/kubernetes-v1.36.2-linux-amd64.tar.xz
    if [ ! -x "$bins/kubeadm" ]; then
      mkdir -p "$bins" && tar -C "$bins" -xJf "$tarball"
    fi
  fi
  src=(--kube-bin-dir "$bins")
fi
coredns=()
if [ -f "$root/../shared/kubernetes/coredns-v1.13.1-linux-amd64.tar.xz" ]; then
  mkdir -p _output/coredns
  [ -x _output/coredns/coredns ] || tar -C _output/coredns -xJf "$root/../shared/kubernetes/coredns-v1.13.1-linux-amd64.tar.xz"
  coredns=(--coredns "$(find _output/coredns -name coredns -type f | head -n1)")
fi
crictl=()
[ -x "$root/../shared/bin/crictl" ] && crictl=(--crictl "$root/../shared/bin/crictl")

./target/release/kina build node-image "${src[@]}" "${coredns[@]}" "${crictl[@]}" \
  --image kina/node:v1.36.2

# A cluster named "kina" replaces an earlier one from this script.
./target/release/kina delete cluster --name kina
./target/release/kina create cluster --name kina --wait 5m
kubectl=$(command -v kubectl || true)
[ -x "$bins/kubectl" ] && kubectl=$bins/kubectl
if [ -n "$kubectl" ]; then
  "$kubectl" --context kina-kina get nodes -o wide
  "$kubectl" --context kina-kina get pods -A
fi

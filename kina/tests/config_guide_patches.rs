//! kind's user guide and testdata, patches (kubeadm patches, ingress.md, local-registry.md
//! containerd patches, JSON 6902), written out as kind documents them.

mod config_support;

use config_support::{load, roles};
use kina::config::{MountPropagation, NodeRole, Protocol};

#[test]
fn kubeadm_init_configuration_patch() {
    let l = load(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  kubeadmConfigPatches:
  - |
    kind: InitConfiguration
    nodeRegistration:
      kubeletExtraArgs:
        node-labels: "my-label=true"
"#,
    );
    assert_eq!(
        l.cluster.nodes[0].kubeadm_config_patches,
        vec![
            "kind: InitConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n    node-labels: \"my-label=true\"\n"
        ]
    );
}

#[test]
fn kubeadm_cluster_configuration_patch() {
    let l = load(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  kubeadmConfigPatches:
  - |
    kind: ClusterConfiguration
    apiServer:
        extraArgs:
          enable-admission-plugins: NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook
",
    );
    let p = &l.cluster.nodes[0].kubeadm_config_patches[0];
    assert!(p.starts_with("kind: ClusterConfiguration\napiServer:\n    extraArgs:\n"));
    assert!(p.contains("enable-admission-plugins: NodeRestriction,MutatingAdmissionWebhook"));
}

#[test]
fn kubeadm_join_configuration_patches() {
    let l = load(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
- role: worker
  kubeadmConfigPatches:
  - |
    kind: JoinConfiguration
    nodeRegistration:
      kubeletExtraArgs:
        node-labels: "my-label2=true"
- role: control-plane
  kubeadmConfigPatches:
  - |
    kind: JoinConfiguration
    nodeRegistration:
      kubeletExtraArgs:
        node-labels: "my-label3=true"
"#,
    );
    use NodeRole::*;
    assert_eq!(roles(&l), vec![ControlPlane, Worker, Worker, ControlPlane]);
    assert!(l.cluster.nodes[1].kubeadm_config_patches.is_empty());
    assert!(l.cluster.nodes[2].kubeadm_config_patches[0].contains("my-label2=true"));
    assert!(l.cluster.nodes[3].kubeadm_config_patches[0].contains("my-label3=true"));
}

#[test]
fn kubeadm_patches_directory_with_relative_mount() {
    // The guide shows this as a fragment of a config; the type header is added here.
    let l = load(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  extraMounts:
  - hostPath: ./patches
    containerPath: /patches

kubeadmConfigPatches:
  - |
    kind: InitConfiguration
    patches:
      directory: /patches
",
    );
    // relative host paths are taken from the current directory
    assert_eq!(
        l.cluster.nodes[0].extra_mounts[0].host_path,
        "/home/user/project/patches"
    );
    assert_eq!(
        l.cluster.kubeadm_config_patches,
        vec!["kind: InitConfiguration\npatches:\n  directory: /patches\n"]
    );
}

#[test]
fn ingress_cluster() {
    let l = load(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  kubeadmConfigPatches:
  - |
    kind: InitConfiguration
    nodeRegistration:
      kubeletExtraArgs:
        node-labels: "ingress-ready=true"
  extraPortMappings:
  - containerPort: 80
    hostPort: 80
    protocol: TCP
  - containerPort: 443
    hostPort: 443
    protocol: TCP
"#,
    );
    let n = &l.cluster.nodes[0];
    assert!(n.kubeadm_config_patches[0].contains("ingress-ready=true"));
    let ports: Vec<(i32, i32)> = n
        .extra_port_mappings
        .iter()
        .map(|p| (p.container_port, p.host_port))
        .collect();
    assert_eq!(ports, vec![(80, 80), (443, 443)]);
}

#[test]
fn local_registry_mirror_patch_is_translated() {
    let l = load(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."localhost:5000"]
    endpoint = ["http://kind-registry:5000"]
"#,
    );
    assert!(
        l.containerd.warnings.is_empty(),
        "{:?}",
        l.containerd.warnings
    );
    assert_eq!(
        l.containerd.registry.mirrors["localhost:5000"],
        vec!["http://kind-registry:5000"]
    );
}

#[test]
fn local_registry_config_path_patch_is_translated() {
    let l = load(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
"#,
    );
    assert_eq!(
        l.containerd.registry.config_path.as_deref(),
        Some("/etc/containerd/certs.d")
    );
}

#[test]
fn kinds_own_testdata_with_every_patch_kind() {
    // kind's pkg/internal/apis/config/encoding/testdata/v1alpha4/valid-kind-patches.yaml
    let l = load(
        r#"# this config file contains all config fields with comments
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
# patch the generated kubeadm config with some extra settings
kubeadmConfigPatches:
- |
  apiVersion: kubeadm.k8s.io/v1beta2
  kind: ClusterConfiguration
  metadata:
    name: config
  networking:
    serviceSubnet: 10.0.0.0/16
# patch it further using a JSON 6902 patch
kubeadmConfigPatchesJSON6902:
- group: kubeadm.k8s.io
  version: v1beta2
  kind: ClusterConfiguration
  patch: |
    - op: add
      path: /apiServer/certSANs/-
      value: my-hostname
# patch containerd config
containerdConfigPatches:
# configure a local insecure registry
- |-
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry:5000"]
# 1 control plane node and 3 workers
nodes:
# the control plane node config
- role: control-plane
# the three workers
- role: worker
- role: worker
- role: worker
"#,
    );
    let j = &l.cluster.kubeadm_config_patches_json6902[0];
    assert_eq!(
        (j.group.as_str(), j.version.as_str(), j.kind.as_str()),
        ("kubeadm.k8s.io", "v1beta2", "ClusterConfiguration")
    );
    assert!(j.patch.contains("/apiServer/certSANs/-"));
    assert_eq!(l.cluster.nodes.len(), 4);
    // a mirror without endpoints changes nothing, and says so
    assert!(l.containerd.registry.mirrors.is_empty());
    assert_eq!(l.containerd.warnings.len(), 1);
    assert!(l.containerd.warnings[0].contains("containerdConfigPatches[0]"));
}

#[test]
fn kinds_own_testdata_with_many_fields() {
    // kind's testdata/v1alpha4/valid-many-fields.yaml
    let l = load(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: not-default
featureGates:
  AllBeta: false
networking:
  ipFamily: ipv6
nodes:
- role: control-plane
- role: worker
  extraMounts:
  - containerPath: /foo
    hostPath: /bar
    readOnly: true
    selinuxRelabel: false
    propagation: Bidirectional
  extraPortMappings:
  - containerPort: 8080
    hostPort: 8080
    protocol: UDP
",
    );
    let c = &l.cluster;
    assert_eq!(c.name, "not-default");
    assert_eq!(c.feature_gates.get("AllBeta"), Some(&false));
    assert_eq!(c.networking.api_server_address, "::1");
    let w = &c.nodes[1];
    assert_eq!(
        w.extra_mounts[0].propagation,
        MountPropagation::Bidirectional
    );
    assert_eq!(w.extra_port_mappings[0].protocol, Protocol::Udp);
}

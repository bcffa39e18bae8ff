//! Every config example of kind's user guide (configuration.md, quick-start.md, ingress.md,
//! local-registry.md), written out as kind documents it, loads into the expected structs.

use std::path::Path;

use kina::config::{
    self, DEFAULT_NODE_IMAGE, IpFamily, Loaded, MountPropagation, NodeRole, Protocol, ProxyMode,
};

fn load(yaml: &str) -> Loaded {
    config::load_str(yaml, "guide.yaml", None, Path::new("/home/user/project"))
        .unwrap_or_else(|e| panic!("guide example rejected: {e}\n{yaml}"))
}

fn roles(l: &Loaded) -> Vec<NodeRole> {
    l.cluster.nodes.iter().map(|n| n.role).collect()
}

#[test]
fn minimal_config_gets_kinds_defaults() {
    let l = load("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n");
    let c = &l.cluster;
    assert_eq!(c.name, "kina");
    assert_eq!(roles(&l), vec![NodeRole::ControlPlane]);
    assert_eq!(c.nodes[0].image, DEFAULT_NODE_IMAGE);
    let n = &c.networking;
    assert_eq!(n.ip_family, IpFamily::Ipv4);
    assert_eq!(n.api_server_address, "127.0.0.1");
    assert_eq!(n.api_server_port, 0);
    assert_eq!(n.pod_subnet, "10.244.0.0/16");
    assert_eq!(n.service_subnet, "10.96.0.0/16");
    assert_eq!(n.kube_proxy_mode, ProxyMode::Iptables);
    assert!(!n.disable_default_cni);
    assert_eq!(n.dns_search, None);
    assert!(l.containerd.warnings.is_empty());
}

#[test]
fn name_your_cluster() {
    let l = load(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: app-1-cluster
",
    );
    assert_eq!(l.cluster.name, "app-1-cluster");
}

#[test]
fn name_flag_wins_over_config() {
    let l = config::load_str(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: app-1-cluster\n",
        "x",
        Some("my-cluster"),
        Path::new("/"),
    )
    .unwrap();
    assert_eq!(l.cluster.name, "my-cluster");
}

#[test]
fn feature_gates() {
    let l = load(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
featureGates:
  # any feature gate can be enabled here with "Name": true
  # or disabled here with "Name": false
  # not all feature gates are tested, however
  "CSIMigration": true
"#,
    );
    assert_eq!(l.cluster.feature_gates.get("CSIMigration"), Some(&true));
}

#[test]
fn runtime_config() {
    let l = load(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
runtimeConfig:
  "api/alpha": "false"
"#,
    );
    assert_eq!(
        l.cluster
            .runtime_config
            .get("api/alpha")
            .map(String::as_str),
        Some("false")
    );
}

#[test]
fn ipv6_with_ipv4_api_server_for_docker_desktop() {
    let l = load(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  ipFamily: ipv6
  apiServerAddress: 127.0.0.1
",
    );
    let n = &l.cluster.networking;
    assert_eq!(n.ip_family, IpFamily::Ipv6);
    assert_eq!(n.api_server_address, "127.0.0.1");
    assert_eq!(n.pod_subnet, "fd00:10:244::/56");
    assert_eq!(n.service_subnet, "fd00:10:96::/112");
}

#[test]
fn ipv6_on_linux() {
    let l = load(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  ipFamily: ipv6
",
    );
    let n = &l.cluster.networking;
    assert_eq!(n.api_server_address, "::1");
    assert_eq!(n.pod_subnet, "fd00:10:244::/56");
    assert_eq!(n.service_subnet, "fd00:10:96::/112");
}

#[test]
fn dual_stack() {
    let l = load(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  ipFamily: dual
",
    );
    let n = &l.cluster.networking;
    assert_eq!(n.ip_family, IpFamily::Dual);
    assert_eq!(n.api_server_address, "127.0.0.1");
    assert_eq!(n.pod_subnet, "10.244.0.0/16,fd00:10:244::/56");
    assert_eq!(n.service_subnet, "10.96.0.0/16,fd00:10:96::/112");
}

#[test]
fn api_server_address_and_port() {
    let l = load(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  # WARNING: It is _strongly_ recommended that you keep this the default
  # (127.0.0.1) for security reasons. However it is possible to change this.
  apiServerAddress: "127.0.0.1"
  # By default the API server listens on a random open port.
  # You may choose a specific port but probably don't need to in most cases.
  # Using a random port makes it easier to spin up multiple clusters.
  apiServerPort: 6443
"#,
    );
    assert_eq!(l.cluster.networking.api_server_address, "127.0.0.1");
    assert_eq!(l.cluster.networking.api_server_port, 6443);
}

#[test]
fn pod_and_service_subnets() {
    let l = load(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  podSubnet: "10.244.0.0/16"
"#,
    );
    assert_eq!(l.cluster.networking.pod_subnet, "10.244.0.0/16");
    let l = load(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  serviceSubnet: "10.96.0.0/12"
"#,
    );
    assert_eq!(l.cluster.networking.service_subnet, "10.96.0.0/12");
    assert_eq!(l.cluster.networking.pod_subnet, "10.244.0.0/16");
}

#[test]
fn disable_default_cni() {
    let l = load(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  # the default CNI will not be installed
  disableDefaultCNI: true
",
    );
    assert!(l.cluster.networking.disable_default_cni);
    // kind leaves the pod subnet to the user's CNI
    assert_eq!(l.cluster.networking.pod_subnet, "");
}

#[test]
fn kube_proxy_modes() {
    let l = load(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  kubeProxyMode: "ipvs"
"#,
    );
    assert_eq!(l.cluster.networking.kube_proxy_mode, ProxyMode::Ipvs);
    let l = load(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  kubeProxyMode: \"none\"\n",
    );
    assert_eq!(l.cluster.networking.kube_proxy_mode, ProxyMode::None);
    let l = load(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  kubeProxyMode: nftables\n",
    );
    assert_eq!(l.cluster.networking.kube_proxy_mode, ProxyMode::Nftables);
}

#[test]
fn multi_node() {
    let l = load(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
# One control plane node and three "workers".
#
# While these will not add more real compute capacity and
# have limited isolation, this can be useful for testing
# rolling updates etc.
#
# The API-server and other control plane components will be
# on the control-plane node.
#
# You probably don't need this unless you are testing Kubernetes itself.
nodes:
- role: control-plane
- role: worker
- role: worker
- role: worker
"#,
    );
    use NodeRole::*;
    assert_eq!(roles(&l), vec![ControlPlane, Worker, Worker, Worker]);
    assert!(
        l.cluster
            .nodes
            .iter()
            .all(|n| n.image == DEFAULT_NODE_IMAGE)
    );
}

#[test]
fn control_plane_ha_from_quick_start() {
    let l = load(
        "# a cluster with 3 control-plane nodes and 3 workers
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: control-plane
- role: control-plane
- role: worker
- role: worker
- role: worker
",
    );
    use NodeRole::*;
    assert_eq!(
        roles(&l),
        vec![
            ControlPlane,
            ControlPlane,
            ControlPlane,
            Worker,
            Worker,
            Worker
        ]
    );
    let names: Vec<String> = kina::cli::create::node_specs(&l.cluster)
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        names,
        vec![
            "kina-control-plane",
            "kina-control-plane2",
            "kina-control-plane3",
            "kina-worker",
            "kina-worker2",
            "kina-worker3"
        ]
    );
}

#[test]
fn kubernetes_version_by_image() {
    let l = load(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  image: kindest/node:v1.16.4@sha256:b91a2c2317a000f3a783489dfb755064177dbc3a0b2f4147d50f04825d016f55
- role: worker
  image: kindest/node:v1.16.4@sha256:b91a2c2317a000f3a783489dfb755064177dbc3a0b2f4147d50f04825d016f55
",
    );
    for n in &l.cluster.nodes {
        assert_eq!(
            n.image,
            "kindest/node:v1.16.4@sha256:b91a2c2317a000f3a783489dfb755064177dbc3a0b2f4147d50f04825d016f55"
        );
    }
}

#[test]
fn extra_mounts() {
    let l = load(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  # add a mount from /path/to/my/files on the host to /files on the node
  extraMounts:
  - hostPath: /path/to/my/files
    containerPath: /files
  #
  # add an additional mount leveraging *all* of the config fields
  #
  # generally you only need the two fields above ...
  #
  - hostPath: /path/to/my/other-files/
    containerPath: /other-files
    # optional: if set, the mount is read-only.
    # default false
    readOnly: true
    # optional: if set, the mount needs SELinux relabeling.
    # default false
    selinuxRelabel: false
    # optional: set propagation mode (None, HostToContainer or Bidirectional)
    # see https://kubernetes.io/docs/concepts/storage/volumes/#mount-propagation
    # default None
    #
    # WARNING: You very likely do not need this field.
    #
    # This field controls propagation of *additional* mounts created
    # *at runtime* underneath this mount.
    #
    # On MacOS with Docker Desktop, if the mount is from macOS and not the
    # docker desktop VM, you cannot use this field. You can use it for
    # mounts to the linux VM.
    propagation: None
",
    );
    let m = &l.cluster.nodes[0].extra_mounts;
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].host_path, "/path/to/my/files");
    assert_eq!(m[0].container_path, "/files");
    assert!(!m[0].read_only);
    assert_eq!(m[0].propagation, MountPropagation::None);
    assert_eq!(m[1].host_path, "/path/to/my/other-files/");
    assert_eq!(m[1].container_path, "/other-files");
    assert!(m[1].read_only);
    assert!(!m[1].selinux_relabel);
    assert_eq!(m[1].propagation, MountPropagation::None);
}

#[test]
fn extra_port_mappings() {
    let l = load(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  # port forward 80 on the host to 80 on this node
  extraPortMappings:
  - containerPort: 80
    hostPort: 80
    # optional: set the bind address on the host
    # 0.0.0.0 is the current default
    listenAddress: "127.0.0.1"
    # optional: set the protocol to one of TCP, UDP, SCTP.
    # TCP is the default
    protocol: TCP
"#,
    );
    let p = &l.cluster.nodes[0].extra_port_mappings[0];
    assert_eq!((p.container_port, p.host_port), (80, 80));
    assert_eq!(p.listen_address, "127.0.0.1");
    assert_eq!(p.protocol, Protocol::Tcp);
}

#[test]
fn node_port_with_port_mappings() {
    let l = load(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  extraPortMappings:
  - containerPort: 30950
    hostPort: 80
",
    );
    let p = &l.cluster.nodes[0].extra_port_mappings[0];
    assert_eq!((p.container_port, p.host_port), (30950, 80));
    assert_eq!(p.listen_address, "");
    assert_eq!(p.protocol, Protocol::Tcp);
    // the control plane also publishes the API server port
    let spec = &kina::cli::create::node_specs(&l.cluster)[0];
    assert_eq!(spec.ports.len(), 2);
    assert_eq!(spec.ports[1].container_port, 6443);
}

#[test]
fn extra_labels() {
    let l = load(
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
  extraPortMappings:
  - containerPort: 30950
    hostPort: 80
  labels:
    tier: frontend
- role: worker
  labels:
    tier: backend
",
    );
    let n = &l.cluster.nodes;
    assert!(n[0].labels.is_empty());
    assert_eq!(n[1].labels["tier"], "frontend");
    assert_eq!(n[2].labels["tier"], "backend");
    assert_eq!(n[1].extra_port_mappings[0].container_port, 30950);
}

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

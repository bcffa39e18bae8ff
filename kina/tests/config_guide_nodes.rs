//! kind's user guide, nodes (configuration.md and quick-start.md: multi-node, control-plane
//! HA, images, extra mounts, port mappings, labels), written out as kind documents them.

mod config_support;

use config_support::{load, roles};
use kina::config::{DEFAULT_NODE_IMAGE, MountPropagation, NodeRole, Protocol};

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
    let plan = kina::cli::create::plan(&l.cluster);
    let names: Vec<&str> = plan.nodes.iter().map(|s| s.name.as_str()).collect();
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
    // as in kind, an external load balancer takes the API server endpoint and every
    // control plane publishes 6443 on a free loopback port
    let lb = plan.load_balancer.expect("HA clusters get a load balancer");
    assert_eq!(lb.name, "kina-external-load-balancer");
    assert_eq!(
        (lb.listen.listen_address.as_str(), lb.listen.host_port),
        ("127.0.0.1", 0)
    );
    for n in &plan.nodes[..3] {
        assert_eq!(n.ports.len(), 1);
        assert_eq!(n.ports[0].container_port, 6443);
        assert_eq!(n.ports[0].listen_address, "127.0.0.1");
    }
    assert!(plan.nodes[3..].iter().all(|n| n.ports.is_empty()));
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
    let plan = kina::cli::create::plan(&l.cluster);
    assert!(plan.load_balancer.is_none());
    let spec = &plan.nodes[0];
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

//! kind's user guide, cluster-wide options (configuration.md: name, feature gates, runtime
//! config, networking, IPv6 and dual stack), written out as kind documents them.

mod config_support;

use std::path::Path;

use config_support::{load, roles};
use kina::config::{self, DEFAULT_NODE_IMAGE, IpFamily, NodeRole, ProxyMode};

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

//! The `kind.x-k8s.io/v1alpha4` `Cluster` document, field for field as kind defines it.
//!
//! Like kind's Go structs, an empty string means "unset" and is filled in by
//! [`crate::config::defaults`]; enumerations carry their kind default. Every struct
//! rejects unknown fields, as kind's strict decoder does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The only API version kina reads (`kind: Cluster`).
pub const API_VERSION: &str = "kind.x-k8s.io/v1alpha4";
/// The only object kind kina reads.
pub const KIND: &str = "Cluster";

/// A kind cluster configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    /// Always `Cluster`.
    #[serde(default)]
    pub kind: String,
    /// Always `kind.x-k8s.io/v1alpha4`.
    #[serde(default)]
    pub api_version: String,
    /// Cluster name; `--name` overrides it, it defaults to `kina`.
    #[serde(default)]
    pub name: String,
    /// The nodes; one control-plane node when empty.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// Cluster-wide network settings.
    #[serde(default)]
    pub networking: Networking,
    /// Kubernetes feature gates passed to every component.
    #[serde(default)]
    pub feature_gates: BTreeMap<String, bool>,
    /// kube-apiserver `--runtime-config` entries.
    #[serde(default)]
    pub runtime_config: BTreeMap<String, String>,
    /// Merge patches (YAML strings) for the generated kubeadm config.
    #[serde(default)]
    pub kubeadm_config_patches: Vec<String>,
    /// RFC 6902 patches for the generated kubeadm config.
    #[serde(default, rename = "kubeadmConfigPatchesJSON6902")]
    pub kubeadm_config_patches_json6902: Vec<PatchJson6902>,
    /// containerd TOML merge patches; see [`crate::config::containerd`].
    #[serde(default)]
    pub containerd_config_patches: Vec<String>,
    /// RFC 6902 patches for containerd's config; they have no cri-server meaning.
    #[serde(default, rename = "containerdConfigPatchesJSON6902")]
    pub containerd_config_patches_json6902: Vec<String>,
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// control-plane (the default) or worker.
    #[serde(default)]
    pub role: NodeRole,
    /// Node image; the default node image when empty.
    #[serde(default)]
    pub image: String,
    /// Kubernetes labels of the node.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Host paths bind-mounted into the node.
    #[serde(default)]
    pub extra_mounts: Vec<Mount>,
    /// Host ports forwarded to the node.
    #[serde(default)]
    pub extra_port_mappings: Vec<PortMapping>,
    /// Node-level kubeadm merge patches, applied after the cluster-level ones.
    #[serde(default)]
    pub kubeadm_config_patches: Vec<String>,
    /// Node-level kubeadm RFC 6902 patches.
    #[serde(default, rename = "kubeadmConfigPatchesJSON6902")]
    pub kubeadm_config_patches_json6902: Vec<PatchJson6902>,
}

/// The role of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum NodeRole {
    /// Runs the control plane (and workloads in single-node clusters).
    #[default]
    #[serde(rename = "control-plane")]
    ControlPlane,
    /// Runs workloads only.
    #[serde(rename = "worker")]
    Worker,
}

impl NodeRole {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::ControlPlane => "control-plane",
            NodeRole::Worker => "worker",
        }
    }
}

/// Cluster-wide network settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Networking {
    /// ipv4 (default), ipv6 or dual.
    #[serde(default, rename = "ipFamily")]
    pub ip_family: IpFamily,
    /// Host port of the API server; 0 picks a free port, -1 lets the backend pick.
    #[serde(default, rename = "apiServerPort")]
    pub api_server_port: i32,
    /// Host address of the API server (127.0.0.1, or ::1 for ipv6).
    #[serde(default, rename = "apiServerAddress")]
    pub api_server_address: String,
    /// Pod CIDR(s), comma separated for dual stack.
    #[serde(default)]
    pub pod_subnet: String,
    /// Service CIDR(s), comma separated for dual stack.
    #[serde(default)]
    pub service_subnet: String,
    /// Do not install the default CNI.
    #[serde(default, rename = "disableDefaultCNI")]
    pub disable_default_cni: bool,
    /// kube-proxy mode.
    #[serde(default)]
    pub kube_proxy_mode: ProxyMode,
    /// DNS search domains of the nodes; inherited from the host when unset.
    #[serde(default, rename = "dnsSearch")]
    pub dns_search: Option<Vec<String>>,
}

/// The cluster's IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    /// IPv4 only (the default).
    #[default]
    Ipv4,
    /// IPv6 only.
    Ipv6,
    /// IPv4 and IPv6.
    Dual,
}

impl IpFamily {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::Ipv4 => "ipv4",
            IpFamily::Ipv6 => "ipv6",
            IpFamily::Dual => "dual",
        }
    }
}

/// kube-proxy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// iptables (the default).
    #[default]
    Iptables,
    /// IPVS.
    Ipvs,
    /// nftables.
    Nftables,
    /// No kube-proxy at all.
    None,
}

/// An RFC 6902 patch with its target, as kustomize takes it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchJson6902 {
    /// API group of the target object.
    #[serde(default)]
    pub group: String,
    /// API version of the target object.
    #[serde(default)]
    pub version: String,
    /// Kind of the target object.
    #[serde(default)]
    pub kind: String,
    /// The patch operations, as a YAML or JSON string.
    #[serde(default)]
    pub patch: String,
}

/// A host path mounted into a node.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mount {
    /// Path inside the node.
    #[serde(default)]
    pub container_path: String,
    /// Path on the host; relative paths are taken from the current directory.
    #[serde(default)]
    pub host_path: String,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Relabel for SELinux.
    #[serde(default)]
    pub selinux_relabel: bool,
    /// Mount propagation.
    #[serde(default)]
    pub propagation: MountPropagation,
}

/// Mount propagation, with the CRI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MountPropagation {
    /// private (the default).
    #[default]
    None,
    /// rslave.
    HostToContainer,
    /// rshared.
    Bidirectional,
}

/// A host port forwarded to a node port.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMapping {
    /// Port inside the node.
    #[serde(default)]
    pub container_port: i32,
    /// Port on the host; 0 picks a free port, -1 lets the backend pick.
    #[serde(default)]
    pub host_port: i32,
    /// Host address to listen on; all addresses (0.0.0.0) when empty.
    #[serde(default)]
    pub listen_address: String,
    /// TCP (the default), UDP or SCTP.
    #[serde(default)]
    pub protocol: Protocol,
}

/// Port mapping protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

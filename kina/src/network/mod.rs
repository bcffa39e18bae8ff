//! Cluster networking on the host: bridge, veths, address allocation, NAT and port mappings.
//!
//! Every cluster gets its own Linux bridge (`kina-<hash>`) holding the gateway address of a node
//! subnet chosen not to overlap any host route, host address or other kina cluster (IPv4, IPv6 or
//! both). Each node gets a veth pair: the host end is a bridge port, the other end is moved into
//! the node's network namespace as `eth0` with an address leased from the subnet and a default
//! route via the bridge. Leases, published ports and host sysctl changes are persisted under
//! `<state_dir>/network/` and guarded by a lock, so allocations survive restarts.
//!
//! All packet filtering lives in one nftables table per cluster, `table inet kina-<cluster>`:
//! masquerade for egress, DNAT for `extraPortMappings` and the API server port (also for
//! connections to 127.0.0.1, see [`nat`]), and forward accepts. Deleting a cluster deletes that
//! table, so exactly its rules go and nothing else on the host is touched.
//!
//! [`NetworkHost`] runs every operation in the caller's network namespace or, for tests and
//! nested setups, in a named one ([`NetworkHost::in_netns`]).

mod bridge;
mod convert;
mod error;
mod host;
mod ipam;
mod names;
pub mod nat;
mod netns;
mod ports;
mod state;
mod subnet;
mod sysctl;
mod veth;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ipnetwork::{Ipv4Network, Ipv6Network};
use serde::{Deserialize, Serialize};

pub use convert::API_SERVER_CONTAINER_PORT;
pub use error::NetworkError;
pub use host::NetworkHost;
pub use ports::{PortMapping, Protocol, PublishedPort};
pub use sysctl::SysctlChange;

/// IP families of a cluster network, spelled like kind's `networking.ipFamily`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    /// IPv4 only.
    Ipv4,
    /// IPv6 only.
    Ipv6,
    /// IPv4 and IPv6.
    Dual,
}

impl IpFamily {
    /// Whether nodes get an IPv4 address.
    pub fn has_v4(self) -> bool {
        matches!(self, Self::Ipv4 | Self::Dual)
    }

    /// Whether nodes get an IPv6 address.
    pub fn has_v6(self) -> bool {
        matches!(self, Self::Ipv6 | Self::Dual)
    }
}

impl std::fmt::Display for IpFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
            Self::Dual => "dual",
        })
    }
}

/// A cluster's network as created on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNetwork {
    /// Cluster name.
    pub name: String,
    /// Families in use.
    pub family: IpFamily,
    /// Bridge interface on the host (at most 15 bytes).
    pub bridge: String,
    /// IPv4 node subnet (network address and prefix).
    pub v4: Option<Ipv4Network>,
    /// IPv6 node subnet.
    pub v6: Option<Ipv6Network>,
    /// IPv4 address of the bridge, the nodes' default gateway.
    pub gateway4: Option<Ipv4Addr>,
    /// IPv6 address of the bridge.
    pub gateway6: Option<Ipv6Addr>,
}

/// What a node got when it was attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddresses {
    /// Node name.
    pub node: String,
    /// Host end of the node's veth pair (a port of the cluster bridge).
    pub host_veth: String,
    /// Name of the interface inside the node.
    pub interface: String,
    /// Leased IPv4 address (prefix as in [`ClusterNetwork::v4`]).
    pub ipv4: Option<Ipv4Addr>,
    /// Leased IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
}

/// Creates (or re-creates after a reboot) the network of `cluster` in the current namespace.
/// See [`NetworkHost::ensure_cluster_network`].
pub async fn ensure_cluster_network(
    state_dir: &Path,
    cluster: &str,
    family: IpFamily,
) -> Result<ClusterNetwork, NetworkError> {
    NetworkHost::new(state_dir)
        .ensure_cluster_network(cluster, family)
        .await
}

/// Attaches a node whose network namespace is `netns`. See [`NetworkHost::attach_node`].
pub async fn attach_node(
    state_dir: &Path,
    net: &ClusterNetwork,
    node: &str,
    netns: &Path,
) -> Result<NodeAddresses, NetworkError> {
    NetworkHost::new(state_dir)
        .attach_node(net, node, netns)
        .await
}

/// Detaches a node and releases its lease and ports. See [`NetworkHost::detach_node`].
pub async fn detach_node(
    state_dir: &Path,
    net: &ClusterNetwork,
    node: &str,
) -> Result<(), NetworkError> {
    NetworkHost::new(state_dir).detach_node(net, node).await
}

/// Publishes a node's ports on the host. See [`NetworkHost::publish_ports`].
pub async fn publish_ports(
    state_dir: &Path,
    net: &ClusterNetwork,
    node: &str,
    mappings: &[PortMapping],
) -> Result<Vec<PublishedPort>, NetworkError> {
    NetworkHost::new(state_dir)
        .publish_ports(net, node, mappings)
        .await
}

/// Removes everything of a cluster's network. See [`NetworkHost::delete_cluster_network`].
pub async fn delete_cluster_network(state_dir: &Path, cluster: &str) -> Result<(), NetworkError> {
    NetworkHost::new(state_dir)
        .delete_cluster_network(cluster)
        .await
}

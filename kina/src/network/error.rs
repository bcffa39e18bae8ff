//! Errors of the cluster-network module, each naming the cluster, node, interface, path or rule it
//! concerns.

use std::net::IpAddr;
use std::path::PathBuf;

use super::ports::Protocol;

/// Everything that can go wrong while setting up or tearing down a cluster's network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A cluster or node name cannot be used for interface names, nft tables or state files.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// "cluster" or "node".
        what: &'static str,
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Reading, writing or locking network state on disk failed.
    #[error("network state {path}: {source}")]
    State {
        /// File or directory concerned.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// A state file exists but does not parse.
    #[error("network state {path} is corrupt: {source}")]
    StateFormat {
        /// The corrupt file.
        path: PathBuf,
        /// Parse error.
        source: serde_json::Error,
    },
    /// Entering a network namespace failed.
    #[error("network namespace {path}: {source}")]
    Netns {
        /// Namespace file (e.g. `/var/run/netns/x` or `/proc/<pid>/ns/net`).
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The worker thread that runs namespace-bound operations could not run.
    #[error("network worker thread: {0}")]
    Worker(String),
    /// A netlink request failed.
    #[error("netlink: {op}: {source}")]
    Netlink {
        /// What was being done, with the interface concerned.
        op: String,
        /// The netlink error.
        source: rtnetlink::Error,
    },
    /// Every candidate subnet of a family overlaps a host route or another cluster.
    #[error(
        "no free IPv{family} subnet for cluster {cluster}: every candidate overlaps a host route, address or another cluster"
    )]
    NoFreeSubnet {
        /// Cluster being created.
        cluster: String,
        /// 4 or 6.
        family: u8,
    },
    /// The node subnet has no address left.
    #[error("subnet {subnet} of cluster {cluster} has no free address left")]
    AddressesExhausted {
        /// Cluster concerned.
        cluster: String,
        /// The exhausted subnet.
        subnet: String,
    },
    /// The cluster has no network state (it was never created or was deleted).
    #[error("cluster {cluster} has no network (create it first)")]
    ClusterNotFound {
        /// Cluster concerned.
        cluster: String,
    },
    /// The node is not attached to the cluster network.
    #[error("node {node} is not attached to the network of cluster {cluster}")]
    NodeNotAttached {
        /// Cluster concerned.
        cluster: String,
        /// Node concerned.
        node: String,
    },
    /// The cluster exists with another IP family.
    #[error("cluster {cluster} network exists as {existing}, cannot reuse it as {requested}")]
    FamilyMismatch {
        /// Cluster concerned.
        cluster: String,
        /// Family on record.
        existing: String,
        /// Family asked for.
        requested: String,
    },
    /// `nft` could not be started.
    #[error("cannot run nft (install nftables): {0}")]
    NftSpawn(std::io::Error),
    /// `nft` rejected a ruleset.
    #[error("nft {op} for cluster {cluster} failed: {stderr}")]
    Nft {
        /// Cluster whose table was being changed.
        cluster: String,
        /// "apply" or "delete".
        op: &'static str,
        /// What nft printed.
        stderr: String,
    },
    /// A sysctl could not be read or written.
    #[error("sysctl {key}: {source}")]
    Sysctl {
        /// Sysctl path below /proc/sys.
        key: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// A port mapping is malformed.
    #[error("extraPortMappings[{index}] of node {node}: {reason}")]
    InvalidPortMapping {
        /// Node concerned.
        node: String,
        /// Index in the node's mapping list.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The host port is already taken by a host socket or another mapping.
    #[error("host port {address}:{port}/{protocol} is already in use ({by})")]
    PortInUse {
        /// Protocol of the mapping.
        protocol: Protocol,
        /// Listen address.
        address: IpAddr,
        /// Host port.
        port: u16,
        /// Who holds it.
        by: String,
    },
}

impl NetworkError {
    /// Wraps a netlink error with a description of the operation.
    pub(crate) fn netlink(op: impl Into<String>, source: rtnetlink::Error) -> Self {
        Self::Netlink {
            op: op.into(),
            source,
        }
    }

    /// Wraps a state I/O error with its path.
    pub(crate) fn state(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::State {
            path: path.into(),
            source,
        }
    }
}

/// The errno carried by a netlink error, if any (positive, e.g. `libc::ENODEV`-like values).
pub(crate) fn netlink_errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => Some(msg.raw_code().abs()),
        _ => None,
    }
}

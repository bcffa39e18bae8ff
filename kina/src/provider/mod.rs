//! The seam between cluster logic and whatever runs node containers.
//!
//! A [`Provider`] creates, lists and deletes the node containers of a cluster; a [`Node`]
//! is one running node: exec in it (output and exit status), its addresses, loading an
//! image archive into its runtime, collecting its logs. The CLI only talks to these
//! traits, so the native provider (nodes on kina's runtime) slots in without touching
//! the commands. [`store::StoreProvider`] is the provider of builds without node
//! machinery: it knows clusters from the state store and refuses what needs a runtime.

pub mod native;
pub mod store;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{IpFamily, Mount, NodeRole, PortMapping};
use crate::state::StateError;

/// Errors of providers and nodes.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// This build has no node runtime to do `operation` with.
    #[error("the native node provider is not available in this build (cannot {operation})")]
    Unavailable {
        /// What was asked, e.g. "create node containers".
        operation: String,
    },
    /// Reading or writing cluster state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A file the operation needs is missing or unreadable.
    #[error("{}: {error}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        error: std::io::Error,
    },
    /// The native provider failed (runtime, images, networking).
    #[error(transparent)]
    Native(Box<native::NativeError>),
    /// The node runtime failed.
    #[error("{message}")]
    Node {
        /// The node.
        node: String,
        /// What failed.
        message: String,
    },
}

/// What a node container is for: a Kubernetes node of either role, or (in clusters
/// with several control planes) the external load balancer in front of their API
/// servers, as in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A control-plane node.
    ControlPlane,
    /// A worker node.
    Worker,
    /// The API server load balancer of a multi-control-plane cluster.
    ExternalLoadBalancer,
}

impl Role {
    /// kind's spelling, also the node-name stem.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
            Role::ExternalLoadBalancer => "external-load-balancer",
        }
    }
}

impl From<NodeRole> for Role {
    fn from(r: NodeRole) -> Self {
        match r {
            NodeRole::ControlPlane => Role::ControlPlane,
            NodeRole::Worker => Role::Worker,
        }
    }
}

/// The API server load balancer of a cluster with several control planes.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancerSpec {
    /// Cluster it belongs to.
    pub cluster: String,
    /// Container name, `<cluster>-external-load-balancer`.
    pub name: String,
    /// The cluster's API server endpoint on the host (`apiServerAddress:apiServerPort`).
    pub listen: PortMapping,
    /// IP family of the cluster network.
    pub ip_family: IpFamily,
}

/// What a node container is created from.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// Cluster the node belongs to.
    pub cluster: String,
    /// Node (container and host) name.
    pub name: String,
    /// Role (a Kubernetes node role).
    pub role: Role,
    /// Node image.
    pub image: String,
    /// Extra host mounts.
    pub mounts: Vec<Mount>,
    /// Published ports (control planes include the API server's 6443).
    pub ports: Vec<PortMapping>,
    /// Kubernetes labels.
    pub labels: BTreeMap<String, String>,
    /// IP family of the cluster network.
    pub ip_family: IpFamily,
}

/// Result of a command run in a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
    /// Exit status (128+N when killed by signal N).
    pub status: i32,
}

/// A node's addresses on the cluster network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeNetwork {
    /// IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
}

/// One node container.
pub trait Node: fmt::Debug + Send + Sync {
    /// Node name.
    fn name(&self) -> &str;
    /// What the container is for.
    fn role(&self) -> Role;
    /// Run `argv` in the node, feeding `stdin`, and wait for it.
    fn exec(&self, argv: &[String], stdin: Option<&[u8]>) -> Result<ExecOutput, ProviderError>;
    /// Run `argv` in the node attached to this process's stdio (stdin only with `stdin`,
    /// a terminal with `tty`, as `docker exec -it`); returns its exit status.
    fn exec_interactive(
        &self,
        argv: &[String],
        tty: bool,
        stdin: bool,
    ) -> Result<i32, ProviderError>;
    /// The node's addresses.
    fn network(&self) -> Result<NodeNetwork, ProviderError>;
    /// Import an image archive (docker-archive or OCI tar) into the node's runtime.
    fn load_image_archive(&self, archive: &Path) -> Result<(), ProviderError>;
    /// Write the node's logs (journal, runtime, pods) into `dir`, creating it.
    fn collect_logs(&self, dir: &Path) -> Result<(), ProviderError>;
}

/// Creates, finds and deletes node containers.
pub trait Provider: Send + Sync {
    /// Make `image` available to create nodes from.
    fn ensure_image(&self, image: &str) -> Result<(), ProviderError>;
    /// Create and start node containers. On error, what was made so far stays recorded
    /// for the caller to delete (or keep, with `--retain`).
    fn create_nodes(&self, specs: &[NodeSpec]) -> Result<Vec<Box<dyn Node>>, ProviderError>;
    /// Create and start the API server load balancer, forwarding to the control planes.
    fn create_load_balancer(
        &self,
        spec: &LoadBalancerSpec,
        control_planes: &[&dyn Node],
    ) -> Result<Box<dyn Node>, ProviderError>;
    /// Names of the clusters, sorted.
    fn list_clusters(&self) -> Result<Vec<String>, ProviderError>;
    /// Nodes of a cluster, sorted by name.
    fn list_nodes(&self, cluster: &str) -> Result<Vec<Box<dyn Node>>, ProviderError>;
    /// Stop and remove node containers and everything they own; with no nodes left, the
    /// cluster itself is gone (an empty `nodes` removes a cluster that has none).
    fn delete_nodes(&self, cluster: &str, nodes: &[String]) -> Result<(), ProviderError>;
}

/// Node names the way kind names them: `<cluster>-control-plane`, `…-control-plane2`,
/// `<cluster>-worker`, `…-worker2`, `<cluster>-external-load-balancer`, in order.
pub fn node_names(cluster: &str, roles: &[Role]) -> Vec<String> {
    let mut counts = BTreeMap::new();
    roles
        .iter()
        .map(|role| {
            let n = counts.entry(role.as_str()).or_insert(0u32);
            *n += 1;
            if *n == 1 {
                format!("{cluster}-{}", role.as_str())
            } else {
                format!("{cluster}-{}{n}", role.as_str())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_kind() {
        use Role::*;
        assert_eq!(
            node_names(
                "kind",
                &[
                    ControlPlane,
                    Worker,
                    ControlPlane,
                    Worker,
                    Worker,
                    ExternalLoadBalancer
                ]
            ),
            vec![
                "kind-control-plane",
                "kind-worker",
                "kind-control-plane2",
                "kind-worker2",
                "kind-worker3",
                "kind-external-load-balancer"
            ]
        );
    }
}

//! [`NetworkHost`]: the operations the provider calls, each run under the state lock on a worker
//! thread inside the host's (or a chosen) network namespace.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use rtnetlink::Handle;

use super::error::NetworkError;
use super::ports::{self, PortMapping, PublishedPort};
use super::state::{ClusterRecord, NodeRecord, Store};
use super::{ClusterNetwork, IpFamily, NodeAddresses};
use super::{bridge, ipam, names, nat, netns, subnet, sysctl, veth};

/// Where cluster networks live: a state directory and the network namespace acting as host.
#[derive(Debug, Clone)]
pub struct NetworkHost {
    state_dir: PathBuf,
    netns: Option<PathBuf>,
}

impl NetworkHost {
    /// Networks in the caller's namespace, state under `<state_dir>/network/`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            netns: None,
        }
    }

    /// Runs every operation inside the network namespace at `netns` (a file such as
    /// `/var/run/netns/<name>` or `/proc/<pid>/ns/net`) instead of the caller's.
    pub fn in_netns(mut self, netns: impl Into<PathBuf>) -> Self {
        self.netns = Some(netns.into());
        self
    }

    async fn run<F, Fut, T>(&self, op: F) -> Result<T, NetworkError>
    where
        F: FnOnce(Store, Handle) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, NetworkError>>,
        T: Send + 'static,
    {
        let state_dir = self.state_dir.clone();
        netns::run_in(self.netns.clone(), move || async move {
            let store = Store::lock(&state_dir)?;
            let handle = netns::connect()?;
            op(store, handle).await
        })
        .await
    }

    /// Creates the network of `cluster` — bridge with gateway addresses from a subnet that
    /// overlaps nothing on the host, forwarding, the cluster's nft table — or re-creates
    /// whatever of it is missing (e.g. after a reboot). Idempotent.
    pub async fn ensure_cluster_network(
        &self,
        cluster: &str,
        family: IpFamily,
    ) -> Result<ClusterNetwork, NetworkError> {
        names::validate("cluster", cluster)?;
        let cluster = cluster.to_string();
        self.run(move |store, handle| async move {
            if let Some(record) = store.load(&cluster)? {
                if record.network.family != family {
                    return Err(NetworkError::FamilyMismatch {
                        cluster,
                        existing: record.network.family.to_string(),
                        requested: family.to_string(),
                    });
                }
                bring_up(&store, &handle, &record).await?;
                return Ok(record.network);
            }
            let record = ClusterRecord::new(plan(&store, &handle, &cluster, family).await?);
            store.save(&record)?;
            if let Err(err) = bring_up(&store, &handle, &record).await {
                if let Err(cleanup) = teardown(&store, &handle, &cluster).await {
                    tracing::warn!(%cluster, error = %cleanup, "cleanup after failed network creation");
                }
                return Err(err);
            }
            tracing::info!(%cluster, v4 = ?record.network.v4, v6 = ?record.network.v6, "cluster network ready");
            Ok(record.network)
        })
        .await
    }

    /// Connects the node whose network namespace is `node_netns`: a veth pair whose host end
    /// joins the bridge and whose other end becomes `eth0` in the node, with a leased address
    /// per family and default routes via the bridge. Re-attaching keeps the node's lease.
    pub async fn attach_node(
        &self,
        net: &ClusterNetwork,
        node: &str,
        node_netns: &Path,
    ) -> Result<NodeAddresses, NetworkError> {
        names::validate("node", node)?;
        let (cluster, node, node_netns) =
            (net.name.clone(), node.to_string(), node_netns.to_path_buf());
        self.run(move |store, handle| async move {
            let mut record = load(&store, &cluster)?;
            let lease = ipam::lease(&record, &node)?;
            let is_new = !record.nodes.contains_key(&node);
            if is_new {
                record.nodes.insert(
                    node.clone(),
                    NodeRecord {
                        addresses: lease.clone(),
                        ports: Vec::new(),
                    },
                );
                store.save(&record)?;
            }
            let plugged = plug(&handle, &record, &lease, &node_netns).await;
            if let Err(err) = plugged {
                if let Err(e) = bridge::delete_link(&handle, &lease.host_veth).await {
                    tracing::warn!(%node, error = %e, "cleanup of veth after failed attach");
                }
                if is_new {
                    record.nodes.remove(&node);
                    store.save(&record)?;
                }
                return Err(err);
            }
            tracing::info!(%cluster, %node, ipv4 = ?lease.ipv4, ipv6 = ?lease.ipv6, "node attached");
            Ok(lease)
        })
        .await
    }

    /// Disconnects a node: removes its veth pair, releases its lease and unpublishes its ports.
    /// Idempotent.
    pub async fn detach_node(&self, net: &ClusterNetwork, node: &str) -> Result<(), NetworkError> {
        names::validate("node", node)?;
        let (cluster, node) = (net.name.clone(), node.to_string());
        self.run(move |store, handle| async move {
            bridge::delete_link(&handle, &names::host_veth(&cluster, &node)).await?;
            let Some(mut record) = store.load(&cluster)? else {
                return Ok(());
            };
            if record.nodes.remove(&node).is_some() {
                nat::apply(&record)?;
                store.save(&record)?;
                tracing::info!(%cluster, %node, "node detached");
            }
            Ok(())
        })
        .await
    }

    /// Sets the published ports of `node` to `mappings` (replacing its previous set) and returns
    /// what was published. Host port 0 picks a free port, which is kept on later calls. For a
    /// control-plane node include [`PortMapping::api_server`] (127.0.0.1 → 6443 by default).
    pub async fn publish_ports(
        &self,
        net: &ClusterNetwork,
        node: &str,
        mappings: &[PortMapping],
    ) -> Result<Vec<PublishedPort>, NetworkError> {
        names::validate("node", node)?;
        let (cluster, node, mappings) = (net.name.clone(), node.to_string(), mappings.to_vec());
        self.run(move |store, _handle| async move {
            let mut record = load(&store, &cluster)?;
            let Some(current) = record.nodes.get(&node) else {
                return Err(NetworkError::NodeNotAttached { cluster, node });
            };
            let mut others = Vec::new();
            for other in store.all()? {
                let other = if other.network.name == cluster {
                    record.clone()
                } else {
                    other
                };
                for (name, n) in &other.nodes {
                    if other.network.name != cluster || *name != node {
                        others.extend(
                            n.ports
                                .iter()
                                .map(|p| (other.network.name.clone(), p.clone())),
                        );
                    }
                }
            }
            let published = ports::resolve(&current.addresses, &mappings, &current.ports, &others)?;
            if let Some(entry) = record.nodes.get_mut(&node) {
                entry.ports = published.clone();
            }
            nat::apply(&record)?;
            store.save(&record)?;
            Ok(published)
        })
        .await
    }

    /// Removes the cluster's bridge, every veth on it, its nft table and its leases; restores
    /// host sysctls when no cluster is left. Works without state too. Idempotent.
    pub async fn delete_cluster_network(&self, cluster: &str) -> Result<(), NetworkError> {
        names::validate("cluster", cluster)?;
        let cluster = cluster.to_string();
        self.run(move |store, handle| async move { teardown(&store, &handle, &cluster).await })
            .await
    }

    /// The network of `cluster` on record, if any.
    pub fn cluster_network(&self, cluster: &str) -> Result<Option<ClusterNetwork>, NetworkError> {
        names::validate("cluster", cluster)?;
        Ok(Store::lock(&self.state_dir)?
            .load(cluster)?
            .map(|r| r.network))
    }

    /// Leases and published ports of every node of `cluster`, by node name.
    pub fn nodes(
        &self,
        cluster: &str,
    ) -> Result<BTreeMap<String, (NodeAddresses, Vec<PublishedPort>)>, NetworkError> {
        names::validate("cluster", cluster)?;
        let record = load(&Store::lock(&self.state_dir)?, cluster)?;
        Ok(record
            .nodes
            .into_iter()
            .map(|(name, n)| (name, (n.addresses, n.ports)))
            .collect())
    }
}

fn load(store: &Store, cluster: &str) -> Result<ClusterRecord, NetworkError> {
    store
        .load(cluster)?
        .ok_or_else(|| NetworkError::ClusterNotFound {
            cluster: cluster.to_string(),
        })
}

/// Picks bridge name and subnets for a new cluster.
async fn plan(
    store: &Store,
    handle: &Handle,
    cluster: &str,
    family: IpFamily,
) -> Result<ClusterNetwork, NetworkError> {
    let bridge = names::bridge(cluster);
    // A bridge without state is a leftover of lost state; its subnet would be "in use".
    if bridge::delete_link(handle, &bridge).await? {
        tracing::warn!(%cluster, %bridge, "removed a leftover bridge with no state");
    }
    let mut used = subnet::host_networks(handle).await?;
    for other in store.all()? {
        used.v4.extend(other.network.v4);
        used.v6.extend(other.network.v6);
    }
    let no_subnet = |family| NetworkError::NoFreeSubnet {
        cluster: cluster.to_string(),
        family,
    };
    let v4 = match family.has_v4() {
        true => Some(subnet::choose_v4(&used.v4).ok_or_else(|| no_subnet(4))?),
        false => None,
    };
    let v6 = match family.has_v6() {
        true => Some(subnet::choose_v6(&used.v6).ok_or_else(|| no_subnet(6))?),
        false => None,
    };
    Ok(ClusterNetwork {
        name: cluster.to_string(),
        family,
        bridge,
        v4,
        v6,
        gateway4: v4.map(ipam::gateway4),
        gateway6: v6.map(ipam::gateway6),
    })
}

/// Makes the host match the record: bridge, sysctls, nft table.
async fn bring_up(
    store: &Store,
    handle: &Handle,
    record: &ClusterRecord,
) -> Result<(), NetworkError> {
    let net = &record.network;
    bridge::ensure(handle, net).await?;
    if net.v4.is_some() {
        sysctl::enable_route_localnet(&net.bridge)?;
    }
    let changes = sysctl::enable_forwarding(net.family)?;
    if !changes.is_empty() {
        let mut host = store.host()?;
        for change in changes {
            if !host.sysctls.iter().any(|c| c.key == change.key) {
                host.sysctls.push(change);
            }
        }
        store.save_host(&host)?;
    }
    nat::apply(record)
}

/// Creates the node's veth pair and configures the node side.
async fn plug(
    handle: &Handle,
    record: &ClusterRecord,
    lease: &NodeAddresses,
    node_netns: &Path,
) -> Result<(), NetworkError> {
    let net = &record.network;
    let bridge_index = bridge::ensure(handle, net).await?;
    let file = File::open(node_netns).map_err(|source| NetworkError::Netns {
        path: node_netns.to_path_buf(),
        source,
    })?;
    let peer = names::peer_veth(&net.name, &lease.node);
    veth::create(handle, bridge_index, &lease.host_veth, &peer, &file).await?;
    let (lease, net) = (lease.clone(), net.clone());
    netns::run_in(Some(node_netns.to_path_buf()), move || async move {
        let handle = netns::connect()?;
        veth::configure_node(&handle, &peer, &lease, &net).await
    })
    .await
}

/// Deletes everything of `cluster`, with or without a record.
async fn teardown(store: &Store, handle: &Handle, cluster: &str) -> Result<(), NetworkError> {
    let record = store.load(cluster)?;
    let bridge_name = record
        .as_ref()
        .map_or_else(|| names::bridge(cluster), |r| r.network.bridge.clone());
    for node in record.iter().flat_map(|r| r.nodes.values()) {
        bridge::delete_link(handle, &node.addresses.host_veth).await?;
    }
    if let Some(index) = bridge::link_index(handle, &bridge_name).await? {
        for port in bridge::ports_of(handle, index).await? {
            bridge::delete_link(handle, &port).await?;
        }
        bridge::delete_link(handle, &bridge_name).await?;
    }
    nat::delete(cluster)?;
    store.remove(cluster)?;
    if store.all()?.is_empty() {
        let host = store.host()?;
        sysctl::restore(&host.sysctls)?;
        store.save_host(&Default::default())?;
    }
    tracing::info!(%cluster, "cluster network deleted");
    Ok(())
}

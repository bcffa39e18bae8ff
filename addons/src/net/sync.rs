//! [`NetSync`]: one pass of kina-net over a node list — CNI config for this node, routes to
//! the others, masquerade rules — in the network namespace its netlink handle was opened in.
//! The node list is an input, so the whole pass runs for real in tests without a cluster.

use std::collections::BTreeSet;
use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;

use super::config::NetConfig;
use super::conflist::{self, ConflistError, ConflistInputs, ConflistWriter};
use super::masq::{self, MasqError, Masquerader};
use super::node::NodeInfo;
use super::routes::{self, RouteError, RouteTable};

/// One part of a pass that failed; the other parts still ran.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("CNI config {0}")]
    Conflist(#[from] ConflistError),
    #[error("routes: {0}")]
    Route(#[from] RouteError),
    #[error("masquerade: {0}")]
    Masq(#[from] MasqError),
}

/// What a pass changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub conflist_written: bool,
    pub routes_added: usize,
    pub routes_removed: usize,
    pub masq_applied: bool,
}

/// kina-net's state between passes.
#[derive(Debug)]
pub struct NetSync {
    config: NetConfig,
    handle: Handle,
    routes: RouteTable,
    conflist: ConflistWriter,
    masq: Masquerader,
}

impl NetSync {
    /// A syncer writing the CNI config at `conflist_path`, running `nft` for the masquerade
    /// table and changing routes through `handle`.
    pub fn new(
        config: NetConfig,
        handle: Handle,
        conflist_path: impl Into<std::path::PathBuf>,
        nft: impl Into<std::path::PathBuf>,
    ) -> Self {
        Self {
            config,
            routes: RouteTable::new(handle.clone()),
            handle,
            conflist: ConflistWriter::new(conflist_path),
            masq: Masquerader::new(nft),
        }
    }

    /// Brings config, routes and rules in line with `nodes`. `force` re-applies the masquerade
    /// table even when unchanged (periodic resync). Every part runs; failures are returned.
    pub async fn sync(&mut self, nodes: &[NodeInfo], force: bool) -> (SyncReport, Vec<SyncError>) {
        let mut report = SyncReport::default();
        let mut errors = Vec::new();

        match nodes.iter().find(|n| n.name == self.config.node_name) {
            Some(me) if !me.pod_cidrs.is_empty() => {
                let mtu = self.uplink_mtu(&me.internal_ips).await;
                let inputs = ConflistInputs::new(me.pod_cidrs.clone(), mtu);
                match conflist::render(&inputs).and_then(|text| self.conflist.write(&text)) {
                    Ok(written) => {
                        if written {
                            tracing::info!(path = %self.conflist.path().display(), cidrs = ?me.pod_cidrs, ?mtu, "wrote CNI config");
                        }
                        report.conflist_written = written;
                    }
                    Err(e) => errors.push(e.into()),
                }
            }
            Some(_) => {
                tracing::info!(node = %self.config.node_name, "node has no pod CIDR yet; waiting")
            }
            None => {
                tracing::info!(node = %self.config.node_name, "own Node object not seen yet; waiting")
            }
        }

        let (desired, skipped) = routes::desired(&self.config.node_name, nodes);
        for s in skipped {
            tracing::warn!("{s}");
        }
        match self.routes.sync(&desired).await {
            Ok((diff, failed)) => {
                report.routes_added = diff.add.len();
                report.routes_removed = diff.remove.len();
                errors.extend(failed.into_iter().map(SyncError::from));
            }
            Err(e) => errors.push(e.into()),
        }

        let node_ips: BTreeSet<IpAddr> = nodes
            .iter()
            .flat_map(|n| n.internal_ips.iter().copied())
            .collect();
        let script = masq::render(&self.config.pod_subnets, &node_ips);
        match self.masq.apply(&script, force) {
            Ok(applied) => report.masq_applied = applied,
            Err(e) => errors.push(e.into()),
        }
        (report, errors)
    }

    /// MTU of the interface holding one of this node's InternalIPs (kindnet uses eth0's), so
    /// pod packets are never larger than what the node can send on.
    async fn uplink_mtu(&self, ips: &[IpAddr]) -> Option<u32> {
        let mut addrs = self.handle.address().get().execute();
        let mut index = None;
        while let Ok(Some(msg)) = addrs.try_next().await {
            let holds = msg.attributes.iter().any(|a| match a {
                AddressAttribute::Address(ip) | AddressAttribute::Local(ip) => ips.contains(ip),
                _ => false,
            });
            if holds {
                index = Some(msg.header.index);
                break;
            }
        }
        let mut links = self.handle.link().get().match_index(index?).execute();
        let link = links.try_next().await.ok()??;
        link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        })
    }
}

//! Routes to the other nodes' pod CIDRs via their InternalIPs (what kindnetd's `syncRoute`
//! does), kept in the main table with protocol [`ROUTE_PROTOCOL`] so kina-net recognises its
//! own routes after a restart: a route of ours whose node is gone or moved is removed, and a
//! route to a pod CIDR is replaced when its gateway changes. [`desired`] and [`diff`] are pure;
//! [`RouteTable`] applies a [`RouteDiff`] with rtnetlink in the caller's network namespace.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use futures_util::TryStreamExt;
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::node::NodeInfo;

/// The `proto` of kina-net's routes (`ip route` shows `proto 75`); unassigned in iproute2's
/// rt_protos.
pub const ROUTE_PROTOCOL: u8 = 75;
/// The main routing table.
const MAIN_TABLE: u8 = 254;

/// A netlink operation failed; names the route.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("{op} route {route}: {source}")]
    Netlink {
        op: &'static str,
        route: String,
        source: rtnetlink::Error,
    },
    #[error("list {family} routes: {source}")]
    List {
        family: &'static str,
        source: rtnetlink::Error,
    },
}

/// A route to a pod CIDR via a node's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodRoute {
    pub dst: IpNetwork,
    pub via: IpAddr,
}

impl fmt::Display for PodRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via {}", self.dst, self.via)
    }
}

/// The routes this node (`self_name`) should have: every other node's pod CIDRs via that
/// node's InternalIP of the same family. Nodes lacking one are reported in the second list.
pub fn desired(self_name: &str, nodes: &[NodeInfo]) -> (BTreeSet<PodRoute>, Vec<String>) {
    let mut routes = BTreeSet::new();
    let mut skipped = Vec::new();
    for node in nodes.iter().filter(|n| n.name != self_name) {
        for cidr in &node.pod_cidrs {
            match node.ip_for(cidr) {
                Some(via) => {
                    routes.insert(PodRoute { dst: *cidr, via });
                }
                None => skipped.push(format!(
                    "node {} has no InternalIP of the family of its pod CIDR {cidr}",
                    node.name
                )),
            }
        }
    }
    (routes, skipped)
}

/// What to change to go from `current` (our routes in the table) to `desired`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteDiff {
    pub add: Vec<PodRoute>,
    pub remove: Vec<PodRoute>,
}

impl RouteDiff {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// Routes to add and to remove; a moved gateway is one of each.
pub fn diff(desired: &BTreeSet<PodRoute>, current: &BTreeSet<PodRoute>) -> RouteDiff {
    RouteDiff {
        add: desired.difference(current).copied().collect(),
        remove: current.difference(desired).copied().collect(),
    }
}

/// kina-net's routes in a network namespace's main table.
#[derive(Debug, Clone)]
pub struct RouteTable {
    handle: Handle,
}

impl RouteTable {
    /// Operates through `handle` (a connection opened in the namespace to manage).
    pub fn new(handle: Handle) -> Self {
        Self { handle }
    }

    /// Our routes (protocol [`ROUTE_PROTOCOL`], main table) of both families.
    pub async fn current(&self) -> Result<BTreeSet<PodRoute>, RouteError> {
        let mut out = BTreeSet::new();
        for (family, name) in [
            (AddressFamily::Inet, "IPv4"),
            (AddressFamily::Inet6, "IPv6"),
        ] {
            let mut filter = RouteMessage::default();
            filter.header.address_family = family;
            let mut dump = self.handle.route().get(filter).execute();
            while let Some(msg) = dump.try_next().await.map_err(|source| RouteError::List {
                family: name,
                source,
            })? {
                if let Some(r) = ours(&msg) {
                    out.insert(r);
                }
            }
        }
        Ok(out)
    }

    /// Applies `diff`: removals first (so a moved gateway never leaves two routes), then
    /// additions, which replace any other route to the same CIDR. Returns one error per route
    /// that failed; the others are still applied.
    pub async fn apply(&self, diff: &RouteDiff) -> Vec<RouteError> {
        let mut errors = Vec::new();
        for r in &diff.remove {
            tracing::info!(route = %r, "removing route of a node that left or moved");
            match self.handle.route().del(message(r)).execute().await {
                Ok(()) => {}
                // Already gone (ESRCH): that is what we wanted.
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::ESRCH => {}
                Err(source) => errors.push(RouteError::Netlink {
                    op: "delete",
                    route: r.to_string(),
                    source,
                }),
            }
        }
        for r in &diff.add {
            tracing::info!(route = %r, "adding route to a node's pod CIDR");
            if let Err(source) = self
                .handle
                .route()
                .add(message(r))
                .replace()
                .execute()
                .await
            {
                errors.push(RouteError::Netlink {
                    op: "add",
                    route: r.to_string(),
                    source,
                });
            }
        }
        errors
    }

    /// Brings the table to `desired`; returns the diff it applied and the failures.
    pub async fn sync(
        &self,
        desired: &BTreeSet<PodRoute>,
    ) -> Result<(RouteDiff, Vec<RouteError>), RouteError> {
        let d = diff(desired, &self.current().await?);
        let errors = self.apply(&d).await;
        Ok((d, errors))
    }
}

/// The netlink message for `r` (unicast, main table, our protocol).
fn message(r: &PodRoute) -> RouteMessage {
    let mut msg = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(r.dst.network(), r.dst.prefix())
        .and_then(|b| b.gateway(r.via))
        .map(|b| b.build())
        // Both addresses come from one family by construction (`desired`); a mixed pair would
        // be rejected by the kernel with a clear errno instead.
        .unwrap_or_default();
    msg.header.protocol = RouteProtocol::Other(ROUTE_PROTOCOL);
    msg.header.kind = RouteType::Unicast;
    msg.header.table = MAIN_TABLE;
    msg
}

/// `msg` as a [`PodRoute`] when it is one of ours in the main table.
fn ours(msg: &RouteMessage) -> Option<PodRoute> {
    if u8::from(msg.header.protocol) != ROUTE_PROTOCOL {
        return None;
    }
    let table = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table));
    if table != u32::from(MAIN_TABLE) {
        return None;
    }
    let addr = |a: &RouteAddress| match a {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    };
    let mut dst = None;
    let mut via = None;
    for a in &msg.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = addr(d),
            RouteAttribute::Gateway(g) => via = addr(g),
            _ => {}
        }
    }
    let dst = IpNetwork::new(dst?, msg.header.destination_prefix_length).ok()?;
    Some(PodRoute { dst, via: via? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ips: &[&str], cidrs: &[&str]) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            internal_ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            pod_cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
        }
    }

    fn route(dst: &str, via: &str) -> PodRoute {
        PodRoute {
            dst: dst.parse().unwrap(),
            via: via.parse().unwrap(),
        }
    }

    #[test]
    fn desired_routes_skip_self_and_match_families() {
        let nodes = [
            node(
                "cp",
                &["172.18.0.2", "fc00::2"],
                &["10.244.0.0/24", "fd00:10:244::/64"],
            ),
            node(
                "w1",
                &["172.18.0.3", "fc00::3"],
                &["10.244.1.0/24", "fd00:10:244:1::/64"],
            ),
            node(
                "w2",
                &["172.18.0.4"],
                &["10.244.2.0/24", "fd00:10:244:2::/64"],
            ),
            node("w3", &["172.18.0.5"], &[]),
        ];
        let (routes, skipped) = desired("cp", &nodes);
        assert_eq!(
            routes.into_iter().collect::<Vec<_>>(),
            vec![
                route("10.244.1.0/24", "172.18.0.3"),
                route("10.244.2.0/24", "172.18.0.4"),
                route("fd00:10:244:1::/64", "fc00::3"),
            ]
        );
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].contains("w2") && skipped[0].contains("fd00:10:244:2::/64"));
    }

    #[test]
    fn diff_adds_removes_and_replaces_moved_gateways() {
        let desired: BTreeSet<_> = [
            route("10.244.1.0/24", "172.18.0.9"),
            route("10.244.2.0/24", "172.18.0.4"),
        ]
        .into();
        let current: BTreeSet<_> = [
            route("10.244.1.0/24", "172.18.0.3"),
            route("10.244.2.0/24", "172.18.0.4"),
            route("10.244.3.0/24", "172.18.0.5"),
        ]
        .into();
        let d = diff(&desired, &current);
        assert_eq!(d.add, vec![route("10.244.1.0/24", "172.18.0.9")]);
        assert_eq!(
            d.remove,
            vec![
                route("10.244.1.0/24", "172.18.0.3"),
                route("10.244.3.0/24", "172.18.0.5")
            ]
        );
        assert!(diff(&desired, &desired).is_empty());
    }

    #[test]
    fn messages_round_trip_through_the_parser() {
        for r in [
            route("10.244.1.0/24", "172.18.0.3"),
            route("fd00:10:244:1::/64", "fc00::3"),
        ] {
            assert_eq!(ours(&message(&r)), Some(r));
        }
        let mut foreign = message(&route("10.244.1.0/24", "172.18.0.3"));
        foreign.header.protocol = RouteProtocol::Static;
        assert_eq!(ours(&foreign), None);
    }
}

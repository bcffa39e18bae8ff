//! Address management of a node subnet: the bridge takes the first host address, nodes get the
//! lowest address no live lease holds. Leases live in the cluster record (see `state`), so an
//! allocation after a restart never hands out an address a node still holds.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{Ipv4Network, Ipv6Network};

use super::NodeAddresses;
use super::error::NetworkError;
use super::names;
use super::state::ClusterRecord;

/// How far into an IPv6 subnet allocation looks (a /64 has 2^64 addresses; nodes are few).
const V6_SCAN_LIMIT: u128 = 1 << 20;

/// The gateway (bridge) address of a v4 subnet.
pub(crate) fn gateway4(subnet: Ipv4Network) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// The gateway (bridge) address of a v6 subnet.
pub(crate) fn gateway6(subnet: Ipv6Network) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet.network()) + 1)
}

/// Lowest free v4 address after the gateway, excluding the broadcast address.
pub(crate) fn next_v4(subnet: Ipv4Network, taken: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let base = u32::from(subnet.network());
    let size = subnet.size();
    (2..size.saturating_sub(1))
        .map(|offset| Ipv4Addr::from(base + offset))
        .find(|ip| !taken.contains(ip))
}

/// Lowest free v6 address after the gateway.
pub(crate) fn next_v6(subnet: Ipv6Network, taken: &HashSet<Ipv6Addr>) -> Option<Ipv6Addr> {
    let base = u128::from(subnet.network());
    let last = subnet.size().saturating_sub(1).min(V6_SCAN_LIMIT);
    (2..=last)
        .map(|offset| Ipv6Addr::from(base + offset))
        .find(|ip| !taken.contains(ip))
}

/// The lease of `node`: the one on record, or a new one from the free addresses.
/// The caller persists it.
pub(crate) fn lease(record: &ClusterRecord, node: &str) -> Result<NodeAddresses, NetworkError> {
    if let Some(existing) = record.nodes.get(node) {
        return Ok(existing.addresses.clone());
    }
    let net = &record.network;
    let exhausted = |subnet: String| NetworkError::AddressesExhausted {
        cluster: net.name.clone(),
        subnet,
    };
    let ipv4 = match net.v4 {
        Some(subnet) => {
            let taken: HashSet<Ipv4Addr> = record
                .nodes
                .values()
                .filter_map(|n| n.addresses.ipv4)
                .collect();
            Some(next_v4(subnet, &taken).ok_or_else(|| exhausted(subnet.to_string()))?)
        }
        None => None,
    };
    let ipv6 = match net.v6 {
        Some(subnet) => {
            let taken: HashSet<Ipv6Addr> = record
                .nodes
                .values()
                .filter_map(|n| n.addresses.ipv6)
                .collect();
            Some(next_v6(subnet, &taken).ok_or_else(|| exhausted(subnet.to_string()))?)
        }
        None => None,
    };
    Ok(NodeAddresses {
        node: node.to_string(),
        host_veth: names::host_veth(&net.name, node),
        interface: "eth0".into(),
        ipv4,
        ipv6,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::state::NodeRecord;
    use crate::network::{ClusterNetwork, IpFamily};

    fn record(v4: &str, v6: &str) -> ClusterRecord {
        let v4: Ipv4Network = v4.parse().unwrap();
        let v6: Ipv6Network = v6.parse().unwrap();
        ClusterRecord::new(ClusterNetwork {
            name: "c".into(),
            family: IpFamily::Dual,
            bridge: names::bridge("c"),
            v4: Some(v4),
            v6: Some(v6),
            gateway4: Some(gateway4(v4)),
            gateway6: Some(gateway6(v6)),
        })
    }

    fn hold(rec: &mut ClusterRecord, node: &str) -> NodeAddresses {
        let lease = lease(rec, node).unwrap();
        rec.nodes.insert(
            node.into(),
            NodeRecord {
                addresses: lease.clone(),
                ports: vec![],
            },
        );
        lease
    }

    #[test]
    fn gateway_is_first_host_and_nodes_follow() {
        let mut rec = record("172.18.0.0/16", "fc00:f853:ccd:e793::/64");
        assert_eq!(rec.network.gateway4.unwrap().to_string(), "172.18.0.1");
        assert_eq!(
            rec.network.gateway6.unwrap().to_string(),
            "fc00:f853:ccd:e793::1"
        );
        let a = hold(&mut rec, "a");
        let b = hold(&mut rec, "b");
        assert_eq!(a.ipv4.unwrap().to_string(), "172.18.0.2");
        assert_eq!(b.ipv4.unwrap().to_string(), "172.18.0.3");
        assert_eq!(b.ipv6.unwrap().to_string(), "fc00:f853:ccd:e793::3");
        assert_eq!(lease(&rec, "a").unwrap(), a, "existing lease is reused");
    }

    #[test]
    fn released_addresses_are_reused_lowest_first() {
        let mut rec = record("10.0.0.0/24", "fd00::/64");
        hold(&mut rec, "a");
        hold(&mut rec, "b");
        hold(&mut rec, "c");
        rec.nodes.remove("a");
        assert_eq!(hold(&mut rec, "d").ipv4.unwrap().to_string(), "10.0.0.2");
        assert_eq!(hold(&mut rec, "e").ipv4.unwrap().to_string(), "10.0.0.5");
    }

    #[test]
    fn small_subnet_exhausts_without_broadcast() {
        let mut rec = record("10.0.0.0/30", "fd00::/126");
        assert_eq!(hold(&mut rec, "a").ipv4.unwrap().to_string(), "10.0.0.2");
        let err = lease(&rec, "b").unwrap_err().to_string();
        assert!(err.contains("10.0.0.0/30"), "{err}");
    }
}

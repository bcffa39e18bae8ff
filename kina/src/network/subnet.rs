//! Choosing a cluster's node subnet so it overlaps nothing the host already uses.
//!
//! The host's routes (every table, except local/broadcast/multicast entries and default routes)
//! and interface addresses are read over rtnetlink; the first candidate overlapping none of
//! them, and no other kina cluster, wins. IPv4 candidates follow kind/Docker (172.18.0.0/16 to
//! 172.31.0.0/16), then 10.200.0.0/16 to 10.254.0.0/16; IPv6 candidates are ULA /64s starting at
//! kind's fc00:f853:ccd:e793::/64.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use ipnetwork::{Ipv4Network, Ipv6Network};
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteType};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::error::NetworkError;

/// Networks in use on the host.
#[derive(Debug, Default, Clone)]
pub(crate) struct UsedNetworks {
    pub v4: Vec<Ipv4Network>,
    pub v6: Vec<Ipv6Network>,
}

impl UsedNetworks {
    fn push(&mut self, ip: IpAddr, prefix: u8) {
        match ip {
            IpAddr::V4(ip) => {
                if let Ok(net) = Ipv4Network::new(ip, prefix) {
                    self.v4.push(net);
                }
            }
            IpAddr::V6(ip) => {
                if let Ok(net) = Ipv6Network::new(ip, prefix) {
                    self.v6.push(net);
                }
            }
        }
    }
}

/// IPv4 candidates in order of preference.
pub(crate) fn v4_candidates() -> impl Iterator<Item = Ipv4Network> {
    let kind_like = (18u8..=31).map(|b| Ipv4Addr::new(172, b, 0, 0));
    let tens = (200u8..=254).map(|b| Ipv4Addr::new(10, b, 0, 0));
    kind_like
        .chain(tens)
        .filter_map(|ip| Ipv4Network::new(ip, 16).ok())
}

/// IPv6 candidates in order of preference.
pub(crate) fn v6_candidates() -> impl Iterator<Item = Ipv6Network> {
    (0xe793u16..=0xe7ff)
        .map(|group| Ipv6Addr::new(0xfc00, 0xf853, 0x0ccd, group, 0, 0, 0, 0))
        .filter_map(|ip| Ipv6Network::new(ip, 64).ok())
}

/// First v4 candidate overlapping nothing in `used`.
pub(crate) fn choose_v4(used: &[Ipv4Network]) -> Option<Ipv4Network> {
    v4_candidates().find(|c| used.iter().all(|u| !c.overlaps(*u)))
}

/// First v6 candidate overlapping nothing in `used`.
pub(crate) fn choose_v6(used: &[Ipv6Network]) -> Option<Ipv6Network> {
    v6_candidates().find(|c| used.iter().all(|u| !c.overlaps(*u)))
}

/// Reads the routes and interface addresses of the current namespace.
pub(crate) async fn host_networks(handle: &Handle) -> Result<UsedNetworks, NetworkError> {
    let mut used = UsedNetworks::default();
    let dumps = [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ];
    for query in dumps {
        let mut routes = handle.route().get(query).execute();
        while let Some(route) = routes
            .try_next()
            .await
            .map_err(|e| NetworkError::netlink("list host routes", e))?
        {
            let prefix = route.header.destination_prefix_length;
            if prefix == 0
                || matches!(
                    route.header.kind,
                    RouteType::Local
                        | RouteType::Broadcast
                        | RouteType::Multicast
                        | RouteType::Anycast
                )
            {
                continue;
            }
            for attr in &route.attributes {
                match attr {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                        used.push(IpAddr::V4(*ip), prefix)
                    }
                    RouteAttribute::Destination(RouteAddress::Inet6(ip)) => {
                        used.push(IpAddr::V6(*ip), prefix)
                    }
                    _ => {}
                }
            }
        }
    }
    let mut addresses = handle.address().get().execute();
    while let Some(addr) = addresses
        .try_next()
        .await
        .map_err(|e| NetworkError::netlink("list host addresses", e))?
    {
        for attr in &addr.attributes {
            if let AddressAttribute::Address(ip) = attr
                && !ip.is_loopback()
            {
                used.push(*ip, addr.header.prefix_len);
            }
        }
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets4(list: &[&str]) -> Vec<Ipv4Network> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn first_free_v4_candidate_wins() {
        assert_eq!(choose_v4(&[]).unwrap().to_string(), "172.18.0.0/16");
        let used = nets4(&["172.18.5.0/24", "172.19.0.1/32", "192.168.1.0/24"]);
        assert_eq!(choose_v4(&used).unwrap().to_string(), "172.20.0.0/16");
        // A broad host route covering all of 172.16.0.0/12 pushes to the 10.x range.
        let used = nets4(&["172.16.0.0/12"]);
        assert_eq!(choose_v4(&used).unwrap().to_string(), "10.200.0.0/16");
        assert!(choose_v4(&nets4(&["0.0.0.0/1", "128.0.0.0/1"])).is_none());
    }

    #[test]
    fn first_free_v6_candidate_wins() {
        assert_eq!(
            choose_v6(&[]).unwrap().to_string(),
            "fc00:f853:ccd:e793::/64"
        );
        let used: Vec<Ipv6Network> = vec!["fc00:f853:ccd:e793::1/64".parse().unwrap()];
        assert_eq!(
            choose_v6(&used).unwrap().to_string(),
            "fc00:f853:ccd:e794::/64"
        );
        let used: Vec<Ipv6Network> = vec!["fc00::/7".parse().unwrap()];
        assert!(choose_v6(&used).is_none());
    }
}

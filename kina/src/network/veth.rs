//! A node's veth pair: the host end is a port of the cluster bridge, the other end becomes
//! `eth0` inside the node's network namespace with the node's leased addresses and default
//! routes via the bridge.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use rtnetlink::{Handle, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::bridge::{add_address, delete_link, link_index, set_up};
use super::error::NetworkError;
use super::{ClusterNetwork, NodeAddresses};

/// Creates the pair in the current (host) namespace, plugs the host end into the bridge and
/// moves the peer into `node_netns`. Leftovers of an earlier attempt are removed first.
pub(crate) async fn create(
    handle: &Handle,
    bridge_index: u32,
    host: &str,
    peer: &str,
    node_netns: &File,
) -> Result<(), NetworkError> {
    delete_link(handle, host).await?;
    delete_link(handle, peer).await?;
    handle
        .link()
        .add(LinkVeth::new(host, peer).build())
        .execute()
        .await
        .map_err(|e| NetworkError::netlink(format!("create veth pair {host}/{peer}"), e))?;
    let host_index = require(handle, host).await?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(host_index)
                .controller(bridge_index)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(|e| NetworkError::netlink(format!("plug {host} into the bridge"), e))?;
    // Hairpin lets a node reach its own published port through the host: with br_netfilter the
    // DNATed frame is bridged back out of the port it came in on. (Looped-back DAD probes are
    // recognised by the kernel's enhanced DAD nonce.)
    handle
        .link()
        .set_port(LinkBridgePort::new(host_index).hairpin(true).build())
        .execute()
        .await
        .map_err(|e| NetworkError::netlink(format!("set hairpin mode on {host}"), e))?;
    let peer_index = require(handle, peer).await?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(peer_index)
                .setns_by_fd(node_netns.as_raw_fd())
                .build(),
        )
        .execute()
        .await
        .map_err(|e| NetworkError::netlink(format!("move {peer} into the node namespace"), e))
}

async fn require(handle: &Handle, name: &str) -> Result<u32, NetworkError> {
    link_index(handle, name)
        .await?
        .ok_or_else(|| NetworkError::Worker(format!("link {name} vanished right after creation")))
}

/// Inside the node namespace: renames the peer to the node's interface name, assigns the
/// leased addresses, brings it and `lo` up, and routes everything via the bridge.
pub(crate) async fn configure_node(
    handle: &Handle,
    peer: &str,
    addrs: &NodeAddresses,
    net: &ClusterNetwork,
) -> Result<(), NetworkError> {
    let ifname = &addrs.interface;
    let index = require(handle, peer).await?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .name(ifname.clone())
                .build(),
        )
        .execute()
        .await
        .map_err(|e| NetworkError::netlink(format!("rename {peer} to {ifname} in the node"), e))?;
    if let (Some(ip), Some(subnet)) = (addrs.ipv4, net.v4) {
        add_address(handle, index, ifname, IpAddr::V4(ip), subnet.prefix()).await?;
    }
    if let (Some(ip), Some(subnet)) = (addrs.ipv6, net.v6) {
        add_address(handle, index, ifname, IpAddr::V6(ip), subnet.prefix()).await?;
    }
    set_up(handle, index, ifname).await?;
    if let Some(lo) = link_index(handle, "lo").await? {
        set_up(handle, lo, "lo").await?;
    }
    if let (Some(_), Some(gw)) = (addrs.ipv4, net.gateway4) {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gw)
            .output_interface(index)
            .build();
        handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(|e| {
                NetworkError::netlink(format!("add default route via {gw} in the node"), e)
            })?;
    }
    if let (Some(_), Some(gw)) = (addrs.ipv6, net.gateway6) {
        let route = RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(gw)
            .output_interface(index)
            .build();
        handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(|e| {
                NetworkError::netlink(format!("add default route via {gw} in the node"), e)
            })?;
    }
    Ok(())
}

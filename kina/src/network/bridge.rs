//! The cluster bridge, plus the rtnetlink link helpers the veth code shares.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use nix::errno::Errno;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::{Handle, LinkBridge, LinkUnspec};

use super::ClusterNetwork;
use super::error::{NetworkError, netlink_errno};
use super::names;

/// Index of the link called `name`, if it exists.
pub(crate) async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, NetworkError> {
    let mut links = handle.link().get().match_name(name).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(Some(link.header.index)),
        Ok(None) => Ok(None),
        Err(e) if netlink_errno(&e) == Some(Errno::ENODEV as i32) => Ok(None),
        Err(e) => Err(NetworkError::netlink(format!("look up link {name}"), e)),
    }
}

/// Deletes the link called `name`; returns whether it existed.
pub(crate) async fn delete_link(handle: &Handle, name: &str) -> Result<bool, NetworkError> {
    let Some(index) = link_index(handle, name).await? else {
        return Ok(false);
    };
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if netlink_errno(&e) == Some(Errno::ENODEV as i32) => Ok(false),
        Err(e) => Err(NetworkError::netlink(format!("delete link {name}"), e)),
    }
}

/// Names of the links enslaved to the link with index `master`.
pub(crate) async fn ports_of(handle: &Handle, master: u32) -> Result<Vec<String>, NetworkError> {
    let mut out = Vec::new();
    let mut links = handle.link().get().execute();
    while let Some(link) = links
        .try_next()
        .await
        .map_err(|e| NetworkError::netlink("list links", e))?
    {
        let name = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        if let Some(name) = name
            && link.attributes.contains(&LinkAttribute::Controller(master))
        {
            out.push(name);
        }
    }
    Ok(out)
}

/// Brings a link up.
pub(crate) async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<(), NetworkError> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| NetworkError::netlink(format!("set {name} up"), e))
}

/// Adds (or keeps) `ip/prefix` on a link. IPv6 addresses skip duplicate address detection, as
/// the subnet is ours alone and DAD would delay the first packets by seconds.
pub(crate) async fn add_address(
    handle: &Handle,
    index: u32,
    name: &str,
    ip: IpAddr,
    prefix: u8,
) -> Result<(), NetworkError> {
    let mut request = handle.address().add(index, ip, prefix).replace();
    if ip.is_ipv6() {
        request
            .message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    request
        .execute()
        .await
        .map_err(|e| NetworkError::netlink(format!("add address {ip}/{prefix} to {name}"), e))
}

/// Creates the bridge if missing, gives it its gateway addresses, brings it up; returns its
/// index. Safe to call again (e.g. after a reboot removed the bridge).
pub(crate) async fn ensure(handle: &Handle, net: &ClusterNetwork) -> Result<u32, NetworkError> {
    let name = &net.bridge;
    let index = match link_index(handle, name).await? {
        Some(index) => index,
        None => {
            let message = LinkBridge::new(name)
                .address(names::bridge_mac(&net.name))
                .build();
            match handle.link().add(message).execute().await {
                Ok(()) => {}
                Err(e) if netlink_errno(&e) == Some(Errno::EEXIST as i32) => {}
                Err(e) => return Err(NetworkError::netlink(format!("create bridge {name}"), e)),
            }
            tracing::info!(bridge = %name, cluster = %net.name, "created cluster bridge");
            link_index(handle, name).await?.ok_or_else(|| {
                NetworkError::Worker(format!("bridge {name} vanished right after creation"))
            })?
        }
    };
    if let (Some(subnet), Some(gw)) = (net.v4, net.gateway4) {
        add_address(handle, index, name, IpAddr::V4(gw), subnet.prefix()).await?;
    }
    if let (Some(subnet), Some(gw)) = (net.v6, net.gateway6) {
        add_address(handle, index, name, IpAddr::V6(gw), subnet.prefix()).await?;
    }
    set_up(handle, index, name).await?;
    Ok(index)
}

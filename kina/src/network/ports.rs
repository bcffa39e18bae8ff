//! Port mappings: validation, host-port assignment (a free port is probed by binding when the
//! user asked for port 0, and kept on record so it stays stable) and conflict detection against
//! host sockets, other nodes and other clusters.
//!
//! Mapped ports are served by DNAT rules (see `nat`), not by sockets, so a probe alone cannot see
//! another cluster's mappings; the records of all clusters are checked as well.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockProtocol, SockType, SockaddrStorage, bind, getsockname, socket,
};
use serde::{Deserialize, Serialize};

use super::NodeAddresses;
use super::error::NetworkError;

/// Transport protocol of a mapping, spelled like kind's `protocol` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    #[serde(alias = "tcp")]
    Tcp,
    /// UDP.
    #[serde(alias = "udp")]
    Udp,
    /// SCTP.
    #[serde(alias = "sctp")]
    Sctp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        })
    }
}

/// A port of a node to publish on the host (kind's `extraPortMappings` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// Port inside the node.
    pub container_port: u16,
    /// Port on the host; 0 picks a free one.
    #[serde(default)]
    pub host_port: u16,
    /// Host address to listen on; default 0.0.0.0 (or :: for IPv6-only nodes).
    /// 127.0.0.0/8 addresses work; ::1 cannot be forwarded and is refused.
    #[serde(default)]
    pub listen_address: Option<IpAddr>,
    /// Protocol; default TCP.
    #[serde(default)]
    pub protocol: Protocol,
}

/// A port actually published on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedPort {
    /// Node the traffic goes to.
    pub node: String,
    /// Node address the traffic is sent to.
    pub node_ip: IpAddr,
    /// Host address it is reachable on (unspecified = every local address).
    pub listen_address: IpAddr,
    /// Host port.
    pub host_port: u16,
    /// Port inside the node.
    pub container_port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

impl PublishedPort {
    /// Whether both claim the same host port.
    fn collides(&self, protocol: Protocol, address: IpAddr, port: u16) -> bool {
        self.protocol == protocol
            && self.host_port == port
            && self.listen_address.is_ipv4() == address.is_ipv4()
            && (self.listen_address == address
                || self.listen_address.is_unspecified()
                || address.is_unspecified())
    }
}

/// How many random ports are tried before giving up.
const PROBE_ATTEMPTS: usize = 64;

/// Turns `mappings` of `node` into published ports. `previous` are the node's ports on record
/// (their random host ports are kept); `others` are every other node's ports in every cluster.
/// Must run in the host's network namespace (probes bind sockets there).
pub(crate) fn resolve(
    addrs: &NodeAddresses,
    mappings: &[PortMapping],
    previous: &[PublishedPort],
    others: &[(String, PublishedPort)],
) -> Result<Vec<PublishedPort>, NetworkError> {
    let node = &addrs.node;
    let mut out: Vec<PublishedPort> = Vec::new();
    for (index, m) in mappings.iter().enumerate() {
        let invalid = |reason: String| NetworkError::InvalidPortMapping {
            node: node.clone(),
            index,
            reason,
        };
        if m.container_port == 0 {
            return Err(invalid("containerPort must be between 1 and 65535".into()));
        }
        let listen = m.listen_address.unwrap_or(if addrs.ipv4.is_some() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        });
        let node_ip = target(addrs, listen).map_err(invalid)?;
        let conflict = |port: u16| -> Option<String> {
            if let Some(i) = out
                .iter()
                .position(|p| p.collides(m.protocol, listen, port))
            {
                return Some(format!("extraPortMappings[{i}] of node {node}"));
            }
            others
                .iter()
                .find(|(_, p)| p.collides(m.protocol, listen, port))
                .map(|(cluster, p)| format!("node {} of cluster {cluster}", p.node))
        };
        let host_port = if m.host_port != 0 {
            if let Some(by) = conflict(m.host_port) {
                return Err(in_use(m.protocol, listen, m.host_port, by));
            }
            probe(m.protocol, listen, m.host_port)
                .map_err(|e| probe_error(m, listen, e, &invalid))?;
            m.host_port
        } else if let Some(kept) = previous.iter().find(|p| {
            p.protocol == m.protocol
                && p.listen_address == listen
                && p.container_port == m.container_port
                && conflict(p.host_port).is_none()
                && probe(m.protocol, listen, p.host_port).is_ok()
        }) {
            kept.host_port
        } else {
            let mut chosen = None;
            for _ in 0..PROBE_ATTEMPTS {
                let port = probe(m.protocol, listen, 0)
                    .map_err(|e| probe_error(m, listen, e, &invalid))?;
                if conflict(port).is_none() {
                    chosen = Some(port);
                    break;
                }
            }
            chosen.ok_or_else(|| in_use(m.protocol, listen, 0, "no free port found".into()))?
        };
        out.push(PublishedPort {
            node: node.clone(),
            node_ip,
            listen_address: listen,
            host_port,
            container_port: m.container_port,
            protocol: m.protocol,
        });
    }
    Ok(out)
}

/// The node address traffic for `listen` goes to.
fn target(addrs: &NodeAddresses, listen: IpAddr) -> Result<IpAddr, String> {
    if listen.is_multicast() || listen == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Err(format!("listenAddress {listen} is not a unicast address"));
    }
    match listen {
        IpAddr::V4(_) => addrs.ipv4.map(IpAddr::V4).ok_or_else(|| {
            format!("listenAddress {listen} is IPv4 but the node has no IPv4 address")
        }),
        IpAddr::V6(ip) if ip.is_loopback() => Err(
            "listenAddress ::1 cannot be forwarded to a node (Linux cannot route IPv6 loopback \
             traffic out of the host); use 127.0.0.1 or ::"
                .into(),
        ),
        IpAddr::V6(_) => addrs.ipv6.map(IpAddr::V6).ok_or_else(|| {
            format!("listenAddress {listen} is IPv6 but the node has no IPv6 address")
        }),
    }
}

fn in_use(protocol: Protocol, address: IpAddr, port: u16, by: String) -> NetworkError {
    NetworkError::PortInUse {
        protocol,
        address,
        port,
        by,
    }
}

fn probe_error(
    m: &PortMapping,
    listen: IpAddr,
    err: Errno,
    invalid: &dyn Fn(String) -> NetworkError,
) -> NetworkError {
    match err {
        Errno::EADDRINUSE => in_use(m.protocol, listen, m.host_port, "a host socket".into()),
        Errno::EADDRNOTAVAIL => invalid(format!(
            "listenAddress {listen} is not an address of this host"
        )),
        other => invalid(format!(
            "cannot probe {listen}:{}/{}: {other}",
            m.host_port, m.protocol
        )),
    }
}

/// Binds a throw-away socket to see whether `port` is free (0: let the kernel pick one);
/// returns the port.
fn probe(protocol: Protocol, address: IpAddr, port: u16) -> Result<u16, Errno> {
    let addr = SocketAddr::new(address, port);
    let errno = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(0));
    match protocol {
        Protocol::Tcp => Ok(TcpListener::bind(addr)
            .map_err(errno)?
            .local_addr()
            .map_err(errno)?
            .port()),
        Protocol::Udp => Ok(UdpSocket::bind(addr)
            .map_err(errno)?
            .local_addr()
            .map_err(errno)?
            .port()),
        Protocol::Sctp => match probe_sctp(addr) {
            // Without kernel SCTP no host socket can hold the port; only other mappings can,
            // which the caller checks. Borrow a free number from TCP when one must be picked.
            Err(Errno::EPROTONOSUPPORT | Errno::ESOCKTNOSUPPORT) if port == 0 => {
                probe(Protocol::Tcp, address, 0)
            }
            Err(Errno::EPROTONOSUPPORT | Errno::ESOCKTNOSUPPORT) => Ok(port),
            other => other,
        },
    }
}

fn probe_sctp(addr: SocketAddr) -> Result<u16, Errno> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Sctp,
    )?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(addr),
    )?;
    let local: SockaddrStorage = getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd))?;
    local
        .as_sockaddr_in()
        .map(|a| a.port())
        .or_else(|| local.as_sockaddr_in6().map(|a| a.port()))
        .ok_or(Errno::EAFNOSUPPORT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(v4: bool, v6: bool) -> NodeAddresses {
        NodeAddresses {
            node: "n1".into(),
            host_veth: "kvx".into(),
            interface: "eth0".into(),
            ipv4: v4.then(|| "172.18.0.2".parse().unwrap()),
            ipv6: v6.then(|| "fc00::2".parse().unwrap()),
        }
    }

    fn map(container: u16, host: u16, listen: Option<&str>, protocol: Protocol) -> PortMapping {
        PortMapping {
            container_port: container,
            host_port: host,
            listen_address: listen.map(|l| l.parse().unwrap()),
            protocol,
        }
    }

    #[test]
    fn kind_spelling_deserializes() {
        let m: PortMapping = serde_json::from_str(
            r#"{"containerPort":80,"hostPort":8080,"listenAddress":"127.0.0.1","protocol":"UDP"}"#,
        )
        .unwrap();
        assert_eq!(m, map(80, 8080, Some("127.0.0.1"), Protocol::Udp));
        let m: PortMapping =
            serde_json::from_str(r#"{"containerPort":53,"protocol":"sctp"}"#).unwrap();
        assert_eq!(m, map(53, 0, None, Protocol::Sctp));
    }

    #[test]
    fn random_ports_are_picked_and_kept() {
        let first = resolve(
            &node(true, false),
            &[map(80, 0, Some("127.0.0.1"), Protocol::Tcp)],
            &[],
            &[],
        )
        .unwrap();
        assert_ne!(first[0].host_port, 0);
        assert_eq!(first[0].node_ip.to_string(), "172.18.0.2");
        let again = resolve(
            &node(true, false),
            &[map(80, 0, Some("127.0.0.1"), Protocol::Tcp)],
            &first,
            &[],
        )
        .unwrap();
        assert_eq!(again, first);
    }

    #[test]
    fn collisions_are_refused_with_the_holder() {
        let other = PublishedPort {
            node: "x-control-plane".into(),
            node_ip: "172.19.0.2".parse().unwrap(),
            listen_address: "0.0.0.0".parse().unwrap(),
            host_port: 18080,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        let err = resolve(
            &node(true, false),
            &[map(80, 18080, Some("127.0.0.1"), Protocol::Tcp)],
            &[],
            &[("x".into(), other.clone())],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("18080") && err.contains("cluster x"), "{err}");
        // Same port over UDP is a different port.
        resolve(
            &node(true, false),
            &[map(80, 18080, Some("127.0.0.1"), Protocol::Udp)],
            &[],
            &[("x".into(), other)],
        )
        .unwrap();
        let dup = [
            map(80, 18081, None, Protocol::Tcp),
            map(81, 18081, Some("127.0.0.1"), Protocol::Tcp),
        ];
        let err = resolve(&node(true, false), &dup, &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("extraPortMappings[0]"), "{err}");
    }

    #[test]
    fn host_socket_blocks_a_fixed_port() {
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let err = resolve(
            &node(true, false),
            &[map(80, port, Some("127.0.0.1"), Protocol::Tcp)],
            &[],
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, NetworkError::PortInUse { .. }), "{err}");
    }

    // Probes that bind anything but 127.0.0.0/8 run in the namespace tests (tests/network_*).
    #[test]
    fn bad_mappings_name_the_entry() {
        let cases = [
            (map(0, 1, None, Protocol::Tcp), "containerPort"),
            (map(80, 0, Some("::1"), Protocol::Tcp), "::1"),
            (map(80, 0, Some("::"), Protocol::Tcp), "no IPv6"),
            (map(80, 0, Some("224.0.0.1"), Protocol::Tcp), "unicast"),
        ];
        for (m, want) in cases {
            let err = resolve(&node(true, false), &[m], &[], &[])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("extraPortMappings[0] of node n1") && err.contains(want),
                "{err}"
            );
        }
    }
}

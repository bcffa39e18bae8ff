//! Conversions from the kind-compatible config types to the network module's own types, with
//! range checks that name the offending field.

use std::net::IpAddr;

use super::error::NetworkError;
use super::{IpFamily, PortMapping, Protocol};
use crate::config;

/// The API server's port inside a control-plane node.
pub const API_SERVER_CONTAINER_PORT: u16 = 6443;

impl From<config::IpFamily> for IpFamily {
    fn from(family: config::IpFamily) -> Self {
        match family {
            config::IpFamily::Ipv4 => Self::Ipv4,
            config::IpFamily::Ipv6 => Self::Ipv6,
            config::IpFamily::Dual => Self::Dual,
        }
    }
}

impl From<config::Protocol> for Protocol {
    fn from(protocol: config::Protocol) -> Self {
        match protocol {
            config::Protocol::Tcp => Self::Tcp,
            config::Protocol::Udp => Self::Udp,
            config::Protocol::Sctp => Self::Sctp,
        }
    }
}

impl From<Protocol> for config::Protocol {
    fn from(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Tcp => Self::Tcp,
            Protocol::Udp => Self::Udp,
            Protocol::Sctp => Self::Sctp,
        }
    }
}

/// A config host port: 0 and -1 (let the backend pick) both mean "pick a free port".
fn host_port(value: i32) -> Result<u16, String> {
    match value {
        -1 | 0 => Ok(0),
        1..=65535 => Ok(value as u16),
        _ => Err(format!(
            "hostPort {value} is not between 1 and 65535 (or 0/-1 for a free port)"
        )),
    }
}

fn listen_address(value: &str) -> Result<Option<IpAddr>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("listenAddress {value:?} is not an IP address"))
}

impl PortMapping {
    /// Converts entry `index` of node `node`'s `extraPortMappings`.
    pub fn from_config(
        node: &str,
        index: usize,
        m: &config::PortMapping,
    ) -> Result<Self, NetworkError> {
        let invalid = |reason| NetworkError::InvalidPortMapping {
            node: node.to_string(),
            index,
            reason,
        };
        let container_port = u16::try_from(m.container_port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                invalid(format!(
                    "containerPort {} is not between 1 and 65535",
                    m.container_port
                ))
            })?;
        Ok(Self {
            container_port,
            host_port: host_port(m.host_port).map_err(invalid)?,
            listen_address: listen_address(&m.listen_address).map_err(invalid)?,
            protocol: m.protocol.into(),
        })
    }

    /// The API server mapping of a control-plane node from `networking.apiServerAddress` and
    /// `networking.apiServerPort` (default 127.0.0.1 and a free port).
    pub fn api_server(node: &str, networking: &config::Networking) -> Result<Self, NetworkError> {
        let invalid = |reason| NetworkError::InvalidPortMapping {
            node: node.to_string(),
            index: 0,
            reason: format!("networking.apiServer*: {reason}"),
        };
        Ok(Self {
            container_port: API_SERVER_CONTAINER_PORT,
            host_port: host_port(networking.api_server_port).map_err(invalid)?,
            listen_address: Some(
                listen_address(&networking.api_server_address)
                    .map_err(invalid)?
                    .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
            ),
            protocol: Protocol::Tcp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(container: i32, host: i32, listen: &str) -> config::PortMapping {
        config::PortMapping {
            container_port: container,
            host_port: host,
            listen_address: listen.into(),
            protocol: config::Protocol::Udp,
        }
    }

    #[test]
    fn config_mappings_convert_with_checks() {
        let m = PortMapping::from_config("n", 0, &cfg(80, -1, "")).unwrap();
        assert_eq!(m.host_port, 0);
        assert_eq!(m.listen_address, None);
        assert_eq!(m.protocol, Protocol::Udp);
        let m = PortMapping::from_config("n", 0, &cfg(80, 8080, "127.0.0.1")).unwrap();
        assert_eq!(m.host_port, 8080);
        for (bad, want) in [
            (cfg(0, 1, ""), "containerPort 0"),
            (cfg(70000, 1, ""), "containerPort 70000"),
            (cfg(80, 65536, ""), "hostPort 65536"),
            (cfg(80, 1, "localhost"), "\"localhost\""),
        ] {
            let err = PortMapping::from_config("n", 3, &bad)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("extraPortMappings[3] of node n") && err.contains(want),
                "{err}"
            );
        }
        assert_eq!(IpFamily::from(config::IpFamily::Dual), IpFamily::Dual);
    }

    #[test]
    fn api_server_defaults_to_loopback_and_a_free_port() {
        let m = PortMapping::api_server("cp", &config::Networking::default()).unwrap();
        assert_eq!(m.container_port, 6443);
        assert_eq!(m.host_port, 0);
        assert_eq!(m.listen_address.unwrap().to_string(), "127.0.0.1");
        let net = config::Networking {
            api_server_port: 6443,
            api_server_address: "0.0.0.0".into(),
            ..Default::default()
        };
        let m = PortMapping::api_server("cp", &net).unwrap();
        assert_eq!(
            (m.host_port, m.listen_address.unwrap().to_string()),
            (6443, "0.0.0.0".into())
        );
    }
}

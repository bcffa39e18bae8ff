//! CNI results of every spec version (0.1.0/0.2.0, 0.3.x/0.4.0, 1.0.0/1.1.0) parsed into one
//! internal type, [`CniResult`], from which pod IPs, gateways and DNS are read.

use std::net::IpAddr;
use std::str::FromStr;

use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde_json::Value;

/// A result that cannot be understood.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    #[error("not a JSON result object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported result cniVersion {0:?}")]
    UnsupportedVersion(String),
    #[error("field {field}: {reason}")]
    InvalidField { field: String, reason: String },
}

/// CNI versions whose results we understand, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// An interface a plugin created or configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    /// The netns path for interfaces inside the sandbox; `None` for host-side interfaces.
    pub sandbox: Option<String>,
    pub mtu: Option<u32>,
}

/// An address assigned by the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// Address with prefix length, e.g. 10.88.0.5/16.
    pub address: IpNetwork,
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`].
    pub interface: Option<usize>,
}

/// A route the plugin installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNetwork,
    pub gw: Option<IpAddr>,
}

/// DNS settings a plugin suggests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Dns {
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub search: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

/// One CNI result, whatever version it was printed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniResult {
    /// The version the result was printed in.
    pub cni_version: String,
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    #[serde(default)]
    cni_version: Option<String>,
}

#[derive(Deserialize)]
struct RawInterface {
    name: String,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    sandbox: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
}

#[derive(Deserialize)]
struct RawIp {
    /// "4" or "6"; present in 0.3.x/0.4.0 only.
    #[serde(default)]
    version: Option<String>,
    address: String,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    interface: Option<i64>,
}

#[derive(Deserialize)]
struct RawRoute {
    dst: String,
    #[serde(default)]
    gw: Option<String>,
}

#[derive(Deserialize)]
struct RawCurrent {
    #[serde(default)]
    interfaces: Vec<RawInterface>,
    #[serde(default)]
    ips: Vec<RawIp>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    dns: Option<Dns>,
}

/// 0.1.0/0.2.0: `{"ip4": {"ip": "...", "gateway": "...", "routes": [...]}, "ip6": ..., "dns"}`.
#[derive(Deserialize)]
struct RawLegacyIp {
    ip: String,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
struct RawLegacy {
    #[serde(default)]
    ip4: Option<RawLegacyIp>,
    #[serde(default)]
    ip6: Option<RawLegacyIp>,
    #[serde(default)]
    dns: Option<Dns>,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ResultError {
    ResultError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

fn parse_net(field: &str, s: &str) -> Result<IpNetwork, ResultError> {
    IpNetwork::from_str(s).map_err(|e| invalid(field, format!("{s:?} is not a CIDR: {e}")))
}

fn parse_ip(field: &str, s: &Option<String>) -> Result<Option<IpAddr>, ResultError> {
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => IpAddr::from_str(s)
            .map(Some)
            .map_err(|e| invalid(field, format!("{s:?} is not an IP address: {e}"))),
    }
}

fn parse_routes(prefix: &str, raw: &[RawRoute]) -> Result<Vec<Route>, ResultError> {
    raw.iter()
        .enumerate()
        .map(|(i, r)| {
            Ok(Route {
                dst: parse_net(&format!("{prefix}[{i}].dst"), &r.dst)?,
                gw: parse_ip(&format!("{prefix}[{i}].gw"), &r.gw)?,
            })
        })
        .collect()
}

impl CniResult {
    /// Parses a result as printed by a plugin. `default_version` (the network's cniVersion)
    /// applies when the result does not say its own.
    pub fn parse(bytes: &[u8], default_version: &str) -> Result<Self, ResultError> {
        let value: Value = serde_json::from_slice(bytes)?;
        Self::from_value(&value, default_version)
    }

    /// Like [`CniResult::parse`], from an already decoded JSON value.
    pub fn from_value(value: &Value, default_version: &str) -> Result<Self, ResultError> {
        if !value.is_object() {
            return Err(invalid("result", "not a JSON object"));
        }
        let head = Head::deserialize(value)?;
        let version = head
            .cni_version
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default_version.to_string());
        match version.as_str() {
            "0.1.0" | "0.2.0" => Self::from_legacy(value, version),
            "0.3.0" | "0.3.1" | "0.4.0" | "1.0.0" | "1.1.0" => Self::from_current(value, version),
            _ => Err(ResultError::UnsupportedVersion(version)),
        }
    }

    fn from_current(value: &Value, version: String) -> Result<Self, ResultError> {
        let raw = RawCurrent::deserialize(value)?;
        let interfaces: Vec<Interface> = raw
            .interfaces
            .into_iter()
            .map(|i| Interface {
                name: i.name,
                mac: i.mac.filter(|m| !m.is_empty()),
                sandbox: i.sandbox.filter(|s| !s.is_empty()),
                mtu: i.mtu,
            })
            .collect();
        let mut ips = Vec::with_capacity(raw.ips.len());
        for (i, ip) in raw.ips.iter().enumerate() {
            let address = parse_net(&format!("ips[{i}].address"), &ip.address)?;
            let gateway = parse_ip(&format!("ips[{i}].gateway"), &ip.gateway)?;
            if let Some(v) = ip.version.as_deref() {
                let family_ok = match v {
                    "4" => address.is_ipv4(),
                    "6" => address.is_ipv6(),
                    _ => return Err(invalid(format!("ips[{i}].version"), format!("{v:?}"))),
                };
                if !family_ok {
                    return Err(invalid(
                        format!("ips[{i}].version"),
                        format!("IPv{v} does not match address {}", ip.address),
                    ));
                }
            }
            if let Some(gw) = gateway
                && gw.is_ipv4() != address.is_ipv4()
            {
                return Err(invalid(
                    format!("ips[{i}].gateway"),
                    format!("{gw} is not in the family of {}", ip.address),
                ));
            }
            let interface = match ip.interface {
                None => None,
                Some(idx) if idx >= 0 && (idx as usize) < interfaces.len() => Some(idx as usize),
                // libcni treats a negative index as "not set".
                Some(idx) if idx < 0 => None,
                Some(idx) => {
                    return Err(invalid(
                        format!("ips[{i}].interface"),
                        format!("index {idx} but only {} interfaces", interfaces.len()),
                    ));
                }
            };
            ips.push(IpConfig {
                address,
                gateway,
                interface,
            });
        }
        Ok(Self {
            cni_version: version,
            interfaces,
            ips,
            routes: parse_routes("routes", &raw.routes)?,
            dns: raw.dns.unwrap_or_default(),
        })
    }

    fn from_legacy(value: &Value, version: String) -> Result<Self, ResultError> {
        let raw = RawLegacy::deserialize(value)?;
        let mut ips = Vec::new();
        let mut routes = Vec::new();
        for (name, ip, want_v4) in [("ip4", &raw.ip4, true), ("ip6", &raw.ip6, false)] {
            let Some(ip) = ip else { continue };
            let address = parse_net(&format!("{name}.ip"), &ip.ip)?;
            if address.is_ipv4() != want_v4 {
                return Err(invalid(format!("{name}.ip"), "wrong address family"));
            }
            ips.push(IpConfig {
                address,
                gateway: parse_ip(&format!("{name}.gateway"), &ip.gateway)?,
                interface: None,
            });
            routes.extend(parse_routes(&format!("{name}.routes"), &ip.routes)?);
        }
        Ok(Self {
            cni_version: version,
            interfaces: Vec::new(),
            ips,
            routes,
            dns: raw.dns.unwrap_or_default(),
        })
    }

    /// The addresses of the pod: those on interfaces inside the sandbox (or not tied to an
    /// interface), IPv4 first as the kubelet expects the primary family first.
    pub fn sandbox_ips(&self) -> Vec<IpConfig> {
        let mut ips: Vec<IpConfig> = self
            .ips
            .iter()
            .filter(|ip| match ip.interface {
                None => true,
                Some(i) => self.interfaces[i].sandbox.is_some(),
            })
            .cloned()
            .collect();
        ips.sort_by_key(|ip| !ip.address.is_ipv4());
        ips
    }
}

#[cfg(test)]
mod tests;

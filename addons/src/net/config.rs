//! `kina-net`'s settings, read from its environment (set by the DaemonSet in
//! `manifests/kindnet.yaml`): `NODE_NAME` (downward API `spec.nodeName`), `POD_SUBNET` (the
//! cluster's pod CIDRs, comma-separated, one per IP family) and the optional
//! `CONTROL_PLANE_ENDPOINT` (`host:port` of the API server, used instead of the `kubernetes`
//! Service, which needs kube-proxy — itself waiting for a ready node network).

use ipnetwork::IpNetwork;

/// A missing or malformed setting; names the variable and the offending value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not set: {hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    #[error("{var}={value:?}: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
}

/// What `kina-net` needs to know besides the Node objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// This node's name.
    pub node_name: String,
    /// The cluster's pod CIDRs: traffic between them is never masqueraded.
    pub pod_subnets: Vec<IpNetwork>,
    /// `host:port` of the API server, when set.
    pub control_plane_endpoint: Option<String>,
}

impl NetConfig {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let node_name = get("NODE_NAME")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or(ConfigError::Missing {
                var: "NODE_NAME",
                hint: "set it from the downward API (fieldRef spec.nodeName)",
            })?;
        let subnets = get("POD_SUBNET").filter(|s| !s.trim().is_empty()).ok_or(
            ConfigError::Missing {
                var: "POD_SUBNET",
                hint: "set it to the cluster's pod CIDR(s), e.g. 10.244.0.0/16,fd00:10:244::/56",
            },
        )?;
        let pod_subnets = parse_subnets(&subnets)?;
        let control_plane_endpoint = match get("CONTROL_PLANE_ENDPOINT") {
            Some(s) if !s.trim().is_empty() => Some(parse_endpoint(s.trim())?),
            _ => None,
        };
        Ok(Self {
            node_name,
            pod_subnets,
            control_plane_endpoint,
        })
    }
}

/// `10.244.0.0/16,fd00:10:244::/56` → networks (normalised to their network address); at most
/// one per IP family, none duplicated.
pub fn parse_subnets(text: &str) -> Result<Vec<IpNetwork>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        var: "POD_SUBNET",
        value: text.to_owned(),
        reason,
    };
    let mut out: Vec<IpNetwork> = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(invalid("empty entry in the comma-separated list".into()));
        }
        if !part.contains('/') {
            return Err(invalid(format!("{part:?} has no /prefix-length")));
        }
        let net: IpNetwork = part
            .parse()
            .map_err(|e| invalid(format!("{part:?} is not a CIDR: {e}")))?;
        let net = normalize(net);
        if out.iter().any(|o| o.is_ipv4() == net.is_ipv4()) {
            return Err(invalid(format!(
                "more than one {} CIDR",
                if net.is_ipv4() { "IPv4" } else { "IPv6" }
            )));
        }
        out.push(net);
    }
    Ok(out)
}

/// `host:port` or `[v6]:port`; the port must be a number.
fn parse_endpoint(s: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        var: "CONTROL_PLANE_ENDPOINT",
        value: s.to_owned(),
        reason: reason.to_owned(),
    };
    if s.contains("://") || s.contains('/') {
        return Err(invalid("expected host:port without a scheme or path"));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| invalid("expected host:port"))?;
    if host.is_empty() || (host.contains(':') && !(host.starts_with('[') && host.ends_with(']'))) {
        return Err(invalid("bad host (IPv6 addresses go in brackets)"));
    }
    port.parse::<u16>()
        .map_err(|_| invalid("the port is not a number from 0 to 65535"))?;
    Ok(s.to_owned())
}

/// The network with host bits cleared: `10.244.1.7/24` → `10.244.1.0/24`.
pub fn normalize(net: IpNetwork) -> IpNetwork {
    IpNetwork::new(net.network(), net.prefix()).unwrap_or(net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<NetConfig, ConfigError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NetConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn dual_stack_settings_are_parsed() {
        let c = cfg(&[
            ("NODE_NAME", "kind-worker"),
            ("POD_SUBNET", "10.244.0.0/16, fd00:10:244::/56"),
            ("CONTROL_PLANE_ENDPOINT", "kind-control-plane:6443"),
        ])
        .unwrap();
        assert_eq!(c.node_name, "kind-worker");
        assert_eq!(
            c.pod_subnets,
            vec![
                "10.244.0.0/16".parse::<IpNetwork>().unwrap(),
                "fd00:10:244::/56".parse().unwrap()
            ]
        );
        assert_eq!(
            c.control_plane_endpoint.as_deref(),
            Some("kind-control-plane:6443")
        );
    }

    #[test]
    fn bad_environment_names_the_variable() {
        let e = cfg(&[("POD_SUBNET", "10.244.0.0/16")]).unwrap_err();
        assert!(e.to_string().starts_with("NODE_NAME is not set"), "{e}");
        let e = cfg(&[("NODE_NAME", "n")]).unwrap_err();
        assert!(e.to_string().contains("POD_SUBNET is not set"), "{e}");
        for bad in [
            "10.244.0.0",
            "10.244.0.0/33",
            "nope/8",
            "10.0.0.0/8,,",
            "10.0.0.0/8,11.0.0.0/8",
        ] {
            let e = cfg(&[("NODE_NAME", "n"), ("POD_SUBNET", bad)]).unwrap_err();
            assert!(
                e.to_string().contains("POD_SUBNET") && e.to_string().contains(bad),
                "{e}"
            );
        }
        for bad in ["https://x:6443", "x", "x:port", "::1:6443"] {
            let e = cfg(&[
                ("NODE_NAME", "n"),
                ("POD_SUBNET", "10.0.0.0/8"),
                ("CONTROL_PLANE_ENDPOINT", bad),
            ])
            .unwrap_err();
            assert!(e.to_string().contains("CONTROL_PLANE_ENDPOINT"), "{e}");
        }
    }

    #[test]
    fn subnets_are_normalised() {
        assert_eq!(
            parse_subnets("10.244.3.9/16").unwrap(),
            vec!["10.244.0.0/16".parse::<IpNetwork>().unwrap()]
        );
    }
}

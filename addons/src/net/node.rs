//! [`NodeInfo`]: the part of a Kubernetes Node `kina-net` acts on, extracted once so every
//! decision downstream is a pure function of a list of these.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use k8s_openapi::api::core::v1::Node;

use super::config::normalize;

/// A node's name, InternalIPs and pod CIDRs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    /// `status.addresses` of type InternalIP, in order.
    pub internal_ips: Vec<IpAddr>,
    /// `spec.podCIDRs` (or the legacy `spec.podCIDR`), normalised.
    pub pod_cidrs: Vec<IpNetwork>,
}

impl NodeInfo {
    /// Extracts the fields from `node`; unparsable addresses or CIDRs are logged and skipped.
    pub fn from_node(node: &Node) -> Self {
        let name = node.metadata.name.clone().unwrap_or_default();
        let internal_ips = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP")
            .filter_map(|a| match a.address.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    tracing::warn!(node = %name, address = %a.address, "ignoring unparsable InternalIP");
                    None
                }
            })
            .collect();
        let spec = node.spec.as_ref();
        let mut cidrs: Vec<String> = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
        if cidrs.is_empty() {
            cidrs.extend(spec.and_then(|s| s.pod_cidr.clone()));
        }
        let pod_cidrs = cidrs
            .iter()
            .filter_map(|c| match c.parse::<IpNetwork>() {
                Ok(n) => Some(normalize(n)),
                Err(_) => {
                    tracing::warn!(node = %name, cidr = %c, "ignoring unparsable pod CIDR");
                    None
                }
            })
            .collect();
        Self {
            name,
            internal_ips,
            pod_cidrs,
        }
    }

    /// The first InternalIP of the family of `net`.
    pub fn ip_for(&self, net: &IpNetwork) -> Option<IpAddr> {
        self.internal_ips
            .iter()
            .copied()
            .find(|ip| ip.is_ipv4() == net.is_ipv4())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(json: serde_json::Value) -> Node {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn dual_stack_node_is_read() {
        let n = node(serde_json::json!({
            "metadata": {"name": "w1"},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]},
            "status": {"addresses": [
                {"type": "Hostname", "address": "w1"},
                {"type": "InternalIP", "address": "172.18.0.3"},
                {"type": "InternalIP", "address": "fc00:f853:ccd:e793::3"},
            ]}
        }));
        let info = NodeInfo::from_node(&n);
        assert_eq!(info.name, "w1");
        assert_eq!(info.internal_ips.len(), 2);
        assert_eq!(info.pod_cidrs.len(), 2);
        let v6: IpNetwork = "fd00:10:244:1::/64".parse().unwrap();
        assert_eq!(
            info.ip_for(&v6),
            Some("fc00:f853:ccd:e793::3".parse().unwrap())
        );
    }

    #[test]
    fn legacy_pod_cidr_and_garbage_are_handled() {
        let n = node(serde_json::json!({
            "metadata": {"name": "w2"},
            "spec": {"podCIDR": "10.244.2.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "not-an-ip"}]}
        }));
        let info = NodeInfo::from_node(&n);
        assert_eq!(info.pod_cidrs, vec!["10.244.2.0/24".parse().unwrap()]);
        assert!(info.internal_ips.is_empty());
        let empty = NodeInfo::from_node(&node(serde_json::json!({"metadata": {"name": "w3"}})));
        assert!(empty.pod_cidrs.is_empty() && empty.internal_ips.is_empty());
    }
}

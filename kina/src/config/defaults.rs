//! kind's defaulting (`SetDefaultsCluster`), applied in the same order with the same values.

use super::types::{Cluster, IpFamily, Node};

/// Cluster name when neither the config nor `--name` gives one (kind uses `kind`).
pub const DEFAULT_CLUSTER_NAME: &str = "kina";
/// Node image used when a node does not name one.
pub const DEFAULT_NODE_IMAGE: &str = "kina/node:v1.36.2";

/// Fill every unset field the way kind does.
pub fn set_defaults(c: &mut Cluster) {
    if c.name.is_empty() {
        c.name = DEFAULT_CLUSTER_NAME.to_string();
    }
    if c.nodes.is_empty() {
        c.nodes.push(Node::default());
    }
    for node in &mut c.nodes {
        if node.image.is_empty() {
            node.image = DEFAULT_NODE_IMAGE.to_string();
        }
        // role: the enum already defaults to control-plane, as kind does.
    }
    let n = &mut c.networking;
    let family = n.ip_family;
    if n.api_server_address.is_empty() {
        n.api_server_address = match family {
            IpFamily::Ipv6 => "::1",
            IpFamily::Ipv4 | IpFamily::Dual => "127.0.0.1",
        }
        .to_string();
    }
    // kind leaves the pod subnet empty when the default CNI is disabled.
    if n.pod_subnet.is_empty() && !n.disable_default_cni {
        n.pod_subnet = match family {
            IpFamily::Ipv4 => "10.244.0.0/16",
            IpFamily::Ipv6 => "fd00:10:244::/56",
            IpFamily::Dual => "10.244.0.0/16,fd00:10:244::/56",
        }
        .to_string();
    }
    if n.service_subnet.is_empty() {
        n.service_subnet = match family {
            IpFamily::Ipv4 => "10.96.0.0/16",
            IpFamily::Ipv6 => "fd00:10:96::/112",
            IpFamily::Dual => "10.96.0.0/16,fd00:10:96::/112",
        }
        .to_string();
    }
    // kubeProxyMode: the enum already defaults to iptables, as kind does.
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::{NodeRole, ProxyMode};

    #[test]
    fn empty_cluster_gets_kinds_defaults() {
        let mut c = Cluster::default();
        set_defaults(&mut c);
        assert_eq!(c.name, "kina");
        assert_eq!(c.nodes.len(), 1);
        assert_eq!(c.nodes[0].role, NodeRole::ControlPlane);
        assert_eq!(c.nodes[0].image, DEFAULT_NODE_IMAGE);
        assert_eq!(c.networking.pod_subnet, "10.244.0.0/16");
        assert_eq!(c.networking.service_subnet, "10.96.0.0/16");
        assert_eq!(c.networking.api_server_address, "127.0.0.1");
        assert_eq!(c.networking.api_server_port, 0);
        assert_eq!(c.networking.kube_proxy_mode, ProxyMode::Iptables);
    }

    #[test]
    fn disabled_cni_leaves_pod_subnet_unset() {
        let mut c = Cluster::default();
        c.networking.disable_default_cni = true;
        set_defaults(&mut c);
        assert_eq!(c.networking.pod_subnet, "");
        assert_eq!(c.networking.service_subnet, "10.96.0.0/16");
    }
}

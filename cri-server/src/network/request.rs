//! What a pod asks of the network ([`PodNetworkRequest`]: identity, port mappings,
//! bandwidth, DNS, IP ranges) and what it gets ([`PodNetworkStatus`]), plus how the request
//! becomes `CNI_ARGS` and capability args.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::Serialize;
use serde_json::{Map, Value};

use super::error::CniError;
use super::result::{CniResult, Dns, Interface, IpConfig};

/// A port mapping (`portMappings` capability).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// "tcp", "udp" or "sctp".
    pub protocol: String,
    /// Empty: all host addresses.
    #[serde(rename = "hostIP", skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// Traffic shaping (`bandwidth` capability), rates in bits/s and bursts in bits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bandwidth {
    pub ingress_rate: u64,
    pub ingress_burst: u64,
    pub egress_rate: u64,
    pub egress_burst: u64,
}

/// DNS settings (`dns` capability).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// One entry of an IP range set (`ipRanges` capability).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpRange {
    pub subnet: IpNetwork,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_start: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_end: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// A pod sandbox to attach to (or detach from) the network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodNetworkRequest {
    /// The sandbox (infra container) id: `CNI_CONTAINERID`.
    pub container_id: String,
    /// Path of the pod's network namespace: `CNI_NETNS`.
    pub netns_path: String,
    pub pod_name: String,
    pub pod_namespace: String,
    pub pod_uid: String,
    pub port_mappings: Vec<PortMapping>,
    pub bandwidth: Option<Bandwidth>,
    pub dns: Option<DnsConfig>,
    /// Sets of ranges, one set per address family (`[[{subnet}], [{subnet}]]`).
    pub ip_ranges: Vec<Vec<IpRange>>,
    /// Extra `CNI_ARGS` pairs (after the Kubernetes ones).
    pub extra_args: Vec<(String, String)>,
}

fn check_arg(field: &str, value: &str) -> Result<(), CniError> {
    if value.contains([';', '=', '\0', '\n']) {
        return Err(CniError::InvalidRequest(format!(
            "{field} {value:?} contains ';', '=' or a control character"
        )));
    }
    Ok(())
}

impl PodNetworkRequest {
    /// Validates what ends up in file names and `CNI_ARGS`.
    pub fn validate(&self) -> Result<(), CniError> {
        let id = &self.container_id;
        if id.is_empty()
            || id.len() > 128
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(CniError::InvalidRequest(format!(
                "container id {id:?} must be 1-128 characters of [A-Za-z0-9_.-]"
            )));
        }
        check_arg("pod name", &self.pod_name)?;
        check_arg("pod namespace", &self.pod_namespace)?;
        check_arg("pod uid", &self.pod_uid)?;
        for (k, v) in &self.extra_args {
            check_arg("CNI_ARGS key", k)?;
            check_arg("CNI_ARGS value", v)?;
        }
        for pm in &self.port_mappings {
            if !matches!(pm.protocol.as_str(), "tcp" | "udp" | "sctp") {
                return Err(CniError::InvalidRequest(format!(
                    "port mapping {}:{} has protocol {:?}, want tcp, udp or sctp",
                    pm.host_port, pm.container_port, pm.protocol
                )));
            }
        }
        Ok(())
    }

    /// `CNI_ARGS` as the kubelet/containerd pass it.
    pub fn cni_args(&self) -> String {
        let mut args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            self.pod_namespace, self.pod_name, self.container_id, self.pod_uid
        );
        for (k, v) in &self.extra_args {
            args.push_str(&format!(";{k}={v}"));
        }
        args
    }

    /// The capability args; plugins get only those they declare.
    pub fn capability_args(&self) -> Map<String, Value> {
        let mut caps = Map::new();
        if !self.port_mappings.is_empty() {
            caps.insert("portMappings".into(), to(&self.port_mappings));
        }
        if let Some(bw) = &self.bandwidth {
            caps.insert("bandwidth".into(), to(bw));
        }
        if let Some(dns) = &self.dns {
            caps.insert("dns".into(), to(dns));
        }
        if !self.ip_ranges.is_empty() {
            caps.insert("ipRanges".into(), to(&self.ip_ranges));
        }
        caps
    }
}

/// The request's parts as JSON (plain data: serializing cannot fail).
fn to<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("plain data serializes")
}

/// What the network gave the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetworkStatus {
    /// The network that attached the pod.
    pub network: String,
    /// The pod's addresses with prefix length, IPv4 first.
    pub ips: Vec<IpConfig>,
    /// The first gateway given for the pod's addresses.
    pub gateway: Option<IpAddr>,
    pub interfaces: Vec<Interface>,
    pub dns: Dns,
    /// The final result as the last plugin printed it.
    pub raw_result: Value,
}

impl PodNetworkStatus {
    pub(crate) fn from_result(network: &str, result: &CniResult, raw: Value) -> Self {
        let ips = result.sandbox_ips();
        Self {
            network: network.to_string(),
            gateway: ips.iter().find_map(|ip| ip.gateway),
            ips,
            interfaces: result.interfaces.clone(),
            dns: result.dns.clone(),
            raw_result: raw,
        }
    }

    /// The primary pod IP (what the kubelet reports as `podIP`).
    pub fn primary_ip(&self) -> Option<IpAddr> {
        self.ips.first().map(|ip| ip.address.ip())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req() -> PodNetworkRequest {
        PodNetworkRequest {
            container_id: "abc123".into(),
            netns_path: "/run/netns/p".into(),
            pod_name: "web".into(),
            pod_namespace: "default".into(),
            pod_uid: "u-1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn cni_args_carry_the_kubernetes_identity() {
        let mut r = req();
        r.extra_args.push(("K8S_POD_IP".into(), "10.0.0.1".into()));
        assert_eq!(
            r.cni_args(),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;\
             K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1;K8S_POD_IP=10.0.0.1"
        );
    }

    #[test]
    fn capability_args_use_the_cni_conventions() {
        let mut r = req();
        assert!(r.capability_args().is_empty());
        r.port_mappings.push(PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: "tcp".into(),
            host_ip: String::new(),
        });
        r.bandwidth = Some(Bandwidth {
            ingress_rate: 1,
            ..Default::default()
        });
        r.ip_ranges = vec![vec![IpRange {
            subnet: "10.1.0.0/24".parse().unwrap(),
            range_start: None,
            range_end: None,
            gateway: Some("10.1.0.1".parse().unwrap()),
        }]];
        let caps = Value::Object(r.capability_args());
        assert_eq!(
            caps["portMappings"],
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
        );
        assert_eq!(caps["bandwidth"]["ingressRate"], 1);
        assert_eq!(
            caps["ipRanges"],
            json!([[{"subnet": "10.1.0.0/24", "gateway": "10.1.0.1"}]])
        );
    }

    #[test]
    fn validation_rejects_hostile_ids_and_args() {
        assert!(req().validate().is_ok());
        for bad in ["", "../x", "a/b", "a b"] {
            let mut r = req();
            r.container_id = bad.into();
            assert!(r.validate().is_err(), "{bad:?}");
        }
        let mut r = req();
        r.pod_name = "x;K8S_POD_NAMESPACE=kube-system".into();
        assert!(r.validate().unwrap_err().to_string().contains("pod name"));
        let mut r = req();
        r.port_mappings.push(PortMapping {
            host_port: 1,
            container_port: 1,
            protocol: "icmp".into(),
            host_ip: String::new(),
        });
        assert!(r.validate().is_err());
    }
}

//! Per-node kubeadm settings: what comes from the kind config, what the node image holds
//! (Kubernetes version, preloaded etcd and CoreDNS tags) and what the host allows (cgroup
//! version, whether the kubelet may lower OOM scores).

use std::net::IpAddr;

use serde_json::Value;

use super::{BootstrapError, exec};
use crate::config::{Cluster, NodeRole};
use crate::kubeadm::{self, CgroupDriver, ConfigData};
use crate::provider::{Node, Role};

/// Facts read once from the first control-plane node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// `kubeadm version -o short`.
    pub kubernetes_version: String,
    /// Tag of the preloaded `registry.k8s.io/etcd` image.
    pub etcd_tag: Option<String>,
    /// Tag of the preloaded `registry.k8s.io/coredns/coredns` image.
    pub coredns_tag: Option<String>,
}

impl NodeFacts {
    /// Reads the facts from `node`.
    pub fn read(node: &dyn Node) -> Result<Self, BootstrapError> {
        let version = exec::run(node, &["kubeadm", "version", "-o", "short"], None)?;
        let images = exec::run(node, &["crictl", "images", "-o", "json"], None)?;
        let (etcd_tag, coredns_tag) = preloaded_tags(&images)?;
        Ok(Self {
            kubernetes_version: version.trim().to_string(),
            etcd_tag,
            coredns_tag,
        })
    }
}

/// The tags of the preloaded etcd and CoreDNS images in `crictl images -o json` output.
pub fn preloaded_tags(json: &str) -> Result<(Option<String>, Option<String>), BootstrapError> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| BootstrapError::Invalid(format!("crictl images -o json: {e}")))?;
    let mut etcd = None;
    let mut coredns = None;
    let tags = v["images"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["repoTags"].as_array().cloned().unwrap_or_default());
    for tag in tags {
        let Some(tag) = tag.as_str() else { continue };
        if let Some(t) = tag.strip_prefix("registry.k8s.io/etcd:") {
            etcd = Some(t.to_string());
        } else if let Some(t) = tag.strip_prefix("registry.k8s.io/coredns/coredns:") {
            coredns = Some(t.to_string());
        }
    }
    Ok((etcd, coredns))
}

/// What the host imposes on every node's kubelet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The kubelet's cgroup driver: cri-server in kina's node image uses cgroupfs.
    pub cgroup_driver: CgroupDriver,
    /// `failCgroupV1`: false on cgroup v1 hosts, where Kubernetes 1.35+ would refuse to run.
    pub fail_cgroup_v1: bool,
    /// Some(0) when the host's bounding set lacks CAP_SYS_RESOURCE (no negative OOM scores).
    pub oom_score_adj: Option<i32>,
}

impl Settings {
    /// The settings for this host.
    pub fn for_host() -> Self {
        let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        const CAP_SYS_RESOURCE: u32 = 24;
        let bounding = kina_runtime::process::capabilities::host_bounding();
        let can_lower_oom = bounding >> CAP_SYS_RESOURCE & 1 == 1;
        Self {
            cgroup_driver: CgroupDriver::Cgroupfs,
            fail_cgroup_v1: v2,
            oom_score_adj: (!can_lower_oom).then_some(0),
        }
    }
}

/// Everything kubeadm needs for one node.
pub struct NodeInputs<'a> {
    pub cluster: &'a Cluster,
    pub config_index: usize,
    pub node: &'a dyn Node,
    pub join: bool,
    pub control_plane_endpoint: &'a str,
    pub host_api_address: &'a str,
    pub token: &'a str,
    pub certificate_key: Option<&'a str>,
    pub facts: &'a NodeFacts,
    pub settings: &'a Settings,
    pub untainted: bool,
}

/// The [`ConfigData`] of one node.
pub fn config_data(i: &NodeInputs<'_>) -> Result<ConfigData, BootstrapError> {
    let net = i.node.network()?;
    let mut ips: Vec<IpAddr> = Vec::new();
    ips.extend(net.ipv4.map(IpAddr::V4));
    ips.extend(net.ipv6.map(IpAddr::V6));
    let role = match i.node.role() {
        Role::ControlPlane => NodeRole::ControlPlane,
        Role::Worker => NodeRole::Worker,
        Role::ExternalLoadBalancer => {
            return Err(BootstrapError::Invalid(format!(
                "{} is a load balancer, not a Kubernetes node",
                i.node.name()
            )));
        }
    };
    let node_cfg = i.cluster.nodes.get(i.config_index).ok_or_else(|| {
        BootstrapError::Invalid(format!("no config entry for node {}", i.node.name()))
    })?;
    let net_cfg = &i.cluster.networking;
    Ok(ConfigData {
        cluster_name: i.cluster.name.clone(),
        kubernetes_version: i.facts.kubernetes_version.clone(),
        control_plane_endpoint: i.control_plane_endpoint.to_string(),
        api_bind_port: kubeadm::API_BIND_PORT,
        api_server_address: i.host_api_address.to_string(),
        token: i.token.to_string(),
        certificate_key: i.certificate_key.map(str::to_string),
        node_name: i.node.name().to_string(),
        node_ips: ips,
        role,
        join: i.join,
        node_labels: node_cfg.labels.clone(),
        ip_family: net_cfg.ip_family,
        pod_subnet: net_cfg.pod_subnet.clone(),
        service_subnet: net_cfg.service_subnet.clone(),
        dns_domain: String::new(),
        feature_gates: i.cluster.feature_gates.clone(),
        runtime_config: i.cluster.runtime_config.clone(),
        kube_proxy_mode: net_cfg.kube_proxy_mode,
        cgroup_driver: i.settings.cgroup_driver,
        // The node's cgroup namespace root is the node's own cgroup: pods go right under it
        // (kind's /kubelet needs its entrypoint to create that cgroup first).
        cgroup_root: None,
        cri_socket: kubeadm::DEFAULT_CRI_SOCKET.to_string(),
        fail_cgroup_v1: i.settings.fail_cgroup_v1,
        oom_score_adj: i.settings.oom_score_adj,
        etcd_image_tag: i.facts.etcd_tag.clone(),
        dns_image_tag: i.facts.coredns_tag.clone(),
        image_pull_policy_never: true,
        untainted: i.untainted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preloaded_tags_come_from_crictl() {
        let json = r#"{"images": [
            {"repoTags": ["registry.k8s.io/etcd:3.5.16-0"]},
            {"repoTags": ["registry.k8s.io/coredns/coredns:v1.13.1"]},
            {"repoTags": ["registry.k8s.io/pause:3.10.2"]}
        ]}"#;
        assert_eq!(
            preloaded_tags(json).unwrap(),
            (Some("3.5.16-0".into()), Some("v1.13.1".into()))
        );
        assert_eq!(preloaded_tags(r#"{"images": []}"#).unwrap(), (None, None));
        assert!(preloaded_tags("not json").is_err());
    }
}

//! The kubeadm `v1beta4` documents of one node, built as data (no text templates, so no
//! quoting bugs): kind's `ConfigTemplateBetaV3` translated to v1beta4 (extra arguments are
//! name/value lists) plus what nodes on kina's runtime need (see ENVIRONMENT.md).
//!
//! `kubeadm init` nodes get ClusterConfiguration, InitConfiguration, KubeletConfiguration and
//! (unless kube-proxy is disabled) KubeProxyConfiguration; `kubeadm join` nodes get a
//! JoinConfiguration only, since kubeadm join ignores the others (it reads the cluster's).

use serde_json::{Map, Value, json};

use crate::config::{NodeRole, ProxyMode};

use super::data::ConfigData;
use super::{KubeadmError, etcd};

/// apiVersion of the kubeadm documents.
pub const KUBEADM_API_VERSION: &str = "kubeadm.k8s.io/v1beta4";
/// apiVersion of the KubeletConfiguration.
pub const KUBELET_API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
/// apiVersion of the KubeProxyConfiguration.
pub const KUBE_PROXY_API_VERSION: &str = "kubeproxy.config.k8s.io/v1alpha1";

/// The only preflight error kina ignores. `SystemVerification` fails on cgroup v1 hosts
/// (deprecated in Kubernetes 1.31+) and on kernels whose config or modules kubeadm cannot
/// read from inside a node container (there is no /lib/modules there); every other check
/// (ports, swap, images, the CRI socket) stays on so real problems still stop `kubeadm`.
pub const IGNORED_PREFLIGHT_ERRORS: &[&str] = &["SystemVerification"];

/// The node's kubeadm documents, in the order kubeadm expects them.
pub fn documents(data: &ConfigData) -> Result<Vec<Value>, KubeadmError> {
    data.validate()?;
    if data.join {
        return Ok(vec![join_configuration(data)?]);
    }
    if data.role != NodeRole::ControlPlane {
        return Err(KubeadmError::invalid(
            "join",
            "only a control-plane node can run kubeadm init",
        ));
    }
    let mut docs = vec![
        cluster_configuration(data)?,
        init_configuration(data)?,
        kubelet_configuration(data),
    ];
    if data.kube_proxy_mode != ProxyMode::None {
        docs.push(kube_proxy_configuration(data));
    }
    Ok(docs)
}

/// The node's kubeadm configuration as one multi-document YAML stream.
pub fn render(data: &ConfigData) -> Result<String, KubeadmError> {
    to_yaml(&documents(data)?)
}

/// Writes documents as a YAML stream (`---` between documents).
pub fn to_yaml(docs: &[Value]) -> Result<String, KubeadmError> {
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_norway::to_string(d)?);
    }
    Ok(out)
}

/// A v1beta4 argument list from (name, value) pairs.
fn args<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> Value {
    Value::Array(
        pairs
            .into_iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect(),
    )
}

fn joined<K: std::fmt::Display, V: std::fmt::Display>(
    m: &std::collections::BTreeMap<K, V>,
) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn cluster_configuration(d: &ConfigData) -> Result<Value, KubeadmError> {
    let gates = joined(&d.feature_gates);
    let with_gates = |mut list: Vec<(&'static str, String)>| {
        if !gates.is_empty() {
            list.insert(0, ("feature-gates", gates.clone()));
        }
        args(list)
    };

    let mut api_args = Vec::new();
    if !d.runtime_config.is_empty() {
        api_args.push(("runtime-config", joined(&d.runtime_config)));
    }
    // On docker for mac kind must port-forward the API; the certificate has to be valid for
    // the host-side address and for localhost for kubeconfigs that point there.
    let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if d.ip_family != crate::config::IpFamily::Ipv4 {
        sans.push("::1".to_string());
    }
    let host = d.api_server_address.trim();
    if !host.is_empty() && !sans.iter().any(|s| s == host) {
        sans.push(host.to_string());
    }

    // kubeadm itself adds allocate-node-cidrs=true, cluster-cidr and the node CIDR mask sizes
    // to the controller manager when networking.podSubnet is set, as kind relies on.
    let mut cm_args = vec![("enable-hostpath-provisioner", "true".to_string())];
    let mut sched_args = Vec::new();
    if d.ipv6() {
        cm_args.push(("bind-address", "::".to_string()));
        sched_args.push(("bind-address", "::1".to_string()));
    }

    let mut etcd_local = Map::new();
    if let Some(tag) = &d.etcd_image_tag {
        etcd_local.insert("imageTag".into(), json!(tag));
        let extra = etcd::extra_args(tag)?;
        if !extra.is_empty() {
            etcd_local.insert("extraArgs".into(), Value::Array(extra));
        }
    }

    let mut doc = json!({
        "apiVersion": KUBEADM_API_VERSION,
        "kind": "ClusterConfiguration",
        "kubernetesVersion": d.kubernetes_version,
        "clusterName": d.cluster_name,
        "controlPlaneEndpoint": d.control_plane_endpoint,
        "networking": {
            "podSubnet": d.pod_subnet,
            "serviceSubnet": d.service_subnet,
            "dnsDomain": d.dns_domain(),
        },
        "apiServer": {
            "certSANs": sans,
            "extraArgs": with_gates(api_args),
        },
        "controllerManager": {"extraArgs": with_gates(cm_args)},
        "scheduler": {"extraArgs": with_gates(sched_args)},
        "etcd": {"local": etcd_local},
    });
    if let Some(tag) = &d.dns_image_tag {
        doc["dns"] = json!({"imageTag": tag});
    }
    if d.kube_proxy_mode == ProxyMode::None {
        doc["proxy"] = json!({"disabled": true});
    }
    Ok(doc)
}

fn node_registration(d: &ConfigData) -> Result<Value, KubeadmError> {
    let ips = d
        .node_addresses()?
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut kubelet_args = vec![("node-ip", ips)];
    if !d.node_labels.is_empty() {
        kubelet_args.push(("node-labels", joined(&d.node_labels)));
    }
    let mut reg = json!({
        "name": d.node_name,
        "criSocket": d.cri_socket,
        "kubeletExtraArgs": args(kubelet_args),
        "ignorePreflightErrors": IGNORED_PREFLIGHT_ERRORS,
    });
    // kubeadm's own pulls (preflight) only: with Never a missing preloaded image fails
    // preflight instead of reaching for a registry; static pods keep IfNotPresent.
    if d.image_pull_policy_never {
        reg["imagePullPolicy"] = json!("Never");
    }
    if d.untainted {
        reg["taints"] = json!([]);
    }
    Ok(reg)
}

fn local_api_endpoint(d: &ConfigData) -> Result<Value, KubeadmError> {
    Ok(json!({
        "advertiseAddress": d.node_addresses()?[0].to_string(),
        "bindPort": d.api_bind_port,
    }))
}

/// `patches.directory` when this control-plane node runs an etcd that needs kina's patches.
fn patches(d: &ConfigData) -> Result<Option<Value>, KubeadmError> {
    let needed = match &d.etcd_image_tag {
        Some(tag) if d.control_plane() => etcd::needs_compat(tag)?,
        _ => false,
    };
    Ok(needed.then(|| json!({"directory": etcd::PATCHES_DIR})))
}

fn init_configuration(d: &ConfigData) -> Result<Value, KubeadmError> {
    let mut doc = json!({
        "apiVersion": KUBEADM_API_VERSION,
        "kind": "InitConfiguration",
        // a token the caller chose, so joins need no `kubeadm token create`
        "bootstrapTokens": [{"token": d.token}],
        "localAPIEndpoint": local_api_endpoint(d)?,
        "nodeRegistration": node_registration(d)?,
    });
    if let Some(key) = &d.certificate_key {
        doc["certificateKey"] = json!(key);
    }
    if let Some(p) = patches(d)? {
        doc["patches"] = p;
    }
    Ok(doc)
}

fn join_configuration(d: &ConfigData) -> Result<Value, KubeadmError> {
    let mut doc = json!({
        "apiVersion": KUBEADM_API_VERSION,
        "kind": "JoinConfiguration",
        "nodeRegistration": node_registration(d)?,
        "discovery": {"bootstrapToken": {
            "apiServerEndpoint": d.control_plane_endpoint,
            "token": d.token,
            // the nodes share a private network with the control plane; kind does the same
            "unsafeSkipCAVerification": true,
        }},
    });
    if d.control_plane() {
        let mut cp = json!({"localAPIEndpoint": local_api_endpoint(d)?});
        if let Some(key) = &d.certificate_key {
            cp["certificateKey"] = json!(key);
        }
        doc["controlPlane"] = cp;
    }
    if let Some(p) = patches(d)? {
        doc["patches"] = p;
    }
    Ok(doc)
}

fn gates_map(d: &ConfigData) -> Option<Value> {
    (!d.feature_gates.is_empty()).then(|| json!(d.feature_gates))
}

fn kubelet_configuration(d: &ConfigData) -> Value {
    let mut doc = json!({
        "apiVersion": KUBELET_API_VERSION,
        "kind": "KubeletConfiguration",
        "cgroupDriver": d.cgroup_driver.as_str(),
        "containerRuntimeEndpoint": d.cri_socket,
        "failCgroupV1": d.fail_cgroup_v1,
        "failSwapOn": false,
        // The kubelet sees the host disk (and memory) the node is ultimately backed by and
        // would evict pods or delete images to recover it: disable that, as kind does
        // (a 0% threshold is ignored by the kubelet).
        "imageGCHighThresholdPercent": 100,
        "evictionHard": {
            "nodefs.available": "0%",
            "nodefs.inodesFree": "0%",
            "imagefs.available": "0%",
            "imagefs.inodesFree": "0%",
            "memory.available": "0%",
        },
    });
    if let Some(root) = &d.cgroup_root {
        doc["cgroupRoot"] = json!(root);
    }
    if let Some(adj) = d.oom_score_adj {
        doc["oomScoreAdj"] = json!(adj);
    }
    if d.ipv6() {
        doc["address"] = json!("::");
        doc["healthzBindAddress"] = json!("::");
    }
    if let Some(g) = gates_map(d) {
        doc["featureGates"] = g;
    }
    doc
}

fn kube_proxy_configuration(d: &ConfigData) -> Value {
    let mode = match d.kube_proxy_mode {
        ProxyMode::Iptables => "iptables",
        ProxyMode::Ipvs => "ipvs",
        ProxyMode::Nftables => "nftables",
        ProxyMode::None => "",
    };
    let mut doc = json!({
        "apiVersion": KUBE_PROXY_API_VERSION,
        "kind": "KubeProxyConfiguration",
        "mode": mode,
        "clusterCIDR": d.pod_subnet,
        "iptables": {"minSyncPeriod": "1s"},
        // nf_conntrack_max is global to the host: never let a node's kube-proxy change it
        "conntrack": {"maxPerCore": 0},
    });
    if let Some(adj) = d.oom_score_adj {
        doc["oomScoreAdj"] = json!(adj);
    }
    if let Some(g) = gates_map(d) {
        doc["featureGates"] = g;
    }
    doc
}

#[cfg(test)]
#[path = "render_tests.rs"]
pub(crate) mod tests;

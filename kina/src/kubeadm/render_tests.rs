//! Unit tests of [`super`]: the documents generated for each kind of node and IP family.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Value, json};

use super::*;
use crate::config::IpFamily;
use crate::kubeadm::data::{API_BIND_PORT, CgroupDriver, DEFAULT_CRI_SOCKET};
use crate::kubeadm::patch::parse_stream;

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

pub(crate) fn control_plane() -> ConfigData {
    ConfigData {
        cluster_name: "kina".into(),
        kubernetes_version: "v1.36.2".into(),
        control_plane_endpoint: "10.89.0.2:6443".into(),
        api_bind_port: API_BIND_PORT,
        api_server_address: "127.0.0.1".into(),
        token: "abcdef.0123456789abcdef".into(),
        node_name: "kina-control-plane".into(),
        node_ips: ips(&["10.89.0.2", "fd00::2"]),
        pod_subnet: "10.244.0.0/16".into(),
        service_subnet: "10.96.0.0/16".into(),
        cri_socket: DEFAULT_CRI_SOCKET.into(),
        cgroup_driver: CgroupDriver::Cgroupfs,
        cgroup_root: Some("/kubelet".into()),
        oom_score_adj: Some(0),
        etcd_image_tag: Some("3.5.16-0".into()),
        dns_image_tag: Some("v1.13.1".into()),
        image_pull_policy_never: true,
        node_labels: BTreeMap::from([("tier".to_string(), "db".to_string())]),
        feature_gates: BTreeMap::from([("Foo".to_string(), true), ("Bar".to_string(), false)]),
        runtime_config: BTreeMap::from([("api/alpha".to_string(), "false".to_string())]),
        ..Default::default()
    }
}

fn docs(d: &ConfigData) -> Vec<Value> {
    // through YAML, as kubeadm reads it
    parse_stream(&render(d).unwrap()).unwrap()
}

fn by_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {docs:#?}"))
}

fn arg<'a>(list: &'a Value, name: &str) -> Option<&'a str> {
    list.as_array()?
        .iter()
        .find(|a| a["name"] == name)
        .and_then(|a| a["value"].as_str())
}

#[test]
fn single_control_plane_init() {
    let docs = docs(&control_plane());
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ClusterConfiguration",
            "InitConfiguration",
            "KubeletConfiguration",
            "KubeProxyConfiguration"
        ]
    );
    let c = by_kind(&docs, "ClusterConfiguration");
    assert_eq!(c["apiVersion"], "kubeadm.k8s.io/v1beta4");
    assert_eq!(c["kubernetesVersion"], "v1.36.2");
    assert_eq!(c["clusterName"], "kina");
    assert_eq!(c["controlPlaneEndpoint"], "10.89.0.2:6443");
    assert_eq!(
        c["networking"],
        json!({"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/16", "dnsDomain": "cluster.local"})
    );
    assert_eq!(
        c["apiServer"]["certSANs"],
        json!(["localhost", "127.0.0.1"])
    );
    let api = &c["apiServer"]["extraArgs"];
    assert_eq!(arg(api, "runtime-config"), Some("api/alpha=false"));
    for component in ["apiServer", "controllerManager", "scheduler"] {
        assert_eq!(
            arg(&c[component]["extraArgs"], "feature-gates"),
            Some("Bar=false,Foo=true"),
            "{component}"
        );
    }
    let cm = &c["controllerManager"]["extraArgs"];
    assert_eq!(arg(cm, "enable-hostpath-provisioner"), Some("true"));
    assert_eq!(arg(cm, "bind-address"), None);
    assert_eq!(c["etcd"]["local"]["imageTag"], "3.5.16-0");
    assert_eq!(
        arg(
            &c["etcd"]["local"]["extraArgs"],
            "experimental-initial-corrupt-check"
        ),
        Some("true")
    );
    assert_eq!(c["dns"]["imageTag"], "v1.13.1");
    assert!(c.get("proxy").is_none());

    let i = by_kind(&docs, "InitConfiguration");
    assert_eq!(
        i["bootstrapTokens"],
        json!([{"token": "abcdef.0123456789abcdef"}])
    );
    assert_eq!(
        i["localAPIEndpoint"],
        json!({"advertiseAddress": "10.89.0.2", "bindPort": 6443})
    );
    let reg = &i["nodeRegistration"];
    assert_eq!(reg["name"], "kina-control-plane");
    assert_eq!(reg["criSocket"], "unix:///run/cri-server/cri-server.sock");
    assert_eq!(reg["imagePullPolicy"], "Never");
    assert_eq!(reg["ignorePreflightErrors"], json!(["SystemVerification"]));
    assert!(reg.get("taints").is_none());
    assert_eq!(arg(&reg["kubeletExtraArgs"], "node-ip"), Some("10.89.0.2"));
    assert_eq!(
        arg(&reg["kubeletExtraArgs"], "node-labels"),
        Some("tier=db")
    );
    assert_eq!(i["patches"]["directory"], "/kina/kubeadm-patches");
    assert!(i.get("certificateKey").is_none());

    let k = by_kind(&docs, "KubeletConfiguration");
    assert_eq!(k["apiVersion"], "kubelet.config.k8s.io/v1beta1");
    assert_eq!(k["cgroupDriver"], "cgroupfs");
    assert_eq!(k["cgroupRoot"], "/kubelet");
    assert_eq!(
        k["containerRuntimeEndpoint"],
        "unix:///run/cri-server/cri-server.sock"
    );
    assert_eq!(k["failCgroupV1"], false);
    assert_eq!(k["failSwapOn"], false);
    assert_eq!(k["oomScoreAdj"], 0);
    assert_eq!(k["imageGCHighThresholdPercent"], 100);
    for key in ["nodefs.available", "imagefs.available", "memory.available"] {
        assert_eq!(k["evictionHard"][key], "0%", "{key}");
    }
    assert_eq!(k["featureGates"], json!({"Bar": false, "Foo": true}));
    assert!(k.get("address").is_none());

    let p = by_kind(&docs, "KubeProxyConfiguration");
    assert_eq!(p["mode"], "iptables");
    assert_eq!(p["clusterCIDR"], "10.244.0.0/16");
    assert_eq!(p["conntrack"]["maxPerCore"], 0);
    assert_eq!(p["oomScoreAdj"], 0);
    assert_eq!(p["featureGates"], json!({"Bar": false, "Foo": true}));
}

#[test]
fn join_worker_has_only_a_join_configuration() {
    let mut d = control_plane();
    d.join = true;
    d.role = NodeRole::Worker;
    d.node_name = "kina-worker".into();
    d.node_ips = ips(&["10.89.0.3"]);
    let docs = docs(&d);
    assert_eq!(docs.len(), 1);
    let j = &docs[0];
    assert_eq!(j["kind"], "JoinConfiguration");
    assert_eq!(
        j["discovery"]["bootstrapToken"],
        json!({
            "apiServerEndpoint": "10.89.0.2:6443",
            "token": "abcdef.0123456789abcdef",
            "unsafeSkipCAVerification": true
        })
    );
    assert!(j.get("controlPlane").is_none());
    assert!(j.get("patches").is_none(), "workers run no etcd");
    assert_eq!(
        arg(&j["nodeRegistration"]["kubeletExtraArgs"], "node-ip"),
        Some("10.89.0.3")
    );
    assert_eq!(j["nodeRegistration"]["name"], "kina-worker");
}

#[test]
fn join_control_plane_advertises_itself_with_the_certificate_key() {
    let mut d = control_plane();
    d.join = true;
    d.node_name = "kina-control-plane2".into();
    d.node_ips = ips(&["10.89.0.4"]);
    d.control_plane_endpoint = "10.89.0.10:6443".into();
    d.certificate_key = Some("ab".repeat(32));
    let docs = docs(&d);
    let j = &docs[0];
    assert_eq!(
        j["controlPlane"],
        json!({
            "localAPIEndpoint": {"advertiseAddress": "10.89.0.4", "bindPort": 6443},
            "certificateKey": "ab".repeat(32)
        })
    );
    assert_eq!(
        j["discovery"]["bootstrapToken"]["apiServerEndpoint"],
        "10.89.0.10:6443"
    );
    assert_eq!(j["patches"]["directory"], "/kina/kubeadm-patches");
}

#[test]
fn init_carries_the_certificate_key_for_upload_certs() {
    let mut d = control_plane();
    d.certificate_key = Some("0f".repeat(32));
    let docs = docs(&d);
    assert_eq!(
        by_kind(&docs, "InitConfiguration")["certificateKey"],
        "0f".repeat(32)
    );
}

#[test]
fn ipv6_binds_wildcards_and_uses_the_ipv6_address() {
    let mut d = control_plane();
    d.ip_family = IpFamily::Ipv6;
    d.pod_subnet = "fd00:10:244::/56".into();
    d.service_subnet = "fd00:10:96::/112".into();
    d.api_server_address = "::1".into();
    d.control_plane_endpoint = "[fd00::2]:6443".into();
    let docs = docs(&d);
    let c = by_kind(&docs, "ClusterConfiguration");
    assert_eq!(
        c["apiServer"]["certSANs"],
        json!(["localhost", "127.0.0.1", "::1"])
    );
    assert_eq!(
        arg(&c["controllerManager"]["extraArgs"], "bind-address"),
        Some("::")
    );
    assert_eq!(
        arg(&c["scheduler"]["extraArgs"], "bind-address"),
        Some("::1")
    );
    let i = by_kind(&docs, "InitConfiguration");
    assert_eq!(i["localAPIEndpoint"]["advertiseAddress"], "fd00::2");
    assert_eq!(
        arg(&i["nodeRegistration"]["kubeletExtraArgs"], "node-ip"),
        Some("fd00::2")
    );
    let k = by_kind(&docs, "KubeletConfiguration");
    assert_eq!(k["address"], "::");
    assert_eq!(k["healthzBindAddress"], "::");
    assert_eq!(
        by_kind(&docs, "KubeProxyConfiguration")["clusterCIDR"],
        "fd00:10:244::/56"
    );
}

#[test]
fn dual_stack_lists_both_addresses_ipv4_first() {
    let mut d = control_plane();
    d.ip_family = IpFamily::Dual;
    d.node_ips = ips(&["fd00::2", "10.89.0.2"]);
    d.pod_subnet = "10.244.0.0/16,fd00:10:244::/56".into();
    d.service_subnet = "10.96.0.0/16,fd00:10:96::/112".into();
    let docs = docs(&d);
    let i = by_kind(&docs, "InitConfiguration");
    assert_eq!(i["localAPIEndpoint"]["advertiseAddress"], "10.89.0.2");
    assert_eq!(
        arg(&i["nodeRegistration"]["kubeletExtraArgs"], "node-ip"),
        Some("10.89.0.2,fd00::2")
    );
    let c = by_kind(&docs, "ClusterConfiguration");
    assert_eq!(
        c["networking"]["podSubnet"],
        "10.244.0.0/16,fd00:10:244::/56"
    );
    assert_eq!(arg(&c["scheduler"]["extraArgs"], "bind-address"), None);
    assert!(
        by_kind(&docs, "KubeletConfiguration")
            .get("address")
            .is_none()
    );
}

#[test]
fn kube_proxy_modes() {
    for (mode, want) in [
        (ProxyMode::Ipvs, "ipvs"),
        (ProxyMode::Nftables, "nftables"),
        (ProxyMode::Iptables, "iptables"),
    ] {
        let mut d = control_plane();
        d.kube_proxy_mode = mode;
        assert_eq!(by_kind(&docs(&d), "KubeProxyConfiguration")["mode"], want);
    }
    let mut d = control_plane();
    d.kube_proxy_mode = ProxyMode::None;
    let docs = docs(&d);
    assert!(docs.iter().all(|x| x["kind"] != "KubeProxyConfiguration"));
    assert_eq!(
        by_kind(&docs, "ClusterConfiguration")["proxy"]["disabled"],
        true
    );
}

#[test]
fn etcd_3_6_needs_no_patches_and_defaults_stay_unset() {
    let mut d = control_plane();
    d.etcd_image_tag = Some("3.6.8-0".into());
    d.dns_image_tag = None;
    d.image_pull_policy_never = false;
    d.feature_gates.clear();
    d.runtime_config.clear();
    d.untainted = true;
    let docs = docs(&d);
    let c = by_kind(&docs, "ClusterConfiguration");
    assert_eq!(c["etcd"]["local"], json!({"imageTag": "3.6.8-0"}));
    assert!(c.get("dns").is_none());
    assert_eq!(arg(&c["apiServer"]["extraArgs"], "feature-gates"), None);
    assert_eq!(arg(&c["apiServer"]["extraArgs"], "runtime-config"), None);
    let i = by_kind(&docs, "InitConfiguration");
    assert!(i.get("patches").is_none());
    assert!(i["nodeRegistration"].get("imagePullPolicy").is_none());
    assert_eq!(i["nodeRegistration"]["taints"], json!([]));
    assert!(
        by_kind(&docs, "KubeletConfiguration")
            .get("featureGates")
            .is_none()
    );
}

#[test]
fn bad_data_names_the_field() {
    type Mutation = Box<dyn Fn(&mut ConfigData)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("token", Box::new(|d| d.token = "nope".into())),
        ("cluster_name", Box::new(|d| d.cluster_name.clear())),
        (
            "kubernetes_version",
            Box::new(|d| d.kubernetes_version = "latest".into()),
        ),
        ("node_ips", Box::new(|d| d.node_ips = ips(&["fd00::2"]))),
        (
            "pod_subnet",
            Box::new(|d| d.pod_subnet = "10.244.0.0".into()),
        ),
        (
            "service_subnet",
            Box::new(|d| d.service_subnet = "fd00::/112".into()),
        ),
        (
            "certificate_key",
            Box::new(|d| d.certificate_key = Some("xyz".into())),
        ),
        (
            "etcd_image_tag",
            Box::new(|d| d.etcd_image_tag = Some("v3.x".into())),
        ),
        ("api_bind_port", Box::new(|d| d.api_bind_port = 0)),
        (
            "node_labels",
            Box::new(|d| {
                d.node_labels.insert("a,b".into(), "c".into());
            }),
        ),
        ("join", Box::new(|d| d.role = NodeRole::Worker)),
    ];
    for (field, mutate) in cases {
        let mut d = control_plane();
        mutate(&mut d);
        let e = render(&d).unwrap_err().to_string();
        assert!(e.contains(field), "{field}: {e}");
    }
}

//! The CNI config kina-net writes, run with the real plugins (/usr/lib/cni: ptp, host-local,
//! portmap) the way a runtime runs a conflist, plus kina-net's routes and masquerade table —
//! all inside network namespaces the test creates: a node, one pod, and an "outside" namespace
//! holding another node's address and a host outside the cluster. Checks what a pod would
//! notice: its address and default route, egress masqueraded except towards nodes, hostPort
//! reachable, and nothing left after DEL.

mod support;

use std::net::SocketAddr;

use kina_addons::net::sync::NetSync;
use kina_addons::net::{NetConfig, NodeInfo, config};
use support::{Netns, conflist, connect_from, echo_peer_once, veth};

fn node(name: &str, ip: &str, cidr: &str) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        internal_ips: vec![ip.parse().unwrap()],
        pod_cidrs: vec![cidr.parse().unwrap()],
    }
}

#[test]
fn pods_get_addresses_egress_is_masqueraded_and_host_ports_work() {
    let host = Netns::new("cnode");
    let outside = Netns::new("cout");
    let pod = Netns::new("cpod");
    veth(
        &host,
        "eth0",
        "172.29.0.1/24",
        &outside,
        "eth0",
        "172.29.0.2/24",
    );
    outside.ip(&["addr", "add", "172.29.0.100/24", "dev", "eth0"]);
    // What kina-net on node n2 (172.29.0.2) would add.
    outside.ip(&["route", "add", "10.98.1.0/24", "via", "172.29.0.1"]);
    host.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("10-kindnet.conflist");
    let p = path.clone();
    host.block_on(move || async move {
        let (conn, handle, _) = rtnetlink::new_connection().unwrap();
        tokio::spawn(conn);
        let cfg = NetConfig {
            node_name: "n1".into(),
            pod_subnets: config::parse_subnets("10.98.0.0/16").unwrap(),
            control_plane_endpoint: None,
        };
        let nodes = [
            node("n1", "172.29.0.1", "10.98.1.0/24"),
            node("n2", "172.29.0.2", "10.98.2.0/24"),
        ];
        let (_, errors) = NetSync::new(cfg, handle, p, "nft")
            .sync(&nodes, false)
            .await;
        assert!(errors.is_empty(), "{errors:?}");
    });

    // The file as written, except host-local's leases go to the test's temp dir.
    let mut list: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let leases = tmp.path().join("ipam");
    list["plugins"][0]["ipam"]["dataDir"] = leases.display().to_string().into();
    let list = list.to_string();
    let ports = serde_json::json!([{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]);

    let result = conflist(&host, "ADD", &list, &pod, "c1", ports.clone());
    assert_eq!(result["cniVersion"], "1.0.0", "{result}");
    let pod_ip = result["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(pod_ip.starts_with("10.98.1."), "{result}");
    let routes = pod.ip(&["route"]);
    assert!(
        routes.contains("default via 10.98.1.1 dev eth0"),
        "{routes}"
    );
    assert!(std::fs::read_dir(leases.join("kindnet")).unwrap().count() > 0);

    // Leaving the cluster: the outside host sees the node's address.
    let srv = echo_peer_once(&outside, "172.29.0.100:8000".parse().unwrap());
    let seen = connect_from(&pod, "172.29.0.100:8000".parse().unwrap());
    srv.join().unwrap();
    assert!(
        seen.starts_with("172.29.0.1:"),
        "masqueraded egress seen as {seen}"
    );

    // To another node: the pod's own address.
    let srv = echo_peer_once(&outside, "172.29.0.2:8001".parse().unwrap());
    let seen = connect_from(&pod, "172.29.0.2:8001".parse().unwrap());
    srv.join().unwrap();
    assert!(
        seen.starts_with(&format!("{pod_ip}:")),
        "pod-to-node seen as {seen}"
    );

    // hostPort 18080 on the node reaches the pod's port 80.
    let srv = echo_peer_once(&pod, SocketAddr::from(([0, 0, 0, 0], 80)));
    let seen = connect_from(&outside, "172.29.0.1:18080".parse().unwrap());
    assert!(
        srv.join().unwrap().is_some(),
        "pod server got no connection"
    );
    assert!(seen.starts_with("172.29.0.2:"), "{seen}");

    conflist(&host, "DEL", &list, &pod, "c1", ports);
    let veths = host.ip(&["-o", "link", "show", "type", "veth"]);
    assert_eq!(veths.lines().count(), 1, "pod veth left behind:\n{veths}");
    let left: Vec<_> = std::fs::read_dir(leases.join("kindnet"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    assert!(left.is_empty(), "leases left: {left:?}");
    let nat = host.exec("nft", &["list", "ruleset"]);
    assert!(!nat.contains("18080"), "port mapping left:\n{nat}");
}

//! Subnet choice and cluster isolation, inside throw-away namespaces: a subnet the host already
//! routes is skipped, and two clusters get separate bridges, subnets and tables, so deleting one
//! leaves the other working.

mod network_support;

use kina::network::IpFamily;
use network_support::{Netns, TestHost};

#[tokio::test]
async fn subnet_choice_skips_subnets_the_host_uses() {
    let host = TestHost::new();
    // The host routes 172.18.0.0/16 and has an address in 172.19.0.0/16.
    host.ns.ok(&[
        "ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan1",
    ]);
    host.ns.ok(&["ip", "link", "set", "lan0", "up"]);
    host.ns.ok(&["ip", "link", "set", "lan1", "up"]);
    host.ns
        .ok(&["ip", "route", "add", "172.18.0.0/16", "dev", "lan0"]);
    host.ns
        .ok(&["ip", "addr", "add", "172.19.200.1/24", "dev", "lan1"]);
    // And an IPv6 ULA overlapping kind's default v6 subnet.
    host.ns.ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fc00:f853:ccd:e793::99/64",
        "dev",
        "lan1",
        "nodad",
    ]);

    let net = host
        .net()
        .ensure_cluster_network("skip", IpFamily::Dual)
        .await
        .unwrap();
    assert_eq!(net.v4.unwrap().to_string(), "172.20.0.0/16");
    assert_eq!(net.v6.unwrap().to_string(), "fc00:f853:ccd:e794::/64");

    // The host's own routes are untouched.
    let routes = host.ns.ok(&["ip", "-4", "route", "show"]);
    assert!(routes.contains("172.18.0.0/16 dev lan0"), "{routes}");
    host.net().delete_cluster_network("skip").await.unwrap();
    let routes = host.ns.ok(&["ip", "-4", "route", "show"]);
    assert!(routes.contains("172.18.0.0/16 dev lan0"), "{routes}");
    assert!(!routes.contains("172.20."), "{routes}");
}

#[tokio::test]
async fn two_clusters_do_not_collide() {
    let host = TestHost::new();
    let a = host
        .net()
        .ensure_cluster_network("a", IpFamily::Ipv4)
        .await
        .unwrap();
    let b = host
        .net()
        .ensure_cluster_network("b.v2_x", IpFamily::Ipv4)
        .await
        .unwrap();
    assert_ne!(a.bridge, b.bridge);
    assert!(!a.v4.unwrap().overlaps(b.v4.unwrap()), "{a:?} {b:?}");
    // Same node name in both clusters: distinct veths.
    let (na, nb) = (Netns::new(), Netns::new());
    let la = host
        .net()
        .attach_node(&a, "control-plane", &na.path())
        .await
        .unwrap();
    let lb = host
        .net()
        .attach_node(&b, "control-plane", &nb.path())
        .await
        .unwrap();
    assert_ne!(la.host_veth, lb.host_veth);

    let ruleset = host.ns.ruleset();
    assert!(ruleset.contains("table inet kina-a") && ruleset.contains("table inet kina-b.v2_x"));
    assert!(na.pings(&a.gateway4.unwrap().to_string()));
    assert!(nb.pings(&b.gateway4.unwrap().to_string()));

    // Deleting a leaves b intact.
    host.net().delete_cluster_network("a").await.unwrap();
    let links = host.ns.links();
    assert!(
        !links.contains(&a.bridge) && !links.contains(&la.host_veth),
        "{links:?}"
    );
    assert!(
        links.contains(&b.bridge) && links.contains(&lb.host_veth),
        "{links:?}"
    );
    let ruleset = host.ns.ruleset();
    assert!(
        !ruleset.contains("kina-a") && ruleset.contains("table inet kina-b.v2_x"),
        "{ruleset}"
    );
    assert!(nb.pings(&b.gateway4.unwrap().to_string()), "b still works");
    // Forwarding stays on while a cluster remains.
    assert_eq!(host.ns.sysctl("net.ipv4.ip_forward"), "1");

    // A new cluster never takes b's subnet.
    let c = host
        .net()
        .ensure_cluster_network("c", IpFamily::Ipv4)
        .await
        .unwrap();
    assert!(!c.v4.unwrap().overlaps(b.v4.unwrap()));
    host.net().delete_cluster_network("b.v2_x").await.unwrap();
    host.net().delete_cluster_network("c").await.unwrap();
    assert_eq!(host.ns.links(), ["lo"]);
    assert_eq!(host.ns.ruleset().trim(), "");
}

#[tokio::test]
async fn delete_without_state_still_removes_bridge_and_table() {
    let host = TestHost::new();
    let net = host
        .net()
        .ensure_cluster_network("lost", IpFamily::Ipv4)
        .await
        .unwrap();
    let node = Netns::new();
    let lease = host
        .net()
        .attach_node(&net, "n", &node.path())
        .await
        .unwrap();
    // The state directory is wiped (e.g. by hand); delete finds everything by its derived name.
    std::fs::remove_dir_all(host.state.path().join("network")).unwrap();
    host.net().delete_cluster_network("lost").await.unwrap();
    let links = host.ns.links();
    assert!(
        !links.contains(&net.bridge) && !links.contains(&lease.host_veth),
        "{links:?}"
    );
    assert_eq!(host.ns.ruleset().trim(), "");
}

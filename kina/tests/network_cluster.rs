//! A cluster network end to end, inside throw-away namespaces: bridge and gateway, nodes with
//! leased addresses that reach each other and the host, leases surviving a restart, and delete
//! leaving nothing behind.

mod network_support;

use kina::network::{IpFamily, NetworkError};
use network_support::{Netns, TestHost};

#[tokio::test]
async fn nodes_get_addresses_reach_each_other_and_delete_leaves_nothing() {
    let host = TestHost::new();
    let real_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let net = host
        .net()
        .ensure_cluster_network("kind", IpFamily::Ipv4)
        .await
        .unwrap();
    assert_eq!(net.v4.unwrap().to_string(), "172.18.0.0/16");
    assert_eq!(net.gateway4.unwrap().to_string(), "172.18.0.1");
    assert!(net.bridge.len() <= 15 && net.bridge.starts_with("kina-"));

    let br = host
        .ns
        .ok(&["ip", "-4", "-o", "addr", "show", "dev", &net.bridge]);
    assert!(br.contains("inet 172.18.0.1/16"), "{br}");
    assert_eq!(host.ns.sysctl("net.ipv4.ip_forward"), "1");
    assert_eq!(
        host.ns
            .sysctl(&format!("net.ipv4.conf.{}.route_localnet", net.bridge)),
        "1"
    );
    // Only the namespace playing host changed, never the real host.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        real_forward
    );

    // Idempotent.
    let again = host
        .net()
        .ensure_cluster_network("kind", IpFamily::Ipv4)
        .await
        .unwrap();
    assert_eq!(again, net);

    let (n1, n2) = (Netns::new(), Netns::new());
    let a1 = host
        .net()
        .attach_node(&net, "kind-control-plane", &n1.path())
        .await
        .unwrap();
    let a2 = host
        .net()
        .attach_node(&net, "kind-worker", &n2.path())
        .await
        .unwrap();
    assert_eq!(a1.ipv4.unwrap().to_string(), "172.18.0.2");
    assert_eq!(a2.ipv4.unwrap().to_string(), "172.18.0.3");

    let eth0 = n1.ok(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(eth0.contains("inet 172.18.0.2/16"), "{eth0}");
    let routes = n1.ok(&["ip", "-4", "route", "show", "default"]);
    assert!(
        routes.contains("default via 172.18.0.1 dev eth0"),
        "{routes}"
    );
    assert!(n1.ok(&["ip", "link", "show", "lo"]).contains("UP"));

    assert!(n1.pings("172.18.0.3"), "node 1 -> node 2");
    assert!(n2.pings("172.18.0.2"), "node 2 -> node 1");
    assert!(n1.pings("172.18.0.1"), "node -> host bridge");
    assert!(host.ns.pings("172.18.0.3"), "host -> node");

    // Only the cluster's table is in the host's ruleset.
    let ruleset = host.ns.ruleset();
    assert_eq!(ruleset.matches("table ").count(), 1, "{ruleset}");
    assert!(ruleset.contains("table inet kina-kind"), "{ruleset}");

    // Re-attaching keeps the lease.
    let again = host
        .net()
        .attach_node(&net, "kind-control-plane", &n1.path())
        .await
        .unwrap();
    assert_eq!(again.ipv4, a1.ipv4);
    assert!(n1.pings("172.18.0.3"));

    host.net().delete_cluster_network("kind").await.unwrap();
    let links = host.ns.links();
    assert_eq!(links, ["lo"], "links left in host: {links:?}");
    assert_eq!(host.ns.ruleset().trim(), "", "rules left behind");
    assert!(
        !n1.links().contains(&"eth0".to_string()),
        "node eth0 left behind"
    );
    assert!(
        host.net().cluster_network("kind").unwrap().is_none(),
        "state left behind"
    );
    let leftover: Vec<_> = std::fs::read_dir(host.state.path().join("network/clusters"))
        .unwrap()
        .collect();
    assert!(leftover.is_empty(), "{leftover:?}");
    // Forwarding was off in the fresh namespace, so it is restored with the last cluster.
    assert_eq!(host.ns.sysctl("net.ipv4.ip_forward"), "0");

    // Deleting again is fine.
    host.net().delete_cluster_network("kind").await.unwrap();
}

#[tokio::test]
async fn leases_persist_across_restart_and_are_released_on_detach() {
    let host = TestHost::new();
    let net = host
        .net()
        .ensure_cluster_network("lease", IpFamily::Ipv4)
        .await
        .unwrap();
    let nodes: Vec<Netns> = (0..3).map(|_| Netns::new()).collect();
    let a = host
        .net()
        .attach_node(&net, "a", &nodes[0].path())
        .await
        .unwrap();
    let b = host
        .net()
        .attach_node(&net, "b", &nodes[1].path())
        .await
        .unwrap();

    // A new NetworkHost over the same state is a restart: no live lease is handed out again.
    let restarted = host.net();
    let c = restarted
        .attach_node(&net, "c", &nodes[2].path())
        .await
        .unwrap();
    assert_eq!(c.ipv4.unwrap().to_string(), "172.18.0.4");
    assert_ne!(c.ipv4, a.ipv4);
    assert_ne!(c.ipv4, b.ipv4);
    let on_record = restarted.nodes("lease").unwrap();
    assert_eq!(on_record.len(), 3);
    assert_eq!(on_record["b"].0, b);

    // Detach removes the veth and releases the lease for the next node.
    host.net().detach_node(&net, "a").await.unwrap();
    assert!(
        !host.ns.links().contains(&a.host_veth),
        "veth of a left behind"
    );
    assert!(!nodes[0].links().contains(&"eth0".to_string()));
    assert!(!host.net().nodes("lease").unwrap().contains_key("a"));
    host.net().detach_node(&net, "a").await.unwrap();
    let d = host
        .net()
        .attach_node(&net, "d", &nodes[0].path())
        .await
        .unwrap();
    assert_eq!(d.ipv4, a.ipv4, "released address is reused");
    assert!(nodes[0].pings("172.18.0.4"));

    host.net().delete_cluster_network("lease").await.unwrap();
    assert_eq!(host.ns.links(), ["lo"]);
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_error() {
    let host = TestHost::new();
    let err = host
        .net()
        .ensure_cluster_network("Bad Name", IpFamily::Ipv4)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid cluster name \"Bad Name\""),
        "{err}"
    );

    let net = host
        .net()
        .ensure_cluster_network("ok", IpFamily::Ipv4)
        .await
        .unwrap();
    let err = host
        .net()
        .ensure_cluster_network("ok", IpFamily::Dual)
        .await
        .unwrap_err();
    assert!(matches!(err, NetworkError::FamilyMismatch { .. }), "{err}");

    // A node namespace that does not exist: error names it, nothing is leaked or leased.
    let err = host
        .net()
        .attach_node(
            &net,
            "ghost",
            std::path::Path::new("/var/run/netns/kina-t-missing"),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("kina-t-missing"), "{err}");
    assert!(host.net().nodes("ok").unwrap().is_empty());
    assert_eq!(
        host.ns.links().len(),
        2,
        "only lo and the bridge: {:?}",
        host.ns.links()
    );

    let err = host
        .net()
        .publish_ports(&net, "ghost", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, NetworkError::NodeNotAttached { .. }), "{err}");

    // Corrupt state is reported with its path, not ignored.
    let path = host.state.path().join("network/clusters/ok.json");
    std::fs::write(&path, "{").unwrap();
    let err = host
        .net()
        .ensure_cluster_network("ok", IpFamily::Ipv4)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ok.json"), "{err}");
}

#[tokio::test]
async fn ensure_recreates_what_a_reboot_removed() {
    let host = TestHost::new();
    let net = host
        .net()
        .ensure_cluster_network("boot", IpFamily::Ipv4)
        .await
        .unwrap();
    // A reboot drops the bridge and the ruleset; the state directory survives.
    host.ns.ok(&["ip", "link", "del", &net.bridge]);
    host.ns.ok(&["nft", "flush", "ruleset"]);
    let again = host
        .net()
        .ensure_cluster_network("boot", IpFamily::Ipv4)
        .await
        .unwrap();
    assert_eq!(again, net, "same subnet and bridge as on record");
    let br = host
        .ns
        .ok(&["ip", "-4", "-o", "addr", "show", "dev", &net.bridge]);
    assert!(br.contains("inet 172.18.0.1/16"), "{br}");
    assert!(host.ns.ruleset().contains("table inet kina-boot"));
    let node = Netns::new();
    host.net()
        .attach_node(&net, "boot-cp", &node.path())
        .await
        .unwrap();
    assert!(node.pings("172.18.0.1"));
    host.net().delete_cluster_network("boot").await.unwrap();
}

#[tokio::test]
async fn concurrent_attaches_get_distinct_leases() {
    let host = TestHost::new();
    let net = host
        .net()
        .ensure_cluster_network("busy", IpFamily::Ipv4)
        .await
        .unwrap();
    let nodes: Vec<Netns> = (0..4).map(|_| Netns::new()).collect();
    // Separate NetworkHost values (as separate kina processes would be) racing on one state.
    let attaches = nodes.iter().enumerate().map(|(i, ns)| {
        let (h, net, path) = (host.net(), net.clone(), ns.path());
        tokio::spawn(async move { h.attach_node(&net, &format!("n{i}"), &path).await })
    });
    let mut ips = Vec::new();
    for task in attaches.collect::<Vec<_>>() {
        ips.push(task.await.unwrap().unwrap().ipv4.unwrap());
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 4, "duplicate leases: {ips:?}");
    assert_eq!(host.net().nodes("busy").unwrap().len(), 4);
    for ip in &ips {
        assert!(host.ns.pings(&ip.to_string()), "node {ip} unreachable");
    }
    host.net().delete_cluster_network("busy").await.unwrap();
    assert_eq!(host.ns.links(), ["lo"]);
}

//! IPv6 and dual-stack cluster networks, inside throw-away namespaces.

mod network_support;

use kina::network::{IpFamily, PortMapping, Protocol};
use network_support::{Netns, TestHost, eventually, tcp_get, tcp_server};

#[tokio::test]
async fn dual_stack_nodes_get_both_families_and_reach_the_gateways() {
    let host = TestHost::new();
    // An uplink that learns its IPv6 routes from router advertisements.
    host.ns.ok(&[
        "ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan1",
    ]);
    host.ns
        .ok(&["sysctl", "-w", "net.ipv6.conf.lan0.accept_ra=1"]);
    let net = host
        .net()
        .ensure_cluster_network("dual", IpFamily::Dual)
        .await
        .unwrap();
    assert_eq!(net.v6.unwrap().to_string(), "fc00:f853:ccd:e793::/64");
    let gw6 = net.gateway6.unwrap().to_string();
    assert_eq!(gw6, "fc00:f853:ccd:e793::1");
    // Forwarding would make the kernel ignore those advertisements: kina keeps them accepted.
    assert_eq!(host.ns.sysctl("net.ipv6.conf.lan0.accept_ra"), "2");
    assert_eq!(host.ns.sysctl("net.ipv6.conf.all.forwarding"), "1");

    let (n1, n2) = (Netns::new(), Netns::new());
    let a1 = host
        .net()
        .attach_node(&net, "dual-control-plane", &n1.path())
        .await
        .unwrap();
    let a2 = host
        .net()
        .attach_node(&net, "dual-worker", &n2.path())
        .await
        .unwrap();
    let v6 = a1.ipv6.unwrap().to_string();
    assert_eq!(v6, "fc00:f853:ccd:e793::2");
    let eth0 = n1.ok(&["ip", "-6", "-o", "addr", "show", "dev", "eth0"]);
    assert!(eth0.contains("inet6 fc00:f853:ccd:e793::2/64"), "{eth0}");
    let routes = n1.ok(&["ip", "-6", "route", "show", "default"]);
    assert!(
        routes.contains(&format!("default via {gw6} dev eth0")),
        "{routes}"
    );

    assert!(n1.pings(&gw6), "node -> v6 gateway");
    assert!(
        n1.pings(&a2.ipv6.unwrap().to_string()),
        "node -> node over v6"
    );
    assert!(
        n1.pings(&net.gateway4.unwrap().to_string()),
        "node -> v4 gateway"
    );
    // The node's link-local address passes DAD even though its bridge port is in hairpin mode.
    let ll = eventually("link-local DAD done", || {
        let out = n1.ok(&["ip", "-6", "addr", "show", "dev", "eth0", "scope", "link"]);
        (out.contains("fe80::") && !out.contains("tentative")).then_some(out)
    });
    assert!(!ll.contains("dadfailed"), "{ll}");

    // A port published on "::" reaches the node's v6 address.
    let _web = tcp_server(&n1, 80, "v6-hello");
    let published = host
        .net()
        .publish_ports(
            &net,
            "dual-control-plane",
            &[PortMapping {
                container_port: 80,
                host_port: 18086,
                listen_address: Some("::".parse().unwrap()),
                protocol: Protocol::Tcp,
            }],
        )
        .await
        .unwrap();
    assert_eq!(published[0].node_ip.to_string(), v6);
    let target = format!("[{gw6}]:18086");
    assert_eq!(
        eventually(&target, || tcp_get(&host.ns, &target)),
        "v6-hello"
    );

    host.net().delete_cluster_network("dual").await.unwrap();
    let mut links = host.ns.links();
    links.sort();
    assert_eq!(links, ["lan0", "lan1", "lo"]);
    assert_eq!(host.ns.sysctl("net.ipv6.conf.all.forwarding"), "0");
    assert_eq!(host.ns.sysctl("net.ipv6.conf.lan0.accept_ra"), "1");
}

#[tokio::test]
async fn ipv6_only_cluster_has_no_ipv4() {
    let host = TestHost::new();
    let net = host
        .net()
        .ensure_cluster_network("six", IpFamily::Ipv6)
        .await
        .unwrap();
    assert!(net.v4.is_none() && net.gateway4.is_none());
    let node = Netns::new();
    let lease = host
        .net()
        .attach_node(&net, "six-cp", &node.path())
        .await
        .unwrap();
    assert!(lease.ipv4.is_none());
    assert!(
        node.ok(&["ip", "-4", "addr", "show", "dev", "eth0"])
            .trim()
            .is_empty()
    );
    assert!(node.pings(&net.gateway6.unwrap().to_string()));
    // Forwarding for v4 was not touched.
    assert_eq!(host.ns.sysctl("net.ipv4.ip_forward"), "0");
    let ruleset = host.ns.ruleset();
    assert!(
        ruleset.contains("ip6 saddr fc00:f853:ccd:e793::/64"),
        "{ruleset}"
    );
    assert!(!ruleset.contains("ip saddr 127.0.0.0/8"), "{ruleset}");
    // Without an IPv4 address the default listen address is "::".
    let published = host
        .net()
        .publish_ports(
            &net,
            "six-cp",
            &[PortMapping {
                container_port: 80,
                host_port: 0,
                listen_address: None,
                protocol: Protocol::Udp,
            }],
        )
        .await
        .unwrap();
    assert_eq!(published[0].listen_address.to_string(), "::");
    assert_ne!(published[0].host_port, 0);
    host.net().delete_cluster_network("six").await.unwrap();
}

#[tokio::test]
async fn ipv6_nodes_reach_outside_through_masquerade() {
    let host = TestHost::new();
    // An outside IPv6 network with no route back to the node subnet.
    let wan = Netns::new();
    host.ns.ok(&[
        "ip", "link", "add", "wan0", "type", "veth", "peer", "name", "wanpeer",
    ]);
    host.ns
        .ok(&["ip", "link", "set", "wanpeer", "netns", &wan.name]);
    host.ns.ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        "2001:db8:1::1/64",
        "dev",
        "wan0",
        "nodad",
    ]);
    host.ns.ok(&["ip", "link", "set", "wan0", "up"]);
    wan.ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        "2001:db8:1::2/64",
        "dev",
        "wanpeer",
        "nodad",
    ]);
    wan.ok(&["ip", "link", "set", "wanpeer", "up"]);

    let net = host
        .net()
        .ensure_cluster_network("out6", IpFamily::Ipv6)
        .await
        .unwrap();
    let node = Netns::new();
    host.net()
        .attach_node(&net, "out6-cp", &node.path())
        .await
        .unwrap();
    eventually("node -> outside v6", || {
        node.pings("2001:db8:1::2").then(String::new)
    });
    host.ns.ok(&["nft", "delete", "table", "inet", "kina-out6"]);
    assert!(
        !node.pings("2001:db8:1::2"),
        "reached outside without masquerade"
    );
    host.net().delete_cluster_network("out6").await.unwrap();
}

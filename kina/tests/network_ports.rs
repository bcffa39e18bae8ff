//! Port mappings and egress, inside throw-away namespaces: a server in a node is reached from
//! the host over 127.0.0.1, the bridge address and another host address, over TCP and UDP;
//! random host ports stay stable; nodes reach an outside network through masquerade.

mod network_support;

use kina::network::{IpFamily, NetworkError, PortMapping, Protocol};
use network_support::{Netns, TestHost, eventually, tcp_get, tcp_server, udp_get, udp_server};

fn mapping(container: u16, host: u16, listen: &str, protocol: Protocol) -> PortMapping {
    PortMapping {
        container_port: container,
        host_port: host,
        listen_address: Some(listen.parse().unwrap()),
        protocol,
    }
}

#[tokio::test]
async fn mapped_ports_reach_the_node_over_loopback_bridge_and_host_addresses() {
    let host = TestHost::new();
    // Another host address (like a LAN IP) on an interface of the host namespace (a veth
    // pair, as this kernel has no dummy driver).
    host.ns.ok(&[
        "ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1",
    ]);
    host.ns.ok(&["ip", "link", "set", "uplink1", "up"]);
    host.ns
        .ok(&["ip", "addr", "add", "192.0.2.10/24", "dev", "uplink0"]);
    host.ns.ok(&["ip", "link", "set", "uplink0", "up"]);

    let net = host
        .net()
        .ensure_cluster_network("ports", IpFamily::Ipv4)
        .await
        .unwrap();
    let node = Netns::new();
    let addrs = host
        .net()
        .attach_node(&net, "ports-control-plane", &node.path())
        .await
        .unwrap();
    let _web = tcp_server(&node, 80, "hello-from-node");
    let _dns = udp_server(&node, 53, "pong-from-node");
    let _api = tcp_server(&node, 6443, "api-server");

    let published = host
        .net()
        .publish_ports(
            &net,
            "ports-control-plane",
            &[
                mapping(80, 18080, "0.0.0.0", Protocol::Tcp),
                mapping(53, 15353, "0.0.0.0", Protocol::Udp),
                mapping(6443, 0, "127.0.0.1", Protocol::Tcp),
                mapping(80, 18081, "192.0.2.10", Protocol::Tcp),
                mapping(9999, 19999, "0.0.0.0", Protocol::Sctp),
            ],
        )
        .await
        .unwrap();
    assert_eq!(published.len(), 5);
    assert!(
        published
            .iter()
            .all(|p| Some(p.node_ip) == addrs.ipv4.map(Into::into))
    );
    let api_port = published[2].host_port;
    assert_ne!(api_port, 0, "a free port was picked for the API server");

    let gw = net.gateway4.unwrap().to_string();
    for target in [
        "127.0.0.1:18080",
        &format!("{gw}:18080"),
        "192.0.2.10:18080",
        "192.0.2.10:18081",
    ] {
        let got = eventually(target, || tcp_get(&host.ns, target));
        assert_eq!(got, "hello-from-node", "via {target}");
    }
    let api = format!("127.0.0.1:{api_port}");
    assert_eq!(eventually(&api, || tcp_get(&host.ns, &api)), "api-server");
    // A listen address restricts the mapping: 18081 exists only on 192.0.2.10.
    assert!(tcp_get(&host.ns, "127.0.0.1:18081").is_none());
    // The API server port is published on loopback only.
    assert!(tcp_get(&host.ns, &format!("{gw}:{api_port}")).is_none());

    assert_eq!(
        eventually("udp 127.0.0.1:15353", || udp_get(
            &host.ns,
            "127.0.0.1:15353"
        )),
        "pong-from-node"
    );
    assert_eq!(
        eventually("udp gateway", || udp_get(&host.ns, &format!("{gw}:15353"))),
        "pong-from-node"
    );

    let ruleset = host.ns.ruleset();
    assert!(ruleset.contains("sctp dport 19999"), "{ruleset}");
    assert_eq!(ruleset.matches("table ").count(), 1, "{ruleset}");

    // Publishing again keeps the randomly picked port (it is on record).
    let again = host
        .net()
        .publish_ports(
            &net,
            "ports-control-plane",
            &[mapping(6443, 0, "127.0.0.1", Protocol::Tcp)],
        )
        .await
        .unwrap();
    assert_eq!(again[0].host_port, api_port);
    // ... and the set replaced the previous one: 18080 is gone.
    assert!(!host.ns.ruleset().contains("18080"));
    assert!(tcp_get(&host.ns, "127.0.0.1:18080").is_none());

    // Detach unpublishes the node's ports.
    host.net()
        .detach_node(&net, "ports-control-plane")
        .await
        .unwrap();
    assert!(!host.ns.ruleset().contains(&format!("dport {api_port}")));
    host.net().delete_cluster_network("ports").await.unwrap();
    assert_eq!(host.ns.ruleset().trim(), "");
}

#[tokio::test]
async fn port_conflicts_are_refused() {
    let host = TestHost::new();
    let net = host
        .net()
        .ensure_cluster_network("one", IpFamily::Ipv4)
        .await
        .unwrap();
    let other = host
        .net()
        .ensure_cluster_network("two", IpFamily::Ipv4)
        .await
        .unwrap();
    let (n1, n2) = (Netns::new(), Netns::new());
    host.net()
        .attach_node(&net, "one-cp", &n1.path())
        .await
        .unwrap();
    host.net()
        .attach_node(&other, "two-cp", &n2.path())
        .await
        .unwrap();
    host.net()
        .publish_ports(
            &net,
            "one-cp",
            &[mapping(80, 18080, "0.0.0.0", Protocol::Tcp)],
        )
        .await
        .unwrap();

    // Another cluster cannot take the same port, even on a narrower listen address.
    let err = host
        .net()
        .publish_ports(
            &other,
            "two-cp",
            &[mapping(80, 18080, "127.0.0.1", Protocol::Tcp)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, NetworkError::PortInUse { port: 18080, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("cluster one"), "{err}");

    // A socket of the host holding the port blocks it as well.
    let _holder = host
        .ns
        .spawn(&["socat", "TCP4-LISTEN:18090,bind=127.0.0.1", "-"]);
    eventually("holder listening", || {
        let listening = host.ns.ok(&["ss", "-Hltn", "sport", "= :18090"]);
        (!listening.trim().is_empty()).then_some(listening)
    });
    let err = host
        .net()
        .publish_ports(
            &other,
            "two-cp",
            &[mapping(80, 18090, "127.0.0.1", Protocol::Tcp)],
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("18090") && err.contains("host socket"),
        "{err}"
    );

    // A listen address the host does not have is refused by name.
    let err = host
        .net()
        .publish_ports(
            &other,
            "two-cp",
            &[mapping(80, 0, "192.0.2.77", Protocol::Tcp)],
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("192.0.2.77 is not an address of this host"),
        "{err}"
    );

    // The failed attempts changed nothing of cluster two.
    assert!(host.net().nodes("two").unwrap()["two-cp"].1.is_empty());
    host.net().delete_cluster_network("one").await.unwrap();
    host.net().delete_cluster_network("two").await.unwrap();
}

#[tokio::test]
async fn nodes_reach_outside_networks_through_masquerade() {
    let host = TestHost::new();
    // An "outside" network behind the host: it has no route back to the node subnet, so only
    // masqueraded traffic gets answers.
    let wan = Netns::new();
    host.ns.ok(&[
        "ip", "link", "add", "wan0", "type", "veth", "peer", "name", "wanpeer",
    ]);
    host.ns
        .ok(&["ip", "link", "set", "wanpeer", "netns", &wan.name]);
    host.ns
        .ok(&["ip", "addr", "add", "198.51.100.1/24", "dev", "wan0"]);
    host.ns.ok(&["ip", "link", "set", "wan0", "up"]);
    wan.ok(&["ip", "addr", "add", "198.51.100.2/24", "dev", "wanpeer"]);
    wan.ok(&["ip", "link", "set", "wanpeer", "up"]);

    let net = host
        .net()
        .ensure_cluster_network("egress", IpFamily::Ipv4)
        .await
        .unwrap();
    let node = Netns::new();
    host.net()
        .attach_node(&net, "egress-cp", &node.path())
        .await
        .unwrap();
    let _server = tcp_server(&wan, 8080, "outside");
    let got = eventually("node -> outside", || tcp_get(&node, "198.51.100.2:8080"));
    assert_eq!(got, "outside");
    assert!(node.pings("198.51.100.2"));

    // Without the cluster's table the same traffic gets no answer.
    host.ns
        .ok(&["nft", "delete", "table", "inet", "kina-egress"]);
    assert!(
        !node.pings("198.51.100.2"),
        "reached outside without masquerade"
    );
    host.net().delete_cluster_network("egress").await.unwrap();
}

/// A TCP server in `ns` that answers with the client's address as it sees it.
fn peer_echo_server(ns: &Netns, port: u16) -> network_support::Background {
    ns.spawn(&[
        "socat",
        &format!("TCP4-LISTEN:{port},fork,reuseaddr"),
        "SYSTEM:echo $SOCAT_PEERADDR",
    ])
}

#[tokio::test]
async fn nodes_see_real_sources_and_reach_published_ports_hairpin() {
    let host = TestHost::new();
    let net = host
        .net()
        .ensure_cluster_network("hair", IpFamily::Ipv4)
        .await
        .unwrap();
    let (n1, n2) = (Netns::new(), Netns::new());
    let a1 = host
        .net()
        .attach_node(&net, "hair-cp", &n1.path())
        .await
        .unwrap();
    let a2 = host
        .net()
        .attach_node(&net, "hair-worker", &n2.path())
        .await
        .unwrap();
    let _echo = peer_echo_server(&n1, 80);
    let (ip1, ip2) = (a1.ipv4.unwrap().to_string(), a2.ipv4.unwrap().to_string());
    let gw = net.gateway4.unwrap().to_string();
    host.net()
        .publish_ports(
            &net,
            "hair-cp",
            &[mapping(80, 18080, "0.0.0.0", Protocol::Tcp)],
        )
        .await
        .unwrap();

    // Node to node inside the cluster: no NAT, the server sees the real client address (also
    // with br_netfilter sending bridged traffic through the host's hooks).
    let direct = format!("{ip1}:80");
    assert_eq!(eventually(&direct, || tcp_get(&n2, &direct)), ip2);
    // Node to a published port of the host, served by another node or by itself (hairpin).
    let published = format!("{gw}:18080");
    assert_eq!(eventually("n2 hairpin", || tcp_get(&n2, &published)), gw);
    assert_eq!(eventually("n1 hairpin", || tcp_get(&n1, &published)), gw);
    // From the host through loopback the node sees the bridge address.
    assert_eq!(
        eventually("loopback", || tcp_get(&host.ns, "127.0.0.1:18080")),
        gw
    );
    host.net().delete_cluster_network("hair").await.unwrap();
}

#[tokio::test]
async fn nodes_cannot_reach_host_loopback_services() {
    let host = TestHost::new();
    let net = host
        .net()
        .ensure_cluster_network("guard", IpFamily::Ipv4)
        .await
        .unwrap();
    let node = Netns::new();
    host.net()
        .attach_node(&net, "guard-cp", &node.path())
        .await
        .unwrap();
    // A service of the host bound to loopback only.
    let _secret = host.ns.spawn(&[
        "socat",
        "TCP4-LISTEN:7000,bind=127.0.0.2,fork,reuseaddr",
        "SYSTEM:echo host-secret",
    ]);
    eventually("host service", || tcp_get(&host.ns, "127.0.0.2:7000"));
    // A hostile node routes 127.0.0.0/8 to the bridge (its own lo keeps only 127.0.0.1).
    node.ok(&["sysctl", "-w", "net.ipv4.conf.eth0.route_localnet=1"]);
    node.ok(&[
        "ip",
        "route",
        "del",
        "local",
        "127.0.0.0/8",
        "table",
        "local",
    ]);
    node.ok(&[
        "ip",
        "route",
        "add",
        "127.0.0.0/8",
        "via",
        &net.gateway4.unwrap().to_string(),
    ]);
    assert!(
        tcp_get(&node, "127.0.0.2:7000").is_none(),
        "node reached the host's loopback service through the bridge"
    );
    // The guard rule is what stops it: the bridge accepts loopback destinations
    // (route_localnet) so that published ports work from 127.0.0.1.
    host.ns
        .ok(&["nft", "delete", "chain", "inet", "kina-guard", "guard"]);
    assert_eq!(
        eventually("without guard", || tcp_get(&node, "127.0.0.2:7000")),
        "host-secret",
        "the test setup does not exercise the guard"
    );
    host.net().delete_cluster_network("guard").await.unwrap();
}

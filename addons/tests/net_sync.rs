//! kina-net's sync pass for real, in network namespaces the test creates: a "node" namespace
//! whose eth0 links to a namespace playing the other nodes. Checks the CNI config file, the
//! routes (`ip route`) and the nftables table as a user of the node would see them, across
//! node changes and a restart.

mod support;

use std::path::PathBuf;

use kina_addons::net::sync::{NetSync, SyncReport};
use kina_addons::net::{NetConfig, NodeInfo, config, routes::ROUTE_PROTOCOL};
use support::{Netns, veth};

fn node(name: &str, ips: &[&str], cidrs: &[&str]) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        internal_ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        pod_cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
    }
}

fn our_routes(ns: &Netns) -> Vec<String> {
    let proto = ROUTE_PROTOCOL.to_string();
    let mut v: Vec<String> = [&["-4"][..], &["-6"][..]]
        .iter()
        .flat_map(|fam| {
            let mut args = fam.to_vec();
            args.extend(["route", "show", "proto", &proto]);
            ns.ip(&args)
                .lines()
                .map(|l| l.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    v.sort();
    v
}

fn pass(host: &Netns, conflist: PathBuf, nodes: Vec<Vec<NodeInfo>>) -> Vec<SyncReport> {
    host.block_on(move || async move {
        let (conn, handle, _) = rtnetlink::new_connection().unwrap();
        tokio::spawn(conn);
        let cfg = NetConfig {
            node_name: "n1".into(),
            pod_subnets: config::parse_subnets("10.99.0.0/16,fd00:99::/48").unwrap(),
            control_plane_endpoint: None,
        };
        let mut sync = NetSync::new(cfg, handle, conflist, "nft");
        let mut reports = Vec::new();
        for list in nodes {
            let (report, errors) = sync.sync(&list, false).await;
            assert!(errors.is_empty(), "{errors:?}");
            reports.push(report);
        }
        reports
    })
}

#[test]
fn config_routes_and_masquerade_follow_the_nodes() {
    let host = Netns::new("node");
    let others = Netns::new("others");
    veth(
        &host,
        "eth0",
        "172.30.0.1/24",
        &others,
        "eth0",
        "172.30.0.2/24",
    );
    others.ip(&["addr", "add", "172.30.0.3/24", "dev", "eth0"]);
    host.ip(&["addr", "add", "fd99::1/64", "dev", "eth0", "nodad"]);
    others.ip(&["addr", "add", "fd99::2/64", "dev", "eth0", "nodad"]);
    host.ip(&["link", "set", "eth0", "mtu", "1400"]);
    let tmp = tempfile::tempdir().unwrap();
    let conflist = tmp.path().join("net.d/10-kindnet.conflist");

    let me = node(
        "n1",
        &["172.30.0.1", "fd99::1"],
        &["10.99.1.0/24", "fd00:99:0:1::/64"],
    );
    let all = vec![
        me.clone(),
        node(
            "n2",
            &["172.30.0.2", "fd99::2"],
            &["10.99.2.0/24", "fd00:99:0:2::/64"],
        ),
        node("n3", &["172.30.0.3"], &["10.99.3.0/24"]),
    ];
    // n2 moves to .3, n3 leaves.
    let moved = vec![me.clone(), node("n2", &["172.30.0.3"], &["10.99.2.0/24"])];
    let reports = pass(
        &host,
        conflist.clone(),
        vec![all.clone(), all.clone(), moved],
    );

    assert!(reports[0].conflist_written && reports[0].masq_applied);
    assert_eq!((reports[0].routes_added, reports[0].routes_removed), (3, 0));
    // Nothing changed: nothing is rewritten.
    assert_eq!(reports[1], SyncReport::default());
    assert_eq!((reports[2].routes_added, reports[2].routes_removed), (1, 3));

    let text = std::fs::read_to_string(&conflist).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["plugins"][0]["mtu"], 1400, "{text}");
    assert_eq!(
        v["plugins"][0]["ipam"]["ranges"],
        serde_json::json!([[{"subnet": "10.99.1.0/24"}], [{"subnet": "fd00:99:0:1::/64"}]])
    );

    assert_eq!(
        our_routes(&host),
        vec!["10.99.2.0/24 via 172.30.0.3 dev eth0"]
    );
    let shown = host.ip(&["route", "show", "10.99.2.0/24"]);
    assert!(
        shown.contains(&format!("proto {ROUTE_PROTOCOL}")),
        "{shown}"
    );
    let table = host.exec("nft", &["list", "table", "inet", "kina-net"]);
    assert!(
        table.contains("172.30.0.1") && table.contains("172.30.0.3"),
        "{table}"
    );
    assert!(
        !table.contains("172.30.0.2"),
        "left node still exempt:\n{table}"
    );
    assert!(table.contains("masquerade"), "{table}");

    // A restarted daemon finds everything in place: no route or file churn.
    let restarted = pass(
        &host,
        conflist.clone(),
        vec![vec![
            me.clone(),
            node("n2", &["172.30.0.3"], &["10.99.2.0/24"]),
        ]],
    );
    assert!(!restarted[0].conflist_written);
    assert_eq!(
        (restarted[0].routes_added, restarted[0].routes_removed),
        (0, 0)
    );

    // A route some other tool replaced is taken back; when n2 leaves, its route goes.
    host.ip(&["route", "replace", "10.99.2.0/24", "via", "172.30.0.2"]);
    let again = pass(
        &host,
        conflist.clone(),
        vec![
            vec![me.clone(), node("n2", &["172.30.0.3"], &["10.99.2.0/24"])],
            vec![me],
        ],
    );
    assert_eq!(again[0].routes_added, 1);
    assert_eq!(again[1].routes_removed, 1);
    assert!(our_routes(&host).is_empty(), "{:?}", our_routes(&host));
    assert!(
        !host.ip(&["route"]).contains("10.99.2.0"),
        "{}",
        host.ip(&["route"])
    );
}

#[test]
fn dual_stack_routes_use_each_family_gateway() {
    let host = Netns::new("node6");
    let others = Netns::new("others6");
    veth(
        &host,
        "eth0",
        "172.31.0.1/24",
        &others,
        "eth0",
        "172.31.0.2/24",
    );
    host.ip(&["addr", "add", "fd98::1/64", "dev", "eth0", "nodad"]);
    others.ip(&["addr", "add", "fd98::2/64", "dev", "eth0", "nodad"]);
    let tmp = tempfile::tempdir().unwrap();
    let nodes = vec![
        node(
            "n1",
            &["172.31.0.1", "fd98::1"],
            &["10.99.1.0/24", "fd00:99:0:1::/64"],
        ),
        node(
            "n2",
            &["172.31.0.2", "fd98::2"],
            &["10.99.2.0/24", "fd00:99:0:2::/64"],
        ),
    ];
    pass(&host, tmp.path().join("c.conflist"), vec![nodes]);
    let routes = our_routes(&host);
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert!(
        routes[0].starts_with("10.99.2.0/24 via 172.31.0.2"),
        "{routes:?}"
    );
    assert!(
        routes[1].starts_with("fd00:99:0:2::/64 via fd98::2"),
        "{routes:?}"
    );
}

//! Real CNI runs with Debian's bridge, host-local, portmap and loopback plugins, each test in
//! its own throwaway host netns: pods get reachable IPs and host ports, DEL removes veths,
//! leases and rules (also after a restart and without a netns), failed ADDs leave nothing.

mod cni_support;

use std::net::{IpAddr, SocketAddr};

use cni_support::*;
use cri_server::network::{CniManager, PortMapping};

fn port_mapping(host: u16, container: u16) -> PortMapping {
    PortMapping {
        host_port: host,
        container_port: container,
        protocol: "tcp".into(),
        host_ip: String::new(),
    }
}

async fn attach_reach_detach(version: &str, subnet: &str, gateway: &str) {
    let mut env = TestEnv::new();
    env.write_conf(
        "10-kt.conflist",
        &env.conflist("kt", version, subnet, &[PORTMAP, LOOPBACK]),
    );
    let mgr = CniManager::new(env.config.clone());
    mgr.network_ready().expect("network ready");
    let ns = env.new_netns("pod1");
    let mut pod = env.pod("c1", &ns);
    pod.port_mappings.push(port_mapping(18080, 8080));

    let status = mgr.setup(&pod).await.expect("ADD");
    let ip = status.primary_ip().expect("pod IP");
    let net: ipnetwork::IpNetwork = subnet.parse().unwrap();
    assert!(net.contains(ip), "{ip} not in {subnet}");
    assert_eq!(status.ips[0].address.prefix(), net.prefix());
    let gw: IpAddr = gateway.parse().unwrap();
    assert_eq!(status.gateway, Some(gw));
    assert_eq!(status.network, "kt");
    assert_eq!(env.leases("kt"), vec![ip.to_string()]);
    assert_eq!(veths().len(), 1, "one host-side veth");
    let pod_links = links_in(&ns);
    assert!(pod_links.contains("eth0@"), "{pod_links}");
    assert!(pod_links.contains("lo: <LOOPBACK,UP"), "{pod_links}");

    // The pod answers on its IP, and on the host port through portmap's DNAT.
    let srv = serve_once_in(&ns, 8080, b"direct");
    assert_eq!(
        fetch(SocketAddr::new(ip, 8080)).expect("connect pod IP"),
        b"direct"
    );
    assert!(srv.join().unwrap());
    let srv = serve_once_in(&ns, 8080, b"hostport");
    assert_eq!(
        fetch(SocketAddr::new(gw, 18080)).expect("connect host port"),
        b"hostport"
    );
    assert!(srv.join().unwrap());
    assert!(run("iptables-save", &["-t", "nat"]).contains("18080"));

    mgr.teardown(&pod).await.expect("DEL");
    assert!(veths().is_empty(), "veth left: {:?}", veths());
    assert!(
        env.leases("kt").is_empty(),
        "lease left: {:?}",
        env.leases("kt")
    );
    assert!(!links_in(&ns).contains("eth0"));
    assert!(
        !run("iptables-save", &["-t", "nat"]).contains("18080"),
        "hostport rule left"
    );
    assert!(!env.config.cache_dir.join("results/kt-c1-eth0").exists());
    assert!(fetch(SocketAddr::new(ip, 8080)).is_err());

    // DEL is idempotent.
    mgr.teardown(&pod).await.expect("second DEL");
}

#[test]
fn cni_1_0_0_pod_gets_reachable_ip_and_host_port_and_del_cleans_up() {
    in_fresh_netns(|| attach_reach_detach("1.0.0", "10.88.1.0/24", "10.88.1.1"));
}

#[test]
fn cni_0_4_0_pod_gets_reachable_ip_and_host_port_and_del_cleans_up() {
    in_fresh_netns(|| attach_reach_detach("0.4.0", "10.88.2.0/24", "10.88.2.1"));
}

#[test]
fn cni_0_3_1_pod_attaches_and_detaches_without_check() {
    in_fresh_netns(|| async {
        attach_reach_detach("0.3.1", "10.88.9.0/24", "10.88.9.1").await;
        let mut env = TestEnv::new();
        env.write_conf(
            "10-kt.conflist",
            &env.conflist("kt", "0.3.1", "10.88.9.0/24", &[LOOPBACK]),
        );
        let mgr = CniManager::new(env.config.clone());
        let ns = env.new_netns("pod1");
        let err = mgr
            .network()
            .unwrap()
            .check(&env.pod("c1", &ns))
            .await
            .unwrap_err();
        assert!(err.is_invalid(), "{err}");
        assert!(
            err.to_string()
                .contains("CHECK is not supported by cniVersion 0.3.1"),
            "{err}"
        );
    });
}

#[test]
fn del_after_restart_uses_the_cached_config_and_result() {
    in_fresh_netns(|| async {
        let mut env = TestEnv::new();
        let conf = env.write_conf(
            "10-kt.conflist",
            &env.conflist("kt", "1.0.0", "10.88.3.0/24", &[PORTMAP, LOOPBACK]),
        );
        let ns = env.new_netns("pod1");
        let mut pod = env.pod("c1", &ns);
        pod.port_mappings.push(port_mapping(18081, 80));
        {
            let mgr = CniManager::new(env.config.clone());
            mgr.setup(&pod).await.expect("ADD");
        }
        assert_eq!(veths().len(), 1);
        assert_eq!(env.leases("kt").len(), 1);
        // "Restart": the operator switched to another network meanwhile, and the stop
        // request carries no port mappings.
        std::fs::remove_file(conf).unwrap();
        env.write_conf(
            "10-other.conflist",
            &env.conflist("other", "1.0.0", "10.89.0.0/24", &[LOOPBACK]),
        );
        let mgr = CniManager::new(env.config.clone());
        assert_eq!(mgr.network().unwrap().name(), "other");
        let status = mgr
            .network()
            .unwrap()
            .cached_status("c1")
            .expect("cache readable");
        assert!(status.is_none(), "c1 is not attached to 'other'");
        pod.port_mappings.clear();
        mgr.teardown(&pod).await.expect("DEL from cache");
        assert!(veths().is_empty(), "veth left: {:?}", veths());
        assert!(env.leases("kt").is_empty());
        assert!(!run("iptables-save", &["-t", "nat"]).contains("18081"));
        assert!(!env.config.cache_dir.join("results/kt-c1-eth0").exists());
    });
}

#[test]
fn del_without_netns_or_cache_still_succeeds_and_releases_the_lease() {
    in_fresh_netns(|| async {
        let mut env = TestEnv::new();
        env.write_conf(
            "10-kt.conflist",
            &env.conflist("kt", "1.0.0", "10.88.4.0/24", &[LOOPBACK]),
        );
        let mgr = CniManager::new(env.config.clone());
        let ns = env.new_netns("pod1");
        let pod = env.pod("c1", &ns);
        mgr.setup(&pod).await.expect("ADD");
        assert_eq!(env.leases("kt").len(), 1);
        // The netns is gone (and with it the veth pair), then the cache too.
        env.netns.pop().unwrap().remove().unwrap();
        std::fs::remove_dir_all(env.config.cache_dir.join("results")).unwrap();
        mgr.teardown(&pod)
            .await
            .expect("DEL without netns and cache");
        assert!(
            env.leases("kt").is_empty(),
            "lease left: {:?}",
            env.leases("kt")
        );
        // The kernel destroys a dropped netns (and its veth pair) asynchronously.
        assert!(
            wait_until(|| veths().is_empty()),
            "veth left: {:?}",
            veths()
        );
        // A sandbox that never had networking: DEL is a no-op that succeeds.
        mgr.teardown(&env.pod("never", &env.netns_dir().join("never")))
            .await
            .expect("DEL of unknown sandbox");
    });
}

#[test]
fn failed_add_on_missing_second_plugin_leaves_nothing_and_names_it() {
    in_fresh_netns(|| async {
        let mut env = TestEnv::new();
        env.write_conf(
            "10-kt.conflist",
            &env.conflist(
                "kt",
                "1.0.0",
                "10.88.5.0/24",
                &[r#"{"type": "no-such-plugin"}"#],
            ),
        );
        let mgr = CniManager::new(env.config.clone());
        // Not ready: a plugin of the list is missing.
        let reason = mgr.network_ready().unwrap_err();
        assert!(reason.contains("no-such-plugin"), "{reason}");
        // ADD anyway through the network object: the bridge runs, then the chain fails.
        let net = cri_server::network::CniNetwork::load(&env.config).unwrap();
        let ns = env.new_netns("pod1");
        let err = net.setup(&env.pod("c1", &ns)).await.unwrap_err();
        assert_eq!(err.plugin(), Some("no-such-plugin"));
        assert!(err.is_not_found());
        assert!(err.to_string().contains("network kt"), "{err}");
        assert!(veths().is_empty(), "veth left: {:?}", veths());
        assert!(
            env.leases("kt").is_empty(),
            "lease left: {:?}",
            env.leases("kt")
        );
        assert!(!links_in(&ns).contains("eth0"));
        assert!(!env.config.cache_dir.join("results/kt-c1-eth0").exists());
    });
}

#[test]
fn failed_add_on_exhausted_range_rolls_back_and_reports_the_plugin_error() {
    in_fresh_netns(|| async {
        let mut env = TestEnv::new();
        // A /30 with the gateway taken leaves one address.
        env.write_conf(
            "10-kt.conflist",
            &env.conflist("kt", "1.0.0", "10.88.6.0/30", &[PORTMAP, LOOPBACK]),
        );
        let mgr = CniManager::new(env.config.clone());
        let ns1 = env.new_netns("pod1");
        let ns2 = env.new_netns("pod2");
        let pod1 = env.pod("c1", &ns1);
        mgr.setup(&pod1).await.expect("first ADD");
        let mut pod2 = env.pod("c2", &ns2);
        pod2.port_mappings.push(port_mapping(18082, 80));
        let err = mgr.setup(&pod2).await.unwrap_err();
        assert_eq!(err.plugin(), Some("bridge"), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("no IP addresses available"), "{msg}");
        assert_eq!(veths().len(), 1, "only pod1's veth: {:?}", veths());
        assert_eq!(env.leases("kt"), vec!["10.88.6.2".to_string()]);
        assert!(!links_in(&ns2).contains("eth0"));
        assert!(!env.config.cache_dir.join("results/kt-c2-eth0").exists());
        mgr.teardown(&pod1).await.expect("DEL pod1");
        assert!(veths().is_empty());
        assert!(env.leases("kt").is_empty());
    });
}

// portmap 1.1.1 (Debian 12) fails CHECK for IPv4-only pods looking for ip6tables rules
// (containernetworking/plugins#819), so CHECK is exercised on a chain without portmap.
#[test]
fn check_passes_for_a_live_pod_and_fails_once_its_interface_is_gone() {
    in_fresh_netns(|| async {
        let mut env = TestEnv::new();
        env.write_conf(
            "10-kt.conflist",
            &env.conflist("kt", "1.0.0", "10.88.7.0/24", &[LOOPBACK]),
        );
        let mgr = CniManager::new(env.config.clone());
        let net = mgr.network().unwrap();
        let ns = env.new_netns("pod1");
        let pod = env.pod("c1", &ns);
        let err = net.check(&pod).await.unwrap_err();
        assert!(err.is_not_found(), "CHECK before ADD: {err}");
        mgr.setup(&pod).await.expect("ADD");
        net.check(&pod).await.expect("CHECK of a live pod");
        run(
            "nsenter",
            &[
                &format!("--net={}", ns.display()),
                "ip",
                "link",
                "del",
                "eth0",
            ],
        );
        let err = net.check(&pod).await.unwrap_err();
        assert_eq!(err.plugin(), Some("bridge"), "{err}");
        mgr.teardown(&pod).await.expect("DEL");
        assert!(env.leases("kt").is_empty());
        assert!(veths().is_empty());
    });
}

#[test]
fn dual_stack_pod_gets_ipv4_first_and_answers_on_ipv6_too() {
    in_fresh_netns(|| async {
        let mut env = TestEnv::new();
        let conf = env
            .conflist("kt", "1.0.0", "10.88.8.0/24", &[LOOPBACK])
            .replace(
                r#"[[{"subnet": "10.88.8.0/24"}]]"#,
                r#"[[{"subnet": "10.88.8.0/24"}], [{"subnet": "fd00:88:8::/64"}]]"#,
            );
        assert!(conf.contains("fd00:88:8::/64"));
        env.write_conf("10-kt.conflist", &conf);
        let mgr = CniManager::new(env.config.clone());
        let ns = env.new_netns("pod1");
        let pod = env.pod("c1", &ns);
        let status = mgr.setup(&pod).await.expect("ADD");
        assert_eq!(status.ips.len(), 2, "{:?}", status.ips);
        assert!(status.ips[0].address.is_ipv4());
        assert!(status.ips[1].address.is_ipv6());
        assert_eq!(status.ips[1].address.prefix(), 64);
        assert_eq!(env.leases("kt").len(), 2);
        let v6 = status.ips[1].address.ip();
        // The fresh bridge's gateway address is in duplicate address detection for a
        // moment; a connection made before that ends would pick an unusable source address.
        assert!(wait_until(
            || !run("ip", &["-6", "addr"]).contains("tentative")
        ));
        let srv = serve_once_in6(&ns, 8080, b"over v6");
        assert_eq!(
            fetch(SocketAddr::new(v6, 8080)).expect("connect v6"),
            b"over v6"
        );
        assert!(srv.join().unwrap());
        mgr.teardown(&pod).await.expect("DEL");
        assert!(env.leases("kt").is_empty());
        assert!(veths().is_empty());
    });
}

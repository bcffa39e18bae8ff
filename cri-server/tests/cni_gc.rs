//! Runtime housekeeping with real plugins: GC after a restart deletes the attachments of
//! sandboxes that no longer exist, and capability args reach the plugins that declare them
//! (bandwidth shaping, IP ranges), and concurrent pods do not trip over each other.

mod cni_support;

use std::collections::HashSet;

use cni_support::*;
use cri_server::network::{Bandwidth, CniManager, IpRange};

#[test]
fn gc_after_restart_deletes_only_stale_attachments() {
    in_fresh_netns(|| async {
        let mut env = TestEnv::new();
        env.write_conf(
            "10-kt.conflist",
            &env.conflist("kt", "1.0.0", "10.88.30.0/24", &[LOOPBACK]),
        );
        let ns1 = env.new_netns("pod1");
        let ns2 = env.new_netns("pod2");
        {
            let mgr = CniManager::new(env.config.clone());
            mgr.setup(&env.pod("c1", &ns1)).await.expect("ADD c1");
            mgr.setup(&env.pod("c2", &ns2)).await.expect("ADD c2");
        }
        assert_eq!(veths().len(), 2);
        assert_eq!(env.leases("kt").len(), 2);

        let mgr = CniManager::new(env.config.clone());
        let live: HashSet<String> = ["c1".to_string()].into();
        let report = mgr.gc(&live).await.expect("GC");
        assert_eq!(report.removed, vec!["c2".to_string()]);
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(veths().len(), 1, "{:?}", veths());
        assert_eq!(env.leases("kt").len(), 1);
        assert!(links_in(&ns1).contains("eth0@"));
        assert!(!links_in(&ns2).contains("eth0"));
        let status = mgr.network().unwrap().cached_status("c1").unwrap();
        assert_eq!(
            status.and_then(|s| s.primary_ip()).map(|ip| ip.to_string()),
            env.leases("kt").first().cloned()
        );

        mgr.teardown(&env.pod("c1", &ns1)).await.expect("DEL c1");
        assert!(veths().is_empty());
        assert!(env.leases("kt").is_empty());
    });
}

#[test]
fn bandwidth_capability_reaches_the_plugin_and_del_removes_the_shaping() {
    in_fresh_netns(|| async {
        let mut env = TestEnv::new();
        env.write_conf(
            "10-kt.conflist",
            &env.conflist(
                "kt",
                "1.0.0",
                "10.88.31.0/24",
                &[
                    r#"{"type": "bandwidth", "capabilities": {"bandwidth": true}}"#,
                    LOOPBACK,
                ],
            ),
        );
        let mgr = CniManager::new(env.config.clone());
        let ns = env.new_netns("pod1");
        let mut pod = env.pod("c1", &ns);
        pod.bandwidth = Some(Bandwidth {
            ingress_rate: 8_000_000,
            ingress_burst: 800_000,
            egress_rate: 4_000_000,
            egress_burst: 400_000,
        });
        mgr.setup(&pod).await.expect("ADD");
        let qdiscs = run("tc", &["qdisc", "show"]);
        assert!(qdiscs.contains("tbf"), "{qdiscs}");
        assert!(qdiscs.contains("rate 8Mbit"), "ingress shaping: {qdiscs}");
        assert!(qdiscs.contains("rate 4Mbit"), "egress shaping: {qdiscs}");
        assert_eq!(
            run("ip", &["-o", "link", "show", "type", "ifb"])
                .lines()
                .count(),
            1
        );

        mgr.teardown(&pod).await.expect("DEL");
        assert!(!run("tc", &["qdisc", "show"]).contains("tbf"));
        assert!(run("ip", &["-o", "link", "show", "type", "ifb"]).is_empty());
        assert!(veths().is_empty());
    });
}

#[test]
fn ip_ranges_capability_steers_host_local() {
    in_fresh_netns(|| async {
        let mut env = TestEnv::new();
        let conf = env
            .conflist("kt", "1.0.0", "10.88.32.0/24", &[LOOPBACK])
            .replacen(
                r#""type": "bridge","#,
                r#""type": "bridge", "capabilities": {"ipRanges": true},"#,
                1,
            )
            // host-local prepends runtime ranges to its own: leave it none.
            .replace(r#"[[{"subnet": "10.88.32.0/24"}]]"#, "[]");
        assert!(conf.contains(r#""ranges": []"#), "{conf}");
        env.write_conf("10-kt.conflist", &conf);
        let mgr = CniManager::new(env.config.clone());
        let ns = env.new_netns("pod1");
        let mut pod = env.pod("c1", &ns);
        pod.ip_ranges = vec![vec![IpRange {
            subnet: "10.88.33.0/24".parse().unwrap(),
            range_start: Some("10.88.33.100".parse().unwrap()),
            range_end: None,
            gateway: None,
        }]];
        let status = mgr.setup(&pod).await.expect("ADD");
        assert_eq!(status.primary_ip().unwrap().to_string(), "10.88.33.100");
        mgr.teardown(&pod).await.expect("DEL");
        assert!(env.leases("kt").is_empty());
    });
}

#[test]
fn concurrent_pods_get_distinct_addresses_and_all_detach() {
    in_fresh_netns(|| async {
        let mut env = TestEnv::new();
        env.write_conf(
            "10-kt.conflist",
            &env.conflist("kt", "1.0.0", "10.88.34.0/24", &[PORTMAP, LOOPBACK]),
        );
        let mgr = CniManager::new(env.config.clone());
        let pods: Vec<_> = (0..4)
            .map(|i| {
                let ns = env.new_netns(&format!("pod{i}"));
                env.pod(&format!("c{i}"), &ns)
            })
            .collect();
        let (a, b, c, d) = tokio::join!(
            mgr.setup(&pods[0]),
            mgr.setup(&pods[1]),
            mgr.setup(&pods[2]),
            mgr.setup(&pods[3])
        );
        let mut ips: Vec<String> = [a, b, c, d]
            .into_iter()
            .map(|r| r.expect("ADD").primary_ip().unwrap().to_string())
            .collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 4, "{ips:?}");
        assert_eq!(env.leases("kt"), ips);
        assert_eq!(veths().len(), 4);
        let (a, b, c, d) = tokio::join!(
            mgr.teardown(&pods[0]),
            mgr.teardown(&pods[1]),
            mgr.teardown(&pods[2]),
            mgr.teardown(&pods[3])
        );
        for r in [a, b, c, d] {
            r.expect("DEL");
        }
        assert!(veths().is_empty(), "{:?}", veths());
        assert!(env.leases("kt").is_empty());
    });
}

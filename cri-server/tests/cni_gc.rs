//! Runtime housekeeping with real plugins: GC after a restart deletes the attachments of
//! sandboxes that no longer exist, and capability args reach the plugins that declare them
//! (bandwidth shaping appears on the pod's veth and goes with DEL).

mod cni_support;

use std::collections::HashSet;

use cni_support::*;
use cri_server::network::{Bandwidth, CniManager};

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

//! The nftables table of a cluster: egress masquerade, port-mapping DNAT, forward accepts.
//!
//! Why nftables: one `table inet kina-<cluster>` holds every rule of a cluster for both IP
//! families, is replaced atomically in one `nft -f -` transaction whenever nodes or ports change,
//! and `delete table` removes exactly the cluster's rules and nothing else. (With iptables the
//! same needs a chain per cluster in four tables × two families plus comment-matching on
//! delete.) On hosts whose iptables uses the nft backend both coexist.
//!
//! Chains, in packet order:
//! - `guard` (filter, prerouting, -150): drops packets from the bridge addressed to 127.0.0.0/8.
//!   `route_localnet` is enabled on the bridge so DNATed connections to 127.0.0.1 can leave
//!   through it; this rule keeps nodes from reaching the host's loopback services in return
//!   (the CVE-2020-8558 guard kube-proxy uses too).
//! - `prerouting` (nat, -100): DNAT of mapped ports for traffic arriving from elsewhere.
//! - `output` (nat, -100): the same for connections made on the host itself, including to
//!   127.0.0.1 — no userland proxy is needed.
//! - `postrouting` (nat, 100): masquerade of node traffic leaving through any other interface,
//!   of host connections from 127.0.0.0/8 that were DNATed into the bridge, and of DNATed
//!   connections from a node back into the bridge (hairpin: the reply must come back through
//!   the host to be un-DNATed). Node-to-node traffic keeps its source address.
//! - `forward` (filter, 0): accepts the cluster's forwarded traffic. Other tables' drop verdicts
//!   still apply (nftables base chains all vote).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use super::error::NetworkError;
use super::names;
use super::ports::PublishedPort;
use super::state::ClusterRecord;

/// The nft script that replaces the cluster's table with one matching `record`.
pub(crate) fn render(record: &ClusterRecord) -> String {
    let net = &record.network;
    let table = names::nft_table(&net.name);
    let br = &net.bridge;
    let tag = format!("comment \"kina:{}\"", net.name);
    let mut s = String::new();
    // Creating before deleting makes the delete valid when the table does not exist yet; the
    // whole script is one transaction.
    let _ = writeln!(s, "table inet {table}\ndelete table inet {table}");
    let _ = writeln!(s, "table inet {table} {{");
    let _ = writeln!(s, "\tcomment \"kina cluster {}\"", net.name);

    let _ = writeln!(s, "\tchain guard {{");
    let _ = writeln!(
        s,
        "\t\ttype filter hook prerouting priority -150; policy accept;"
    );
    if net.v4.is_some() {
        let _ = writeln!(s, "\t\tiifname \"{br}\" ip daddr 127.0.0.0/8 drop {tag}");
    }
    let _ = writeln!(s, "\t}}");

    let ports: Vec<&PublishedPort> = record.ports().collect();
    for (chain, hook, with_loopback) in [
        ("prerouting", "prerouting", false),
        ("output", "output", true),
    ] {
        let _ = writeln!(s, "\tchain {chain} {{");
        let _ = writeln!(s, "\t\ttype nat hook {hook} priority -100; policy accept;");
        for port in &ports {
            if port.listen_address.is_loopback() && !with_loopback {
                continue;
            }
            let _ = writeln!(s, "\t\t{} {tag}", dnat_rule(port));
        }
        let _ = writeln!(s, "\t}}");
    }

    let _ = writeln!(s, "\tchain postrouting {{");
    let _ = writeln!(
        s,
        "\t\ttype nat hook postrouting priority 100; policy accept;"
    );
    if let Some(v4) = net.v4 {
        let _ = writeln!(
            s,
            "\t\toifname \"{br}\" ip saddr 127.0.0.0/8 masquerade {tag}"
        );
        let _ = writeln!(s, "\t\tip saddr {v4} oifname != \"{br}\" masquerade {tag}");
    }
    if let Some(v6) = net.v6 {
        let _ = writeln!(s, "\t\tip6 saddr {v6} oifname != \"{br}\" masquerade {tag}");
    }
    // Hairpin: matched by source, not input interface, so it also applies when br_netfilter
    // passes the connection through the hooks as bridged traffic (no input interface there).
    if let Some(v4) = net.v4 {
        let _ = writeln!(
            s,
            "\t\toifname \"{br}\" ip saddr {v4} ct status dnat masquerade {tag}"
        );
    }
    if let Some(v6) = net.v6 {
        let _ = writeln!(
            s,
            "\t\toifname \"{br}\" ip6 saddr {v6} ct status dnat masquerade {tag}"
        );
    }
    let _ = writeln!(s, "\t}}");

    let _ = writeln!(s, "\tchain forward {{");
    let _ = writeln!(s, "\t\ttype filter hook forward priority 0; policy accept;");
    let _ = writeln!(s, "\t\tiifname \"{br}\" accept {tag}");
    let _ = writeln!(
        s,
        "\t\toifname \"{br}\" ct state established,related accept {tag}"
    );
    let _ = writeln!(s, "\t\toifname \"{br}\" ct status dnat accept {tag}");
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(s, "}}");
    s
}

/// One DNAT rule (without comment) for a published port.
fn dnat_rule(port: &PublishedPort) -> String {
    let proto = port.protocol;
    let (hp, cp) = (port.host_port, port.container_port);
    let matcher = match port.listen_address {
        IpAddr::V4(a) if a.is_unspecified() => "meta nfproto ipv4 fib daddr type local".to_string(),
        IpAddr::V6(a) if a.is_unspecified() => "meta nfproto ipv6 fib daddr type local".to_string(),
        IpAddr::V4(a) => format!("ip daddr {a}"),
        IpAddr::V6(a) => format!("ip6 daddr {a}"),
    };
    let target = match port.node_ip {
        IpAddr::V4(ip) => format!("dnat ip to {ip}:{cp}"),
        IpAddr::V6(ip) => format!("dnat ip6 to [{ip}]:{cp}"),
    };
    format!("{matcher} {proto} dport {hp} {target}")
}

/// Installs (or atomically replaces) the cluster's table in the current namespace.
pub(crate) fn apply(record: &ClusterRecord) -> Result<(), NetworkError> {
    run(&record.network.name, "apply", &render(record))
}

/// Removes the cluster's table; succeeds when there is none.
pub(crate) fn delete(cluster: &str) -> Result<(), NetworkError> {
    let table = names::nft_table(cluster);
    run(
        cluster,
        "delete",
        &format!("table inet {table}\ndelete table inet {table}\n"),
    )
}

fn run(cluster: &str, op: &'static str, script: &str) -> Result<(), NetworkError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NetworkError::NftSpawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(NetworkError::NftSpawn)?;
    }
    let output = child.wait_with_output().map_err(NetworkError::NftSpawn)?;
    if output.status.success() {
        tracing::debug!(cluster, op, "nft table updated");
        Ok(())
    } else {
        Err(NetworkError::Nft {
            cluster: cluster.to_string(),
            op,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ports::Protocol;
    use crate::network::state::NodeRecord;
    use crate::network::{ClusterNetwork, IpFamily, NodeAddresses};

    fn record() -> ClusterRecord {
        let mut rec = ClusterRecord::new(ClusterNetwork {
            name: "dev".into(),
            family: IpFamily::Dual,
            bridge: "kina-0123456789".into(),
            v4: Some("172.18.0.0/16".parse().unwrap()),
            v6: Some("fc00:f853:ccd:e793::/64".parse().unwrap()),
            gateway4: Some("172.18.0.1".parse().unwrap()),
            gateway6: Some("fc00:f853:ccd:e793::1".parse().unwrap()),
        });
        let port = |listen: &str, node_ip: &str, hp, protocol| PublishedPort {
            node: "dev-control-plane".into(),
            node_ip: node_ip.parse().unwrap(),
            listen_address: listen.parse().unwrap(),
            host_port: hp,
            container_port: 80,
            protocol,
        };
        rec.nodes.insert(
            "dev-control-plane".into(),
            NodeRecord {
                addresses: NodeAddresses {
                    node: "dev-control-plane".into(),
                    host_veth: "kv1".into(),
                    interface: "eth0".into(),
                    ipv4: Some("172.18.0.2".parse().unwrap()),
                    ipv6: Some("fc00:f853:ccd:e793::2".parse().unwrap()),
                },
                ports: vec![
                    port("127.0.0.1", "172.18.0.2", 6443, Protocol::Tcp),
                    port("0.0.0.0", "172.18.0.2", 8080, Protocol::Udp),
                    port("::", "fc00:f853:ccd:e793::2", 8443, Protocol::Sctp),
                ],
            },
        );
        rec
    }

    #[test]
    fn ruleset_covers_egress_ports_and_loopback() {
        let text = render(&record());
        assert!(text.starts_with("table inet kina-dev\ndelete table inet kina-dev\n"));
        for want in [
            "ip saddr 172.18.0.0/16 oifname != \"kina-0123456789\" masquerade",
            "ip6 saddr fc00:f853:ccd:e793::/64 oifname != \"kina-0123456789\" masquerade",
            "oifname \"kina-0123456789\" ip saddr 127.0.0.0/8 masquerade",
            "iifname \"kina-0123456789\" ip daddr 127.0.0.0/8 drop",
            "ip daddr 127.0.0.1 tcp dport 6443 dnat ip to 172.18.0.2:80",
            "meta nfproto ipv4 fib daddr type local udp dport 8080 dnat ip to 172.18.0.2:80",
            "meta nfproto ipv6 fib daddr type local sctp dport 8443 dnat ip6 to [fc00:f853:ccd:e793::2]:80",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        // The loopback mapping is only in the output chain; the others in both.
        assert_eq!(text.matches("tcp dport 6443").count(), 1);
        assert_eq!(text.matches("udp dport 8080").count(), 2);
        for rule in text
            .lines()
            .filter(|l| l.starts_with("\t\t") && !l.contains("type "))
        {
            assert!(
                rule.ends_with("comment \"kina:dev\""),
                "untagged rule {rule:?}"
            );
        }
    }
}

//! Masquerade of pod traffic leaving the cluster (kindnet's ip-masq-agent, in nftables).
//!
//! One table, `inet kina-net`, replaced whole in one `nft -f -` transaction (create-then-delete
//! makes the delete valid when the table is absent), so rules are never half-applied and a
//! restart or a changed node list converges to exactly the rendered script. Its only chain, a
//! NAT postrouting hook, masquerades packets whose source is a pod CIDR unless they go to a pod
//! CIDR (pod-to-pod keeps pod IPs, as Kubernetes requires) or to a node's InternalIP (pods
//! talking to nodes keep their address too). Traffic to the node itself never reaches
//! postrouting. nftables rather than iptables: one atomic table for both families, removed
//! with one `delete table`; the node image ships `nft` and the kina-net image is built on it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ipnetwork::IpNetwork;

/// The table kina-net owns.
pub const TABLE: &str = "kina-net";

/// Running `nft` failed; carries its stderr.
#[derive(Debug, thiserror::Error)]
pub enum MasqError {
    #[error("run {nft}: {source}")]
    Spawn {
        nft: PathBuf,
        source: std::io::Error,
    },
    #[error("{nft} -f - rejected the {TABLE} table ({status}): {stderr}")]
    Rejected {
        nft: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// The nft script that replaces table `inet kina-net` with rules for these pod CIDRs and node
/// addresses.
pub fn render(pod_subnets: &[IpNetwork], node_ips: &BTreeSet<IpAddr>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "table inet {TABLE}\ndelete table inet {TABLE}");
    let _ = writeln!(s, "table inet {TABLE} {{");
    for (v4, family, addr_type) in [(true, "v4", "ipv4_addr"), (false, "v6", "ipv6_addr")] {
        let pods: Vec<String> = pod_subnets
            .iter()
            .filter(|n| n.is_ipv4() == v4)
            .map(|n| n.to_string())
            .collect();
        let nodes: Vec<String> = node_ips
            .iter()
            .filter(|ip| ip.is_ipv4() == v4)
            .map(|ip| ip.to_string())
            .collect();
        let _ = writeln!(
            s,
            "\tset pod-cidrs-{family} {{\n\t\ttype {addr_type}\n\t\tflags interval"
        );
        if !pods.is_empty() {
            let _ = writeln!(s, "\t\telements = {{ {} }}", pods.join(", "));
        }
        let _ = writeln!(s, "\t}}");
        let _ = writeln!(s, "\tset node-ips-{family} {{\n\t\ttype {addr_type}");
        if !nodes.is_empty() {
            let _ = writeln!(s, "\t\telements = {{ {} }}", nodes.join(", "));
        }
        let _ = writeln!(s, "\t}}");
    }
    let _ = writeln!(s, "\tchain postrouting {{");
    let _ = writeln!(
        s,
        "\t\ttype nat hook postrouting priority srcnat; policy accept;"
    );
    for (proto, family) in [("ip", "v4"), ("ip6", "v6")] {
        let _ = writeln!(
            s,
            "\t\t{proto} saddr @pod-cidrs-{family} {proto} daddr != @pod-cidrs-{family} \
             {proto} daddr != @node-ips-{family} masquerade comment \"kina-net: pod traffic leaving the cluster\""
        );
    }
    let _ = writeln!(s, "\t}}\n}}");
    s
}

/// Applies rendered scripts with an `nft` binary, skipping unchanged ones unless forced.
#[derive(Debug)]
pub struct Masquerader {
    nft: PathBuf,
    last: Option<String>,
}

impl Masquerader {
    /// Uses the `nft` at `nft` (a path, or a name looked up in `PATH`).
    pub fn new(nft: impl Into<PathBuf>) -> Self {
        Self {
            nft: nft.into(),
            last: None,
        }
    }

    /// Loads `script` unless it is what was loaded last and `force` is false (the periodic
    /// resync forces, repairing a table someone else flushed). Returns whether nft ran.
    pub fn apply(&mut self, script: &str, force: bool) -> Result<bool, MasqError> {
        if !force && self.last.as_deref() == Some(script) {
            return Ok(false);
        }
        let mut child = Command::new(&self.nft)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| MasqError::Spawn {
                nft: self.nft.clone(),
                source,
            })?;
        let write = child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(script.as_bytes()));
        let out = child
            .wait_with_output()
            .map_err(|source| MasqError::Spawn {
                nft: self.nft.clone(),
                source,
            })?;
        if !out.status.success() {
            self.last = None;
            return Err(MasqError::Rejected {
                nft: self.nft.clone(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        if let Some(Err(source)) = write {
            return Err(MasqError::Spawn {
                nft: self.nft.clone(),
                source,
            });
        }
        self.last = Some(script.to_owned());
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dual_stack_script() {
        let pods: Vec<IpNetwork> = vec![
            "10.244.0.0/16".parse().unwrap(),
            "fd00:10:244::/56".parse().unwrap(),
        ];
        let nodes: BTreeSet<IpAddr> = ["172.18.0.3", "172.18.0.2", "fc00::2"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let s = render(&pods, &nodes);
        assert!(
            s.starts_with("table inet kina-net\ndelete table inet kina-net\n"),
            "{s}"
        );
        assert!(s.contains("elements = { 10.244.0.0/16 }"), "{s}");
        assert!(s.contains("elements = { fd00:10:244::/56 }"), "{s}");
        assert!(s.contains("elements = { 172.18.0.2, 172.18.0.3 }"), "{s}");
        assert!(s.contains("elements = { fc00::2 }"), "{s}");
        assert!(
            s.contains("type nat hook postrouting priority srcnat"),
            "{s}"
        );
        assert!(s.contains(
            "ip saddr @pod-cidrs-v4 ip daddr != @pod-cidrs-v4 ip daddr != @node-ips-v4 masquerade"
        ), "{s}");
        assert!(s.contains(
            "ip6 saddr @pod-cidrs-v6 ip6 daddr != @pod-cidrs-v6 ip6 daddr != @node-ips-v6 masquerade"
        ), "{s}");
    }

    #[test]
    fn single_stack_leaves_the_other_family_empty() {
        let s = render(&["10.244.0.0/16".parse().unwrap()], &BTreeSet::new());
        assert_eq!(s.matches("elements").count(), 1, "{s}");
    }

    #[test]
    fn missing_nft_is_named() {
        let e = Masquerader::new("/nonexistent/nft")
            .apply("x", false)
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/nft"), "{e}");
    }
}

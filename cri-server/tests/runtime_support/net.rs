//! A bridge CNI network for pod tests. The bridge has to live in the host netns (the pod IP must
//! be reachable from the host), so it gets a unique name and 10.x subnet and is deleted on drop,
//! with the portmap chains of the test's pods and the host-local leases.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A conflist in its own conf dir.
#[derive(Debug)]
pub struct BridgeNet {
    pub conf_dir: PathBuf,
    pub data_dir: PathBuf,
    pub bridge: String,
    /// e.g. `10.201.7`.
    pub prefix: String,
    /// The CNI network name.
    pub name: String,
    /// Whether portmap's top-level chains existed before (then they are not ours to remove).
    had_portmap_chains: bool,
}

fn portmap_chains_exist() -> bool {
    run("iptables", &["-t", "nat", "-S", "CNI-HOSTPORT-DNAT"])
        .status
        .success()
}

/// Removes portmap's per-pod DNAT rules and chains of network `name` (left when a failed test
/// never removed its pods).
fn remove_portmap_rules_of(name: &str) {
    // `-S` lists the rules in order, after the `-N` line: rule k is line k.
    let dnat = run("iptables", &["-t", "nat", "-S", "CNI-HOSTPORT-DNAT"]);
    let marker = format!("dnat name: \\\"{name}\\\"");
    let mut doomed: Vec<(usize, String)> = String::from_utf8_lossy(&dnat.stdout)
        .lines()
        .enumerate()
        .filter(|(_, r)| r.contains(&marker))
        .filter_map(|(i, r)| Some((i, r.rsplit_once("-j ")?.1.trim().to_owned())))
        .collect();
    doomed.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
    for (i, chain) in doomed {
        let n = i.to_string();
        let _ = run("iptables", &["-t", "nat", "-D", "CNI-HOSTPORT-DNAT", &n]);
        let _ = run("iptables", &["-t", "nat", "-F", &chain]);
        let _ = run("iptables", &["-t", "nat", "-X", &chain]);
    }
}

/// Removes portmap's top-level chains and jumps if no pod uses them any more.
fn remove_idle_portmap_chains() {
    let dnat = run("iptables", &["-t", "nat", "-S", "CNI-HOSTPORT-DNAT"]);
    if String::from_utf8_lossy(&dnat.stdout).lines().count() > 1 {
        return; // some pod's mapping is still there
    }
    for (chain, jump) in [
        ("PREROUTING", "CNI-HOSTPORT-DNAT"),
        ("OUTPUT", "CNI-HOSTPORT-DNAT"),
        ("POSTROUTING", "CNI-HOSTPORT-MASQ"),
    ] {
        let rules = run("iptables", &["-t", "nat", "-S", chain]);
        for rule in String::from_utf8_lossy(&rules.stdout).lines() {
            if rule.contains(&format!("-j {jump}")) {
                let del = rule.replacen("-A", "-D", 1);
                let words = shell_words(&del);
                let args: Vec<&str> = ["-t", "nat"]
                    .into_iter()
                    .chain(words.iter().map(String::as_str))
                    .collect();
                let _ = run("iptables", &args);
            }
        }
    }
    for chain in [
        "CNI-HOSTPORT-DNAT",
        "CNI-HOSTPORT-MASQ",
        "CNI-HOSTPORT-SETMARK",
    ] {
        let _ = run("iptables", &["-t", "nat", "-F", chain]);
        let _ = run("iptables", &["-t", "nat", "-X", chain]);
    }
}

/// Splits an `iptables -S` rule into arguments (double-quoted comments stay whole).
fn shell_words(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for ch in s.chars() {
        match ch {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd).args(args).output().expect(cmd)
}

impl BridgeNet {
    /// A network named after `tag` (unique per test) under `dir`.
    pub fn new(dir: &Path, tag: u8) -> BridgeNet {
        let conf_dir = dir.join("net.d");
        let data_dir = dir.join("cni-data");
        std::fs::create_dir_all(&conf_dir).unwrap();
        let bridge = format!("kcri{}-{tag}", std::process::id() % 10000);
        let prefix = format!("10.{}.{}", 200 + tag, std::process::id() % 250);
        let name = format!("kcri{}-{tag}", std::process::id());
        let conf = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": name,
            "plugins": [
                {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
                 "ipam": {"type": "host-local", "dataDir": data_dir,
                          "ranges": [[{"subnet": format!("{prefix}.0/24")}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "portmap", "capabilities": {"portMappings": true}},
            ],
        });
        std::fs::write(conf_dir.join("10-test.conflist"), conf.to_string()).unwrap();
        BridgeNet {
            conf_dir,
            data_dir,
            bridge,
            prefix,
            name,
            had_portmap_chains: portmap_chains_exist(),
        }
    }

    /// The gateway (bridge) address.
    pub fn gateway(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// Leased IPs still recorded by host-local.
    pub fn leases(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.data_dir) {
            for net in rd.flatten() {
                for e in std::fs::read_dir(net.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if n.parse::<std::net::IpAddr>().is_ok() {
                        out.push(n);
                    }
                }
            }
        }
        out
    }

    /// veth peers attached to our bridge.
    pub fn veths(&self) -> Vec<String> {
        let out = run("ip", &["-o", "link", "show", "master", &self.bridge]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for BridgeNet {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", &self.bridge]);
        remove_portmap_rules_of(&self.name);
        if !self.had_portmap_chains {
            remove_idle_portmap_chains();
        }
    }
}

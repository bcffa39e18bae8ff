//! A bridge CNI network for pod tests, inside a network namespace the test creates.
//!
//! The namespace plays the node's host network: cri-server runs in it (see
//! [`BridgeNet::host_netns`] and `Server::spawn`), so the CNI bridge, the portmap rules, the
//! forwarding sysctl and every pod address live there and vanish with it. Nothing touches the
//! real host's network, and no traffic leaves namespaces the test made.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The file in a test dir that tells `Server::spawn` which netns to run cri-server in.
pub const HOST_NETNS_FILE: &str = "host-netns";

/// A conflist in its own conf dir, and the namespace its bridge lives in.
#[derive(Debug)]
pub struct BridgeNet {
    pub conf_dir: PathBuf,
    pub data_dir: PathBuf,
    pub bridge: String,
    /// e.g. `10.201.7`.
    pub prefix: String,
    /// The CNI network name.
    pub name: String,
    /// `ip netns` name of the namespace playing the host.
    pub netns: String,
}

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd).args(args).output().expect(cmd)
}

impl BridgeNet {
    /// A network named after `tag` (unique per test) under `dir`; cri-servers started on `dir`
    /// run inside its namespace.
    pub fn new(dir: &Path, tag: u8) -> BridgeNet {
        let conf_dir = dir.join("net.d");
        let data_dir = dir.join("cni-data");
        std::fs::create_dir_all(&conf_dir).unwrap();
        let netns = format!("kcri-{}-{tag}", std::process::id());
        let add = run("ip", &["netns", "add", &netns]);
        assert!(add.status.success(), "ip netns add {netns}: {add:?}");
        let up = run("ip", &["-n", &netns, "link", "set", "lo", "up"]);
        assert!(up.status.success(), "lo up in {netns}: {up:?}");
        let bridge = format!("kcri{tag}");
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
        std::fs::write(
            dir.join(HOST_NETNS_FILE),
            Self::path_of(&netns).as_os_str().as_encoded_bytes(),
        )
        .unwrap();
        BridgeNet {
            conf_dir,
            data_dir,
            bridge,
            prefix,
            name,
            netns,
        }
    }

    fn path_of(netns: &str) -> PathBuf {
        Path::new("/run/netns").join(netns)
    }

    /// The namespace file of the "host" network.
    pub fn host_netns(&self) -> PathBuf {
        Self::path_of(&self.netns)
    }

    /// The gateway (bridge) address.
    pub fn gateway(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// `GET /` from the "host" namespace (curl, 5 s timeout): the body, or why it failed.
    pub fn http_get(&self, addr: &str) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns, "curl", "-sS", "-m", "5"])
            .arg(format!("http://{addr}/"))
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "curl in {}: {}: {}",
                self.netns,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
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
        let out = run(
            "ip",
            &[
                "-n",
                &self.netns,
                "-o",
                "link",
                "show",
                "master",
                &self.bridge,
            ],
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for BridgeNet {
    fn drop(&mut self) {
        // The bridge, veths, portmap chains and sysctls all go with the namespace.
        let _ = run("ip", &["netns", "del", &self.netns]);
    }
}

//! Helpers for the network tests: throw-away network namespaces (one playing the host, others
//! playing nodes) removed by Drop guards even when a test fails, and commands run inside them.
//! Nothing here touches the real host network.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kina::network::NetworkHost;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace created by the test, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `kina-t-<unique>` with `lo` up.
    pub fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "kina-t-{}-{}-{:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            nanos & 0xffff
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .unwrap();
        assert!(out.status.success(), "ip netns add {name}: {out:?}");
        let ns = Self { name };
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The namespace file, for `NetworkHost::in_netns` and `attach_node`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    /// Runs `argv` inside the namespace, bounded by a 10 s timeout.
    pub fn run(&self, argv: &[&str]) -> Output {
        Command::new("timeout")
            .args(["10", "ip", "netns", "exec", &self.name])
            .args(argv)
            .output()
            .unwrap()
    }

    /// Runs `argv` and returns stdout; panics with the output on failure.
    pub fn ok(&self, argv: &[&str]) -> String {
        let out = self.run(argv);
        assert!(
            out.status.success(),
            "in {}: {argv:?} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether one ping to `ip` gets an answer.
    pub fn pings(&self, ip: &str) -> bool {
        self.run(&["busybox", "ping", "-c1", "-W2", ip])
            .status
            .success()
    }

    /// Starts a long-running process in the namespace; killed on drop of the guard.
    pub fn spawn(&self, argv: &[&str]) -> Background {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Background(child)
    }

    /// `ip -o link show` names (without `@peer` suffixes).
    pub fn links(&self) -> Vec<String> {
        self.ok(&["ip", "-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }

    /// `nft list ruleset` output.
    pub fn ruleset(&self) -> String {
        self.ok(&["nft", "list", "ruleset"])
    }

    /// Reads a sysctl (e.g. `net.ipv4.ip_forward`).
    pub fn sysctl(&self, key: &str) -> String {
        self.ok(&["sysctl", "-n", key]).trim().to_string()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A process started by the test, killed and reaped on drop.
pub struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A "host" namespace with a state directory and a `NetworkHost` bound to both.
pub struct TestHost {
    pub ns: Netns,
    pub state: tempfile::TempDir,
}

impl TestHost {
    /// Forwarding starts off in the namespace (a new namespace copies IPv4 forwarding from the
    /// real host, which other software may have turned on).
    pub fn new() -> Self {
        let ns = Netns::new();
        ns.ok(&["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
        ns.ok(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"]);
        Self {
            ns,
            state: tempfile::tempdir().unwrap(),
        }
    }

    /// A fresh `NetworkHost` (as after a restart) over the same state and namespace.
    pub fn net(&self) -> NetworkHost {
        NetworkHost::new(self.state.path()).in_netns(self.ns.path())
    }
}

/// Retries `f` for up to 5 s (servers need a moment to start listening).
pub fn eventually(what: &str, mut f: impl FnMut() -> Option<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Connects over TCP from `ns` to `addr` (socat syntax, e.g. `127.0.0.1:8080` or
/// `[fc00::2]:80`) and returns what the server sent, if anything.
pub fn tcp_get(ns: &Netns, addr: &str) -> Option<String> {
    let out = ns.run(&[
        "socat",
        "-T2",
        "-",
        &format!("TCP:{addr},connect-timeout=2"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Sends one UDP datagram from `ns` to `addr` and returns the reply, if any.
pub fn udp_get(ns: &Netns, addr: &str) -> Option<String> {
    let out = Command::new("timeout")
        .args(["5", "ip", "netns", "exec", &ns.name, "sh", "-c"])
        .arg(format!("echo ping | socat -T1 - UDP:{addr}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// A TCP server in `ns` on `port` answering every connection with `reply`.
pub fn tcp_server(ns: &Netns, port: u16, reply: &str) -> Background {
    ns.spawn(&[
        "socat",
        &format!("TCP6-LISTEN:{port},fork,reuseaddr,ipv6only=0"),
        &format!("SYSTEM:echo {reply}"),
    ])
}

/// A UDP server in `ns` on `port` answering every datagram with `reply`.
pub fn udp_server(ns: &Netns, port: u16, reply: &str) -> Background {
    ns.spawn(&[
        "socat",
        &format!("UDP4-RECVFROM:{port},fork,reuseaddr"),
        &format!("SYSTEM:echo {reply}"),
    ])
}

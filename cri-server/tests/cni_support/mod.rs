//! Shared helpers of the CNI integration tests: every test runs its plugins from a
//! throwaway "host" network namespace (so bridges, veths and iptables rules never touch
//! the real host), with conf, cache, netns and host-local data dirs in a temp dir.
#![allow(dead_code)]

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cri_server::network::{CniConfig, NetNs, PodNetworkRequest};
use nix::sched::{CloneFlags, setns, unshare};

/// Debian's plugins.
pub const PLUGIN_DIR: &str = "/usr/lib/cni";

/// Runs `f` on a dedicated thread that first moves into a fresh network namespace (with
/// `lo` up), on a current-thread runtime so every plugin is spawned from that namespace.
/// The namespace (and the bridges, rules and veths in it) vanishes when the thread ends.
pub fn in_fresh_netns<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET) for the test host netns");
        run("ip", &["link", "set", "lo", "up"]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(f())
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Runs a command in the calling thread's netns, panicking with its output on failure.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Names of the veth interfaces in the calling thread's netns.
pub fn veths() -> Vec<String> {
    run("ip", &["-o", "link", "show", "type", "veth"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// Interfaces inside a netns file (via nsenter).
pub fn links_in(netns: &Path) -> String {
    run(
        "nsenter",
        &[
            &format!("--net={}", netns.display()),
            "ip",
            "-o",
            "link",
            "show",
        ],
    )
}

/// A test's dirs and CNI config. Netns pins are removed before the temp dir goes.
pub struct TestEnv {
    pub netns: Vec<NetNs>,
    pub tmp: tempfile::TempDir,
    pub config: CniConfig,
}

impl TestEnv {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let config = CniConfig {
            conf_dir: tmp.path().join("net.d"),
            bin_dirs: vec![PLUGIN_DIR.into()],
            cache_dir: tmp.path().join("cache"),
            ifname: "eth0".into(),
            plugin_timeout: Duration::from_secs(60),
            conf_template: None,
        };
        std::fs::create_dir_all(&config.conf_dir).unwrap();
        Self {
            netns: Vec::new(),
            tmp,
            config,
        }
    }

    /// host-local's lease dir for `network`.
    pub fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("ipam")
    }

    pub fn netns_dir(&self) -> PathBuf {
        self.tmp.path().join("netns")
    }

    /// The IPs leased by host-local for `network`.
    pub fn leases(&self, network: &str) -> Vec<String> {
        match std::fs::read_dir(self.data_dir().join(network)) {
            Ok(rd) => {
                let mut v: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .collect();
                v.sort();
                v
            }
            Err(_) => Vec::new(),
        }
    }

    /// bridge + host-local (+ portmap + loopback) conflist text.
    pub fn conflist(&self, name: &str, version: &str, subnet: &str, extra: &[&str]) -> String {
        let mut plugins = vec![format!(
            r#"{{"type": "bridge", "bridge": "kt-{name}", "isGateway": true, "ipMasq": true,
               "hairpinMode": true,
               "ipam": {{"type": "host-local", "dataDir": "{}",
                         "ranges": [[{{"subnet": "{subnet}"}}]],
                         "routes": [{{"dst": "0.0.0.0/0"}}]}}}}"#,
            self.data_dir().display()
        )];
        plugins.extend(extra.iter().map(|s| s.to_string()));
        format!(
            r#"{{"cniVersion": "{version}", "name": "{name}", "plugins": [{}]}}"#,
            plugins.join(",")
        )
    }

    pub fn write_conf(&self, file: &str, text: &str) -> PathBuf {
        let p = self.config.conf_dir.join(file);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A pinned pod netns, removed when the env drops.
    pub fn new_netns(&mut self, name: &str) -> PathBuf {
        let ns = NetNs::create(&self.netns_dir(), name).expect("create pod netns");
        let p = ns.path().to_path_buf();
        self.netns.push(ns);
        p
    }

    pub fn pod(&self, id: &str, netns: &Path) -> PodNetworkRequest {
        PodNetworkRequest {
            container_id: id.into(),
            netns_path: netns.display().to_string(),
            pod_name: format!("pod-{id}"),
            pod_namespace: "default".into(),
            pod_uid: format!("uid-{id}"),
            ..Default::default()
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for ns in self.netns.drain(..) {
            if let Err(e) = ns.remove() {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

pub const PORTMAP: &str = r#"{"type": "portmap", "capabilities": {"portMappings": true}}"#;
pub const LOOPBACK: &str = r#"{"type": "loopback"}"#;

/// A TCP server inside `netns` answering one connection with `reply`; gives up after 20 s.
pub fn serve_once_in(netns: &Path, port: u16, reply: &'static [u8]) -> JoinHandle<bool> {
    serve_once_at(netns, SocketAddr::from(([0, 0, 0, 0], port)), reply)
}

/// [`serve_once_in`] on the IPv6 wildcard address.
pub fn serve_once_in6(netns: &Path, port: u16, reply: &'static [u8]) -> JoinHandle<bool> {
    serve_once_at(netns, SocketAddr::from(([0u16; 8], port)), reply)
}

fn serve_once_at(netns: &Path, addr: SocketAddr, reply: &'static [u8]) -> JoinHandle<bool> {
    let ns = std::fs::File::open(netns).expect("open pod netns");
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns into pod netns");
        let l = TcpListener::bind(addr).expect("bind in pod netns");
        l.set_nonblocking(true).unwrap();
        tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.write_all(reply).unwrap();
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        false
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("pod server ready");
    h
}

/// Connects from the calling thread's netns and reads the server's reply.
pub fn fetch(addr: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Whether `path` is a mount point according to /proc/self/mountinfo.
pub fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(p.as_str()))
}

/// Polls `cond` for up to 10 s.
pub fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

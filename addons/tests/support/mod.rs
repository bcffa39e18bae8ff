//! Helpers of the add-on tests: named network namespaces the test creates (and deletes on
//! drop), running code or commands inside them, and a CNI conflist runner that executes the
//! real plugins from /usr/lib/cni the way a runtime does.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

/// Debian's CNI plugins.
pub const PLUGIN_DIR: &str = "/usr/lib/cni";

/// A network namespace at /run/netns/<name>, deleted (with everything in it) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "kat-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip <args>` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Any command inside the namespace.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", &self.name, cmd];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `f` on a thread that has joined the namespace.
    pub fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = std::fs::File::open(self.path()).expect("open netns");
        std::thread::spawn(move || {
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    /// Runs the future `f` in the namespace on a current-thread runtime.
    pub fn block_on<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        self.run_in(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(f())
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs a command, panicking with its output on failure.
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

/// A veth pair `a` in `ns_a` with `addr_a`, `b` in `ns_b` with `addr_b`, both up.
pub fn veth(ns_a: &Netns, a: &str, addr_a: &str, ns_b: &Netns, b: &str, addr_b: &str) {
    ns_a.ip(&[
        "link", "add", a, "type", "veth", "peer", "name", b, "netns", &ns_b.name,
    ]);
    ns_a.ip(&["addr", "add", addr_a, "dev", a]);
    ns_b.ip(&["addr", "add", addr_b, "dev", b]);
    ns_a.ip(&["link", "set", a, "up"]);
    ns_b.ip(&["link", "set", b, "up"]);
}

/// Runs one CNI plugin from `host` with `conf` on stdin.
fn plugin(
    host: &Netns,
    command: &str,
    plugin_type: &str,
    pod: &Netns,
    id: &str,
    conf: &serde_json::Value,
) -> serde_json::Value {
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &host.name,
            &format!("{PLUGIN_DIR}/{plugin_type}"),
        ])
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", pod.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", PLUGIN_DIR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn CNI plugin");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{plugin_type} {command}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&out.stdout).expect("plugin result JSON")
    }
}

/// ADD (or DEL, in reverse order) of a whole conflist, as libcni does: each plugin gets the
/// list's name and version, the previous result, and `runtimeConfig` for its capabilities.
pub fn conflist(
    host: &Netns,
    command: &str,
    list: &str,
    pod: &Netns,
    id: &str,
    port_mappings: serde_json::Value,
) -> serde_json::Value {
    let list: serde_json::Value = serde_json::from_str(list).expect("conflist JSON");
    let mut plugins: Vec<serde_json::Value> = list["plugins"].as_array().expect("plugins").clone();
    if command == "DEL" {
        plugins.reverse();
    }
    let mut prev = serde_json::Value::Null;
    for mut p in plugins {
        let ty = p["type"].as_str().expect("type").to_owned();
        p["name"] = list["name"].clone();
        p["cniVersion"] = list["cniVersion"].clone();
        if p["capabilities"]["portMappings"] == true {
            p["runtimeConfig"] = serde_json::json!({"portMappings": port_mappings});
        }
        if command == "ADD" && !prev.is_null() {
            p["prevResult"] = prev.clone();
        }
        let result = plugin(host, command, &ty, pod, id, &p);
        if command == "ADD" {
            prev = result;
        }
    }
    prev
}

/// A TCP server in `ns` that answers one connection with the peer address it saw.
pub fn echo_peer_once(ns: &Netns, addr: SocketAddr) -> JoinHandle<Option<SocketAddr>> {
    let file = std::fs::File::open(ns.path()).expect("open netns");
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        setns(file.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
        let l = TcpListener::bind(addr).expect("bind");
        l.set_nonblocking(true).unwrap();
        tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match l.accept() {
                Ok((mut s, peer)) => {
                    let _ = s.write_all(peer.to_string().as_bytes());
                    return Some(peer);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        None
    });
    rx.recv().unwrap();
    h
}

/// Connects from `ns` to `addr` and returns what the server sent.
pub fn connect_from(ns: &Netns, addr: SocketAddr) -> String {
    ns.run_in(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = String::new();
        std::io::Read::read_to_string(&mut s, &mut buf).unwrap();
        buf
    })
}

/// Whether a path exists (for leak checks).
pub fn exists(p: &Path) -> bool {
    p.exists()
}

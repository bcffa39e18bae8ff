//! User namespaces (id maps written by the runtime) and the console socket (pty master
//! received over SCM_RIGHTS, as runc's recvtty does).

mod common;

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;

use common::{Bundle, Rt};

#[test]
fn user_namespace_maps_ids() {
    let rt = Rt::ours();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map; id -u",
    ]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    let id = rt.id("userns");
    let o = rt.run(&["run", "-b", b.path().to_str().unwrap(), &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["0", "100000", "65536"]);
    assert_eq!(rows[1], ["0", "100000", "65536"]);
    assert_eq!(rows[2], ["0"]);
}

#[test]
fn exec_joins_the_user_namespace() {
    let rt = Rt::ours();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        let map = serde_json::json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    let id = rt.id("userns-exec");
    rt.ok(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
    let out = rt.ok(&["exec", &id, "sh", "-c", "cat /proc/self/uid_map; hostname"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows, [vec!["0", "300000", "65536"], vec!["kina-test"]]);
}

#[test]
fn user_namespace_without_mappings_is_rejected() {
    let rt = Rt::ours();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}))
    });
    let id = rt.id("userns-bad");
    assert!(
        rt.fails(&["run", "-b", b.path().to_str().unwrap(), &id])
            .contains("uidMappings")
    );
}

#[test]
fn console_socket_receives_pty_master() {
    let rt = Rt::ours();
    let mut b = Bundle::new(&["sh", "-c", "echo hello-tty; tty; sleep 0.2"]);
    b.edit(|c| c["process"]["terminal"] = true.into());
    let sock = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let id = rt.id("console");
    let o = rt.run(&[
        "run",
        "-d",
        "--console-socket",
        sock.to_str().unwrap(),
        "-b",
        b.path().to_str().unwrap(),
        &id,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (conn, _) = listener.accept().unwrap();
    let (master, name) = kina_runtime::console::recv_fd(conn.as_fd()).unwrap();
    assert!(name.starts_with("/dev/pts/"), "{name}");
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    // Read until the slave closes (EIO) or we have both lines.
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&out).contains("/dev/pts/") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("hello-tty\r\n"), "{text:?}");
    assert!(text.contains("/dev/pts/0"), "{text:?}");
}

#[test]
fn terminal_without_console_socket_is_rejected_when_detached() {
    let rt = Rt::ours();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["process"]["terminal"] = true.into());
    let id = rt.id("console-missing");
    assert!(
        rt.fails(&["create", "-b", b.path().to_str().unwrap(), &id])
            .contains("--console-socket")
    );
    assert!(!rt.root.path().join(&id).exists());
}

#[test]
fn run_with_terminal_proxies_the_pty_in_the_foreground() {
    let rt = Rt::ours();
    let mut b = Bundle::new(&["sh", "-c", "echo on-the-tty; tty; exit 4"]);
    b.edit(|c| c["process"]["terminal"] = true.into());
    let id = rt.id("run-tty");
    let o = rt.run(&["run", "-b", b.path().to_str().unwrap(), &id]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("on-the-tty\r\n") && out.contains("/dev/pts/0"),
        "{out:?}"
    );
}

#[test]
fn time_namespace_applies_offsets() {
    let rt = Rt::ours();
    let mut b = Bundle::new(&["cat", "/proc/uptime"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "time"}));
        c["linux"]["timeOffsets"] =
            serde_json::json!({"boottime": {"secs": 10_000_000, "nanosecs": 0}});
    });
    let id = rt.id("timens");
    let out = rt.ok(&["run", "-b", b.path().to_str().unwrap(), &id]);
    let uptime: f64 = out.split_whitespace().next().unwrap().parse().unwrap();
    let host: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        uptime - host > 9_999_000.0,
        "container uptime {uptime}, host {host}"
    );
}

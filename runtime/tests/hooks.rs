//! OCI hooks run at their lifecycle points with the container state on stdin.

mod common;

use common::{Bundle, Rt, cgroup_exists};
use serde_json::{Value, json};

fn hook_writing(path: &std::path::Path) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", path.display())]})
}

#[test]
fn hooks_receive_state_at_each_point() {
    let rt = Rt::ours();
    let mut b = Bundle::new(&["sleep", "0.2"]);
    let dir = tempfile::tempdir().unwrap();
    let out = |n: &str| dir.path().join(n);
    let (cr, cc, ps, pst) = (
        out("createRuntime"),
        out("createContainer"),
        out("poststart"),
        out("poststop"),
    );
    b.edit(|c| {
        c["hooks"] = json!({
            "createRuntime": [hook_writing(&cr)],
            "createContainer": [hook_writing(&cc)],
            // startContainer runs inside the container, after pivot_root.
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/startContainer"]}],
            "poststart": [hook_writing(&ps)],
            "poststop": [hook_writing(&pst)],
        })
    });
    let id = rt.id("hooks");
    rt.ok(&["create", "-b", b.path().to_str().unwrap(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let read = |p: &std::path::Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let s = read(&cr);
    assert_eq!(
        (s["id"].as_str(), s["pid"].as_i64()),
        (Some(id.as_str()), Some(pid))
    );
    assert_eq!(
        s["bundle"],
        b.path().canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(read(&cc)["id"], id.as_str());
    assert!(!ps.exists() && !b.rootfs().join("tmp/startContainer").exists());
    rt.ok(&["start", &id]);
    assert_eq!(read(&ps)["status"], "running");
    assert_eq!(
        read(&b.rootfs().join("tmp/startContainer"))["id"],
        id.as_str()
    );
    rt.wait_status(&id, "stopped");
    assert!(!pst.exists());
    rt.ok(&["delete", &id]);
    assert_eq!(read(&pst)["status"], "stopped");
}

#[test]
fn failing_create_runtime_hook_fails_create_and_cleans_up() {
    let rt = Rt::ours();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| c["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 2"]}]}));
    let id = rt.id("hookfail");
    let err = rt.fails(&["create", "-b", b.path().to_str().unwrap(), &id]);
    assert!(
        err.contains("createRuntime") && err.contains("nope") && err.contains(&id),
        "{err}"
    );
    assert!(!rt.root.path().join(&id).exists());
    assert!(!cgroup_exists(&id));
    assert!(
        !common::process_with_cmdline("sleep\u{20}1000") || !rt.ok(&["list", "-q"]).contains(&id)
    );
}

#[test]
fn hook_timeout_kills_hook_and_fails_create() {
    let rt = Rt::ours();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["hooks"] =
            json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]})
    });
    let id = rt.id("hooktimeout");
    let t = std::time::Instant::now();
    let err = rt.fails(&["create", "-b", b.path().to_str().unwrap(), &id]);
    assert!(err.contains("timed out"), "{err}");
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    assert!(!rt.root.path().join(&id).exists());
}

#[test]
fn failing_start_container_hook_fails_start() {
    let rt = Rt::ours();
    let mut b = Bundle::new(&["sh", "-c", "echo ran > /tmp/ran"]);
    b.edit(|c| {
        c["hooks"] = json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no-start >&2; exit 3"]}]})
    });
    let id = rt.id("starthook");
    rt.ok(&["create", "-b", b.path().to_str().unwrap(), &id]);
    let err = rt.fails(&["start", &id]);
    assert!(
        err.contains("startContainer") && err.contains("no-start") && err.contains(&id),
        "{err}"
    );
    rt.wait_status(&id, "stopped");
    assert!(
        !b.rootfs().join("tmp/ran").exists(),
        "the process ran although its hook failed"
    );
    rt.ok(&["delete", &id]);
}

//! Bad input fails with an error naming the field or id, and leaves nothing behind: no state
//! directory, no cgroup, no process, no mount.

mod common;

use common::{Bundle, Rt, cgroup_exists, mounted};
use serde_json::json;

/// Creates with a broken bundle, checks the error and that nothing leaked.
fn assert_rejected(b: &Bundle, want: &str) {
    let rt = Rt::ours();
    let id = rt.id("bad");
    let err = rt.fails(&["create", "-b", b.path().to_str().unwrap(), &id]);
    assert!(err.contains(want), "error does not name {want:?}: {err}");
    assert!(
        err.contains(&id),
        "error does not name the container: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!rt.root.path().join(&id).exists(), "state dir left behind");
    assert!(!cgroup_exists(&id), "cgroup left behind");
    assert!(!mounted(b.path().to_str().unwrap()), "mount left behind");
    // A leaked init would still carry the runtime's command line (it never exec'd).
    assert!(
        !common::process_with_cmdline(rt.root.path().to_str().unwrap()),
        "process left behind"
    );
    assert!(rt.ok(&["list", "-q"]).trim().is_empty());
}

#[test]
fn malformed_json() {
    let b = Bundle::new(&["true"]);
    std::fs::write(b.path().join("config.json"), "{\"ociVersion\": \"1.2.0\", ").unwrap();
    assert_rejected(&b, "config.json");
}

#[test]
fn missing_rootfs() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["root"]["path"] = "no-such-rootfs".into());
    assert_rejected(&b, "root.path");
}

#[test]
fn unknown_namespace() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["linux"]["namespaces"][1]["type"] = "bogus".into());
    assert_rejected(&b, "linux.namespaces[1].type");
}

#[test]
fn bad_mount_destination() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "relative/dir", "type": "tmpfs", "source": "tmpfs"}))
    });
    assert_rejected(&b, "mounts[5].destination");
}

#[test]
fn mount_failure_inside_init_is_reported_and_cleaned_up() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/mnt", "type": "no-such-fstype", "source": "x"}))
    });
    assert_rejected(&b, "/mnt");
}

#[test]
fn relative_cwd() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["process"]["cwd"] = "tmp".into());
    assert_rejected(&b, "process.cwd");
}

#[test]
fn missing_executable() {
    let b = Bundle::new(&["no-such-program"]);
    assert_rejected(&b, "no-such-program");
}

#[test]
fn duplicate_id() {
    let rt = Rt::ours();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = rt.id("dup");
    rt.ok(&["create", "-b", b.path().to_str().unwrap(), &id]);
    let pid = rt.state(&id)["pid"].clone();
    let err = rt.fails(&["create", "-b", b.path().to_str().unwrap(), &id]);
    assert!(err.contains(&id) && err.contains("exists"), "{err}");
    // The first container is untouched.
    assert_eq!(rt.state(&id)["pid"], pid);
    assert_eq!(rt.status(&id), "created");
    assert!(
        rt.fails(&["create", "-b", b.path().to_str().unwrap(), "../escape"])
            .contains("invalid")
    );
}

//! Pod network namespaces: pinned by a bind mount with `lo` up, removed without leaving a
//! mount or a file, idempotently.

mod cni_support;

use cni_support::*;
use cri_server::network::{NetNs, NetnsError};

#[test]
fn netns_create_and_remove_leave_no_mount_and_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("netns");
    let ns = NetNs::create(&dir, "pod-a").expect("create");
    let path = dir.join("pod-a");
    assert_eq!(ns.path(), path);
    assert!(path.exists());
    assert!(is_mounted(&path), "pinned by a bind mount");
    // A real, separate netns with only lo, and lo up.
    let self_ns = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let pinned = run(
        "nsenter",
        &[
            &format!("--net={}", path.display()),
            "readlink",
            "/proc/self/ns/net",
        ],
    );
    assert_ne!(pinned.trim(), self_ns.to_str().unwrap());
    let links = links_in(&path);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo: <LOOPBACK,UP,LOWER_UP>"), "{links}");
    ns.open().expect("openable for setns");

    ns.remove().expect("remove");
    assert!(!path.exists());
    assert!(!is_mounted(&path));
    ns.remove().expect("remove is idempotent");
    NetNs::from_path(dir.join("never-created"))
        .remove()
        .expect("missing is fine");
}

#[test]
fn netns_rejects_bad_names_and_duplicates_without_leaking() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("netns");
    for bad in ["", "..", "a/b", "x y"] {
        assert!(
            matches!(NetNs::create(&dir, bad), Err(NetnsError::InvalidName(_))),
            "{bad:?}"
        );
    }
    let ns = NetNs::create(&dir, "dup").unwrap();
    let err = NetNs::create(&dir, "dup").unwrap_err();
    assert!(matches!(err, NetnsError::Exists(_)), "{err}");
    // The failed second create did not disturb the first.
    assert!(is_mounted(ns.path()));
    ns.remove().unwrap();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn netns_creation_failure_cleans_up() {
    // A dir on which the bind mount target cannot be created: a read-only file path.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let err = NetNs::create(&file, "x").unwrap_err();
    assert!(err.to_string().contains("not-a-dir"), "{err}");
    assert!(!is_mounted(&file.join("x")));
}

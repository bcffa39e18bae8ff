//! Hostile layers: every way an entry could write outside its snapshot is rejected with a
//! clear error and nothing appears outside; through a pull, the image is not recorded.

mod support;

use std::path::Path;

use cri_server::image::Error;
use cri_server::image::unpack::apply_layer;
use support::images::{self, Comp, LayerBuilder};
use support::registry::{Mode, Registry};
use tar::EntryType;

/// Applies `layer` into `<tmp>/snap` next to `<tmp>/outside`, which holds a sentinel file.
fn apply_hostile(layer: Vec<u8>) -> (Error, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("snap");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"untouched").unwrap();
    let err =
        apply_layer(&snap, "hostile", &layer[..]).expect_err("hostile layer must be rejected");
    assert_outside_untouched(&outside);
    (err, tmp)
}

fn assert_outside_untouched(outside: &Path) {
    let names: Vec<_> = std::fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("secret")],
        "nothing written outside"
    );
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"untouched");
}

fn assert_unsafe(err: &Error, needle: &str) {
    match err {
        Error::UnsafeLayer { layer, reason, .. } => {
            assert_eq!(layer, "hostile");
            assert!(
                reason.contains(needle),
                "reason {reason:?} should mention {needle:?}"
            );
        }
        other => panic!("expected UnsafeLayer, got {other}"),
    }
}

#[test]
fn dot_dot_entry_is_rejected() {
    let l = LayerBuilder::new()
        .raw(EntryType::Regular, "../outside/pwned", None, b"x")
        .finish();
    assert_unsafe(&apply_hostile(l).0, "..");
}

#[test]
fn absolute_entry_is_rejected() {
    let l = LayerBuilder::new()
        .raw(EntryType::Regular, "/tmp/kina-pwned-abs", None, b"x")
        .finish();
    assert_unsafe(&apply_hostile(l).0, "absolute");
    assert!(!Path::new("/tmp/kina-pwned-abs").exists());
}

#[test]
fn write_through_symlinked_parent_is_rejected() {
    let tmp_probe = tempfile::tempdir().unwrap();
    let outside = tmp_probe.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let l = LayerBuilder::new()
        .symlink("escape", outside.to_str().unwrap())
        .raw(EntryType::Regular, "escape/pwned", None, b"x")
        .finish();
    assert_unsafe(&apply_hostile(l).0, "symlink");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn chained_symlinks_are_rejected() {
    let l = LayerBuilder::new()
        .symlink("a", "b")
        .symlink("b", "../outside")
        .raw(EntryType::Regular, "a/pwned", None, b"x")
        .finish();
    assert_unsafe(&apply_hostile(l).0, "symlink");
}

#[test]
fn hardlink_to_outside_is_rejected() {
    let l = LayerBuilder::new()
        .raw(EntryType::Link, "h", Some("../outside/secret"), b"")
        .finish();
    assert_unsafe(&apply_hostile(l).0, "..");
    let l = LayerBuilder::new()
        .raw(EntryType::Link, "h", Some("/etc/passwd"), b"")
        .finish();
    assert_unsafe(&apply_hostile(l).0, "absolute");
}

#[test]
fn hardlink_through_symlinked_dir_is_rejected() {
    let l = LayerBuilder::new()
        .symlink("s", "../outside")
        .raw(EntryType::Link, "h", Some("s/secret"), b"")
        .finish();
    assert_unsafe(&apply_hostile(l).0, "symlink");
}

#[test]
fn whiteout_of_dot_dot_is_rejected() {
    let l = LayerBuilder::new()
        .dir("d", 0o755)
        .raw(EntryType::Regular, "d/.wh...", None, b"")
        .finish();
    assert_unsafe(&apply_hostile(l).0, "whiteout");
}

#[test]
fn file_replacing_a_symlink_does_not_write_through_it() {
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("snap");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"untouched").unwrap();
    let target = outside.join("secret");
    let l = LayerBuilder::new()
        .symlink("f", target.to_str().unwrap())
        .file("f", b"replaced")
        .finish();
    apply_layer(&snap, "benign", &l[..]).unwrap();
    assert_outside_untouched(&outside);
    assert_eq!(std::fs::read(snap.join("f")).unwrap(), b"replaced");
    assert!(
        !std::fs::symlink_metadata(snap.join("f"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn truncated_layer_is_an_error_not_a_panic() {
    let l = LayerBuilder::new().busybox().finish();
    let gz = images::compress(&l, Comp::Gzip).data;
    let tmp = tempfile::tempdir().unwrap();
    let err = apply_layer(tmp.path(), "truncated", &gz[..gz.len() / 2]).unwrap_err();
    assert!(matches!(err, Error::BadLayer { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pulling_a_hostile_image_records_nothing() {
    let reg = Registry::start(Mode::Plain);
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs.d");
    std::fs::create_dir_all(&certs).unwrap();
    let bad = LayerBuilder::new()
        .symlink("etc", "/etc")
        .raw(EntryType::Regular, "etc/kina-pwned", None, b"x")
        .finish();
    let img = images::image(
        &[
            (LayerBuilder::new().busybox().finish(), Comp::Gzip),
            (bad, Comp::Gzip),
        ],
        "amd64",
        "",
    );
    images::push(&reg, "hostile/img:1", &img).await;
    let m = support::manager(&tmp.path().join("root"), &certs, None);
    let err = m
        .pull(&format!("{}/hostile/img:1", reg.authority()), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnsafeLayer { .. }), "{err}");
    assert!(err.to_string().contains("etc/kina-pwned"), "{err}");
    assert!(!Path::new("/etc/kina-pwned").exists());
    assert!(m.list().is_empty());
    assert_eq!(
        m.snapshotter().list().unwrap().len(),
        1,
        "only the good layer is committed"
    );
    let tonic_status: tonic::Status = err.into();
    assert_eq!(tonic_status.code(), tonic::Code::DataLoss);
}

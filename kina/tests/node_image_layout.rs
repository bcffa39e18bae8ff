//! Writing layers and OCI layouts, checked by the tools users would point at them: `skopeo
//! inspect` reads the layout and the archive, `umoci unpack` extracts the layers and the unpacked
//! files keep modes, ownership, hardlinks, symlinks, device nodes, FIFOs and xattrs.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use kina::node_image::layer::{LayerWriter, TREE_MTIME};
use kina::node_image::oci::{self, ImageMeta, ImageRef, LayerBlob};
use kina::node_image::tree::Tree;
use sha2::{Digest, Sha256};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sha256_file(p: &Path) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(fs::read(p).unwrap()))
    )
}

/// A directory holding every kind of entry a Debian root has.
fn sample_root(root: &Path) {
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::create_dir_all(root.join("proc/self")).unwrap(); // contents must be skipped
    fs::write(root.join("proc/self/junk"), "x").unwrap();
    fs::write(root.join("usr/bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    fs::set_permissions(
        root.join("usr/bin/tool"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool-alias")).unwrap();
    std::os::unix::fs::symlink("tool", root.join("usr/bin/link")).unwrap();
    fs::write(root.join("owned"), "data").unwrap();
    std::os::unix::fs::chown(root.join("owned"), Some(1234), Some(5678)).unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &root.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    xattr::set(root.join("owned"), "user.kina", b"node").unwrap();
    let long = "d".repeat(120);
    fs::create_dir_all(root.join(&long)).unwrap();
    fs::write(root.join(&long).join("f".repeat(120)), "long").unwrap();
}

fn build_image(dir: &Path) -> (oci::WrittenImage, Vec<LayerBlob>) {
    let root = dir.join("root");
    sample_root(&root);
    let mut base = LayerWriter::create(&dir.join("base.tar.gz")).unwrap();
    base.append_dir(&root, &["proc"]).unwrap();
    let base_info = base.finish().unwrap();
    let mut tree = Tree::new();
    tree.file("/etc/kina.conf", 0o640, "x = 1\n");
    tree.symlink("/etc/systemd/system/getty@.service", "/dev/null");
    let mut top = LayerWriter::create(&dir.join("top.tar.gz")).unwrap();
    top.append_tree(&tree).unwrap();
    let top_info = top.finish().unwrap();
    let layers = vec![
        LayerBlob {
            path: dir.join("base.tar.gz"),
            info: base_info,
            created_by: "base".into(),
        },
        LayerBlob {
            path: dir.join("top.tar.gz"),
            info: top_info,
            created_by: "top".into(),
        },
    ];
    let meta = ImageMeta {
        reference: ImageRef::parse("kina/test-node:v1").unwrap(),
        arch: "amd64".into(),
        labels: HashMap::from([("io.kina.kubernetes.version".into(), "v1.36.2".into())]),
        created: "2026-01-01T00:00:00Z".into(),
        entrypoint: vec!["/sbin/init".into()],
        env: vec!["container=docker".into()],
        stop_signal: Some("SIGRTMIN+3".into()),
    };
    let written = oci::write_layout(&dir.join("layout"), &meta, &layers).unwrap();
    (written, layers)
}

#[test]
fn layout_digests_are_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let (written, layers) = build_image(dir.path());
    let layout = dir.path().join("layout");
    for entry in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(sha256_file(&p), format!("sha256:{name}"));
    }
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = &index["manifests"][0];
    assert_eq!(m["digest"], written.manifest_digest.as_str());
    assert_eq!(m["annotations"]["org.opencontainers.image.ref.name"], "v1");
    assert_eq!(
        m["annotations"]["io.containerd.image.name"],
        "kina/test-node:v1"
    );
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(&written.manifest_digest)).unwrap()).unwrap();
    assert_eq!(
        m["size"],
        fs::metadata(blob(&written.manifest_digest)).unwrap().len()
    );
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(config_digest)).unwrap()).unwrap();
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/sbin/init"])
    );
    assert_eq!(config["config"]["StopSignal"], "SIGRTMIN+3");
    assert!(
        config["config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&"container=docker".into())
    );
    assert_eq!(
        config["config"]["Labels"]["io.kina.kubernetes.version"],
        "v1.36.2"
    );
    for (i, l) in layers.iter().enumerate() {
        assert_eq!(manifest["layers"][i]["digest"], l.info.digest.as_str());
        assert_eq!(
            manifest["layers"][i]["size"],
            fs::metadata(blob(&l.info.digest)).unwrap().len()
        );
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(fs::File::open(&l.path).unwrap())
            .read_to_end(&mut raw)
            .unwrap();
        let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&raw)));
        assert_eq!(config["rootfs"]["diff_ids"][i], diff_id.as_str());
        assert_eq!(l.info.diff_id, diff_id);
    }
    // Rewriting the same tag replaces the entry; another tag is added beside it.
    let meta2 = ImageMeta {
        reference: ImageRef::parse("kina/test-node:v2").unwrap(),
        arch: "amd64".into(),
        labels: HashMap::new(),
        created: "2026-01-01T00:00:00Z".into(),
        entrypoint: vec!["/sbin/init".into()],
        env: vec!["container=docker".into()],
        stop_signal: Some("SIGRTMIN+3".into()),
    };
    oci::write_layout(&layout, &meta2, &layers).unwrap();
    oci::write_layout(&layout, &meta2, &layers).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let tags: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(tags, ["v1", "v2"]);
}

#[test]
fn skopeo_reads_the_layout_and_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let (written, layers) = build_image(dir.path());
    let layout = dir.path().join("layout");
    let out = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:v1", layout.display())));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], written.manifest_digest.as_str());
    assert_eq!(
        v["Layers"],
        serde_json::json!([layers[0].info.digest, layers[1].info.digest])
    );
    assert_eq!(v["Architecture"], "amd64");
    let archive = dir.path().join("node.tar");
    oci::write_archive(&layout, &archive).unwrap();
    let out = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}:v1", archive.display())));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], written.manifest_digest.as_str());
    assert!(!dir.path().join("node.tar.partial").exists());
}

#[test]
fn umoci_unpacks_every_kind_of_entry() {
    let dir = tempfile::tempdir().unwrap();
    build_image(dir.path());
    let bundle = dir.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:v1", dir.path().join("layout").display()))
        .arg(&bundle));
    let r = bundle.join("rootfs");
    let tool = fs::metadata(r.join("usr/bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755);
    assert_eq!(
        tool.ino(),
        fs::metadata(r.join("usr/bin/tool-alias")).unwrap().ino(),
        "hardlink lost"
    );
    assert_eq!(
        fs::read_link(r.join("usr/bin/link")).unwrap(),
        Path::new("tool")
    );
    let owned = fs::metadata(r.join("owned")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (1234, 5678));
    assert_eq!(
        xattr::get(r.join("owned"), "user.kina").unwrap().as_deref(),
        Some(&b"node"[..])
    );
    assert!(
        fs::symlink_metadata(r.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let null = fs::symlink_metadata(r.join("null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert!(
        r.join("proc").is_dir() && !r.join("proc/self").exists(),
        "proc contents leaked into the layer"
    );
    let long = r.join("d".repeat(120)).join("f".repeat(120));
    assert_eq!(fs::read_to_string(long).unwrap(), "long");
    let conf = fs::metadata(r.join("etc/kina.conf")).unwrap();
    assert_eq!(
        (conf.mode() & 0o777, conf.uid(), conf.mtime() as u64),
        (0o640, 0, TREE_MTIME)
    );
    assert_eq!(
        fs::read_link(r.join("etc/systemd/system/getty@.service")).unwrap(),
        Path::new("/dev/null")
    );
}

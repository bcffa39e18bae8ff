//! Test images built locally: busybox (busybox-static plus /etc/passwd and /etc/group) and the
//! pause image (the static kina-pause), written as `docker save` archives and imported.

use std::path::Path;

use cri_server::image::{ImageManager, ManagerConfig, Platform, RegistryConfig};
use sha2::{Digest, Sha256};

pub const BUSYBOX: &str = "kina.test/busybox:1";
pub const PAUSE: &str = "registry.k8s.io/pause:3.10";

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h
}

fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
    let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

fn add_dir(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) {
    let mut h = header(tar::EntryType::Directory, mode, 0);
    b.append_data(&mut h, path, &[][..]).unwrap();
}

fn busybox_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root", "home"] {
        add_dir(&mut b, d, if d == "tmp" { 0o1777 } else { 0o755 });
    }
    add_file(
        &mut b,
        "bin/busybox",
        &std::fs::read("/bin/busybox").unwrap(),
        0o755,
    );
    for tool in [
        "sh", "ls", "cat", "echo", "sleep", "true", "false", "wget", "httpd", "nc", "head", "tail",
        "mkdir", "id", "ps", "kill", "hostname", "env", "dd", "seq", "test", "printf",
    ] {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, format!("bin/{tool}"), "busybox")
            .unwrap();
    }
    add_file(
        &mut b,
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001::/home:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        0o644,
    );
    add_file(
        &mut b,
        "etc/group",
        b"root:x:0:\nweb:x:1001:\nvideo:x:44:web\nnogroup:x:65534:\n",
        0o644,
    );
    b.into_inner().unwrap()
}

fn pause_layer(pause: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    add_file(&mut b, "pause", &std::fs::read(pause).unwrap(), 0o755);
    b.into_inner().unwrap()
}

/// Writes a one-layer `docker save` archive for `tag`.
fn docker_save(out: &Path, tag: &str, layer: &[u8], config: serde_json::Value) {
    let diff_id = sha(layer);
    let mut config = config;
    config["architecture"] = "amd64".into();
    config["os"] = "linux".into();
    config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": [diff_id]});
    let config = serde_json::to_vec(&config).unwrap();
    let cfg_name = format!("{}.json", &sha(&config)[7..]);
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": cfg_name, "RepoTags": [tag], "Layers": ["layer/layer.tar"],
    }]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    add_file(&mut b, &cfg_name, &config, 0o644);
    add_dir(&mut b, "layer", 0o755);
    add_file(&mut b, "layer/layer.tar", layer, 0o644);
    add_file(&mut b, "manifest.json", &manifest, 0o644);
    std::fs::write(out, b.into_inner().unwrap()).unwrap();
}

/// Imports the busybox and pause images into the image store at `root`.
pub fn import_test_images(root: &Path, pause: &Path) {
    let m = ImageManager::open(ManagerConfig {
        root: root.to_owned(),
        registry: RegistryConfig {
            config_path: None,
            auth_file: None,
        },
        platform: Platform::host(),
        pinned: vec![PAUSE.into()],
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bb = dir.path().join("busybox.tar");
    docker_save(
        &bb,
        BUSYBOX,
        &busybox_layer(),
        serde_json::json!({"config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin", "IMAGE_VAR=from-image"], "WorkingDir": "/"}}),
    );
    m.import_archive_blocking(&bb).unwrap();
    let p = dir.path().join("pause.tar");
    docker_save(
        &p,
        PAUSE,
        &pause_layer(pause),
        serde_json::json!({"config": {"Entrypoint": ["/pause"], "User": "65535:65535"}}),
    );
    m.import_archive_blocking(&p).unwrap();
}

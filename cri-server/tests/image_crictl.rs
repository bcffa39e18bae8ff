//! The real cri-server binary driven by crictl (image commands only: no RuntimeService yet),
//! pulling `registry.k8s.io/pause:3.10` from a local mirror configured by hosts.toml; and a
//! kill -9 in the middle of a pull followed by a restart.

mod support;

use support::images::{self, Comp, LayerBuilder};
use support::registry::{Mode, Registry};
use support::server::CriServer;

#[tokio::test(flavor = "multi_thread")]
async fn crictl_pull_images_inspecti_imagefsinfo_rmi() {
    let reg = Registry::start(Mode::Plain);
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs.d");
    reg.write_hosts_toml(&certs, "registry.k8s.io", "");
    let img = images::whiteout_image(Comp::Gzip);
    images::push(&reg, "pause:3.10", &img).await;

    let srv = CriServer::start(tmp.path(), &certs);
    let out = srv.crictl_ok(&["pull", "registry.k8s.io/pause:3.10"]);
    assert!(
        out.contains(&img.config.digest),
        "pull prints the image ref: {out}"
    );

    let out = srv.crictl_ok(&["images"]);
    let short_id = &img.config.digest["sha256:".len().."sha256:".len() + 13];
    assert!(
        out.contains("registry.k8s.io/pause") && out.contains("3.10") && out.contains(short_id),
        "{out}"
    );

    let filtered = srv.crictl_ok(&["images", "-q", "registry.k8s.io/pause"]);
    assert_eq!(filtered.trim(), img.config.digest, "repository filter");
    let filtered = srv.crictl_ok(&["images", "-q", "registry.k8s.io/other"]);
    assert!(filtered.trim().is_empty(), "{filtered}");

    let out = srv.crictl_ok(&["images", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let image = &v["images"][0];
    assert_eq!(image["repoTags"][0], "registry.k8s.io/pause:3.10");
    assert_eq!(
        image["repoDigests"][0],
        format!("registry.k8s.io/pause@{}", img.manifest.digest)
    );
    assert_eq!(image["uid"]["value"], "1000");
    assert_eq!(image["pinned"], true);
    let size: u64 = image["size"].as_str().unwrap().parse().unwrap();
    let expected: usize = img.layers.iter().map(|l| l.data.len()).sum::<usize>()
        + img.config.data.len()
        + img.manifest.data.len();
    assert_eq!(size, expected as u64);

    let out = srv.crictl_ok(&["inspecti", "registry.k8s.io/pause:3.10"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"]["id"], img.config.digest);
    assert_eq!(v["info"]["imageSpec"]["config"]["User"], "1000:1000");

    let out = srv.crictl_ok(&["imagefsinfo"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let used: u64 = v["status"]["imageFilesystems"][0]["usedBytes"]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(used > 1_000_000, "busybox is stored: {used} bytes");

    let missing = srv.crictl(&["pull", "registry.k8s.io/does-not-exist:1"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("NotFound"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    let short = &img.config.digest[7..7 + 13];
    let out = srv.crictl_ok(&["inspecti", "-o", "json", short]);
    assert!(out.contains(&img.config.digest), "short IDs resolve: {out}");
    srv.crictl_ok(&["rmi", short]);
    let out = srv.crictl_ok(&["images", "-q"]);
    assert!(out.trim().is_empty(), "{out}");
    let out = srv.crictl_ok(&["imagefsinfo"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let after: u64 = v["status"]["imageFilesystems"][0]["usedBytes"]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        after < used / 4,
        "rmi garbage-collects blobs and snapshots: {after} vs {used}"
    );
    assert!(srv.stop(), "graceful shutdown on SIGTERM");
    assert!(
        !tmp.path().join("cri.sock").exists(),
        "socket removed on shutdown"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_pull_then_restart_completes() {
    let reg = Registry::start(Mode::Plain);
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs.d");
    // ~50 MB of incompressible data in one layer, stored uncompressed.
    let mut big = vec![0u8; 50 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in big.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let layers = vec![
        (LayerBuilder::new().busybox().finish(), Comp::Gzip),
        (
            LayerBuilder::new().file("big.bin", &big).finish(),
            Comp::None,
        ),
    ];
    let img = images::image(&layers, "amd64", "");
    images::push(&reg, "big/img:1", &img).await;
    let name = format!("{}/big/img:1", reg.authority());

    let srv = CriServer::start(tmp.path(), &certs);
    let ep = format!("unix://{}", srv.socket.display());
    let mut pull = std::process::Command::new(support::server::crictl_path())
        .args([
            "--image-endpoint",
            &ep,
            "--runtime-endpoint",
            &ep,
            "pull",
            &name,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the pull is underway (something is being ingested or unpacked).
    let root = tmp.path().join("root");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let busy = |d: &str| {
            std::fs::read_dir(root.join(d))
                .map(|r| r.count() > 0)
                .unwrap_or(false)
        };
        if busy("content/ingest") || busy("overlay/scratch") || std::time::Instant::now() > deadline
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    srv.kill9();
    let _ = pull.wait();

    let srv = CriServer::start(tmp.path(), &certs);
    assert_eq!(
        std::fs::read_dir(root.join("content/ingest"))
            .unwrap()
            .count(),
        0,
        "partial ingests discarded"
    );
    assert_eq!(
        std::fs::read_dir(root.join("overlay/scratch"))
            .unwrap()
            .count(),
        0,
        "partial snapshots discarded"
    );
    // Every blob that is visible is complete and verified.
    for e in std::fs::read_dir(root.join("content/blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let data = std::fs::read(e.path()).unwrap();
        assert_eq!(
            images::sha(&data),
            format!("sha256:{}", e.file_name().to_string_lossy())
        );
    }
    let before = srv.crictl_ok(&["images", "-q"]);
    assert!(
        before.trim().is_empty(),
        "the killed pull did not complete: {before}"
    );
    srv.crictl_ok(&["pull", &name]);
    let out = srv.crictl_ok(&["images", "-o", "json"]);
    assert!(out.contains(&img.config.digest), "{out}");
}

#[test]
fn bad_config_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.toml");
    std::fs::write(&cfg, "[registry]\nconfigpath = \"/x\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cri-server"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("configpath") && err.contains("config.toml"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cri-server"))
        .arg("--config")
        .arg(tmp.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn cli_import_and_export_while_the_server_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs.d");
    let srv = CriServer::start(tmp.path(), &certs);
    let layer = LayerBuilder::new().busybox().finish();
    let img = images::image(&[(layer.clone(), Comp::None)], "amd64", "");
    let mut b = tar::Builder::new(Vec::new());
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": "config.json", "RepoTags": ["kina.local/loaded:v1"], "Layers": ["l1/layer.tar"],
    }]))
    .unwrap();
    for (name, data) in [
        ("config.json", &img.config.data),
        ("l1/layer.tar", &layer),
        ("manifest.json", &manifest),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    let archive = tmp.path().join("save.tar");
    std::fs::write(&archive, b.into_inner().unwrap()).unwrap();

    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cri-server"))
            .arg("--config")
            .arg(tmp.path().join("config.toml"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["images", "import", archive.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&img.config.digest));
    // The running server sees the imported image without a restart.
    let listed = srv.crictl_ok(&["images", "-q", "kina.local/loaded:v1"]);
    assert_eq!(listed.trim(), img.config.digest);

    let exported = tmp.path().join("export.tar");
    let out = cli(&[
        "images",
        "export",
        "kina.local/loaded:v1",
        exported.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new("skopeo")
        .arg("inspect")
        .arg("--config")
        .arg(format!("oci-archive:{}", exported.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rootfs"]["diff_ids"][0], img.diff_ids[0]);

    let out = cli(&[
        "images",
        "import",
        tmp.path().join("missing.tar").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.tar"));
    assert!(srv.stop());
}

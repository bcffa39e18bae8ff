//! Pulling from a real local docker-registry through hosts.toml mirrors: unpacking with
//! whiteouts, sharing, restarts, multi-arch, compression, deduplication, faults and GC.

mod support;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use cri_server::image::{Error, ImageManager};
use support::images::{self, Comp, LayerBuilder};
use support::registry::{Mode, Registry};

struct Env {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    certs: std::path::PathBuf,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let certs = tmp.path().join("certs.d");
    std::fs::create_dir_all(&certs).unwrap();
    Env {
        _tmp: tmp,
        root,
        certs,
    }
}

/// Unmounts on drop, so a failed assertion does not leak the mount.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        cri_server::image::RootfsMount::unmount(&self.0).unwrap();
    }
}

fn snapshot_dir(m: &ImageManager, chain: &cri_server::image::Digest) -> std::path::PathBuf {
    m.snapshotter().path(chain)
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_from_mirror_unpacks_whiteouts_and_survives_restart() {
    let reg = Registry::start(Mode::Plain);
    let e = env();
    reg.write_hosts_toml(&e.certs, "registry.k8s.io", "");
    let img = images::whiteout_image(Comp::Gzip);
    images::push(&reg, "pause:3.10", &img).await;

    let m = support::manager(&e.root, &e.certs, None);
    let rec = m.pull("registry.k8s.io/pause:3.10", None).await.unwrap();
    assert_eq!(rec.id.to_string(), img.config.digest);
    let view = m.resolve("registry.k8s.io/pause:3.10").unwrap();
    assert_eq!(
        view.repo_tags,
        vec!["registry.k8s.io/pause:3.10".to_owned()]
    );
    assert_eq!(
        view.repo_digests,
        vec![format!("registry.k8s.io/pause@{}", img.manifest.digest)]
    );
    assert!(view.pinned, "the sandbox image is pinned");
    assert_eq!(rec.user, "1000:1000");

    // Layer 2 on disk: overlayfs whiteouts, opaque dir, metadata.
    let chain = rec.chain_ids();
    let l2 = snapshot_dir(&m, &chain[1]);
    let wh = std::fs::symlink_metadata(l2.join("etc/gone")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0/0 char device"
    );
    assert_eq!(
        xattr::get(l2.join("etc/opaque"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert!(!l2.join(".wh.placeholder").exists() && l2.join("placeholder").exists());
    let suid = std::fs::metadata(l2.join("usr-suid")).unwrap();
    assert_eq!(
        (suid.mode() & 0o7777, suid.uid(), suid.gid()),
        (0o4755, 1000, 1000)
    );
    assert_eq!(
        xattr::get(l2.join("etc/xattr"), "user.kina")
            .unwrap()
            .as_deref(),
        Some(&b"yes"[..])
    );
    assert_eq!(
        std::fs::metadata(l2.join("etc/hard")).unwrap().ino(),
        std::fs::metadata(l2.join("etc/xattr")).unwrap().ino()
    );
    assert_eq!(
        std::fs::read_link(l2.join("etc/abs-link")).unwrap(),
        Path::new("/etc/kept")
    );
    let dev = std::fs::metadata(l2.join("dev-null")).unwrap();
    assert!(dev.file_type().is_char_device() && dev.rdev() == nix::sys::stat::makedev(1, 3));
    assert!(
        std::fs::metadata(l2.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        std::fs::metadata(l2.join("etc/opaque")).unwrap().mode() & 0o777,
        0o750
    );

    // The merged rootfs is what a container sees.
    let rootfs = m.snapshotter().prepare_rootfs(&chain, "c1").unwrap();
    let target = e.root.join("mnt");
    std::fs::create_dir_all(&target).unwrap();
    rootfs.mount(&target).unwrap();
    {
        let _unmount = Unmount(target.clone());
        assert!(!target.join("etc/gone").exists(), "whited-out file hidden");
        let mut names: Vec<String> = std::fs::read_dir(target.join("etc/opaque"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["new"], "opaque dir hides lower entries");
        assert_eq!(std::fs::read(target.join("etc/kept")).unwrap(), b"kept");
        let out = std::process::Command::new("chroot")
            .arg(&target)
            .args(["/bin/sh", "-c", "cat /etc/kept"])
            .output()
            .unwrap();
        assert_eq!(
            out.stdout,
            b"kept",
            "busybox runs in the rootfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    m.snapshotter().remove_rootfs("c1").unwrap();

    // Pulling again fetches no blobs; a restarted manager still knows the image.
    let before = m.bytes_fetched();
    m.pull("registry.k8s.io/pause:3.10", None).await.unwrap();
    assert_eq!(
        m.bytes_fetched(),
        before,
        "present blobs are not fetched again"
    );
    drop(m);
    let m2 = support::manager(&e.root, &e.certs, None);
    assert_eq!(m2.resolve(&img.config.digest).unwrap().record, rec);
    assert_eq!(
        m2.resolve(
            "registry.k8s.io/pause@"
                .to_owned()
                .as_str()
                .replace('@', &format!("@{}", img.manifest.digest))
                .as_str()
        )
        .unwrap()
        .record
        .id,
        rec.id
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_index_for_amd64_and_all_compressions() {
    let reg = Registry::start(Mode::Plain);
    let e = env();
    let bb = LayerBuilder::new().busybox().finish();
    let amd = images::image(
        &[
            (bb.clone(), Comp::Zstd),
            (
                LayerBuilder::new().file("arch", b"amd64").finish(),
                Comp::None,
            ),
        ],
        "amd64",
        "",
    );
    let arm = images::image(
        &[
            (bb, Comp::Gzip),
            (
                LayerBuilder::new().file("arch", b"arm64").finish(),
                Comp::Gzip,
            ),
        ],
        "arm64",
        "",
    );
    let index_digest =
        images::push_index(&reg, "multi/arch:v1", &[("arm64", &arm), ("amd64", &amd)]).await;
    let m = support::manager(&e.root, &e.certs, None);
    let name = format!("{}/multi/arch:v1", reg.authority());
    let rec = m.pull(&name, None).await.unwrap();
    assert_eq!(
        rec.id.to_string(),
        amd.config.digest,
        "linux/amd64 selected from the index"
    );
    let top = m.snapshotter().path(rec.chain_ids().last().unwrap());
    assert_eq!(std::fs::read(top.join("arch")).unwrap(), b"amd64");
    let view = m.resolve(&name).unwrap();
    assert_eq!(
        view.repo_digests,
        vec![format!("{}/multi/arch@{index_digest}", reg.authority())]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_pulls_fetch_each_blob_once_and_shared_layers_are_reused() {
    let reg = Registry::start(Mode::Plain);
    let e = env();
    let base = LayerBuilder::new().busybox().finish();
    let a = images::image(
        &[
            (base.clone(), Comp::Gzip),
            (LayerBuilder::new().file("a", b"a").finish(), Comp::Gzip),
        ],
        "amd64",
        "",
    );
    let b = images::image(
        &[
            (base, Comp::Gzip),
            (LayerBuilder::new().file("b", b"b").finish(), Comp::Gzip),
        ],
        "amd64",
        "",
    );
    images::push(&reg, "app/a:1", &a).await;
    images::push(&reg, "app/b:1", &b).await;
    let m = support::manager(&e.root, &e.certs, None);
    let name = format!("{}/app/a:1", reg.authority());
    let (r1, r2, r3) = tokio::join!(
        m.pull(&name, None),
        m.pull(&name, None),
        m.pull(&name, None)
    );
    assert_eq!(r1.unwrap().id, r2.unwrap().id);
    r3.unwrap();
    let blob_bytes: u64 = a
        .layers
        .iter()
        .chain([&a.config])
        .map(|l| l.data.len() as u64)
        .sum();
    assert_eq!(
        m.bytes_fetched(),
        blob_bytes,
        "three concurrent pulls fetch every blob once"
    );
    let before = m.bytes_fetched();
    m.pull(&format!("{}/app/b:1", reg.authority()), None)
        .await
        .unwrap();
    let new_bytes = (b.layers[1].data.len() + b.config.data.len()) as u64;
    assert_eq!(
        m.bytes_fetched() - before,
        new_bytes,
        "only the new layer and config are fetched"
    );
    assert_eq!(
        m.snapshotter().list().unwrap().len(),
        3,
        "the shared base layer is unpacked once"
    );

    // GC after removing a: a's top layer goes, the shared base stays for b.
    assert!(m.remove(&name).await.unwrap());
    assert!(!m.remove(&name).await.unwrap(), "removal is idempotent");
    assert_eq!(m.snapshotter().list().unwrap().len(), 2);
    let blobs = m.content().list().unwrap();
    assert!(!blobs.iter().any(|d| d.to_string() == a.layers[1].digest));
    assert!(blobs.iter().any(|d| d.to_string() == a.layers[0].digest));
    assert!(matches!(m.resolve(&name), Err(Error::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_unknown_image_down_registry_and_corrupt_blob() {
    let reg = Registry::start(Mode::Plain);
    let e = env();
    let img = images::image(
        &[(LayerBuilder::new().busybox().finish(), Comp::Gzip)],
        "amd64",
        "",
    );
    images::push(&reg, "bad/blob:1", &img).await;
    let m = support::manager(&e.root, &e.certs, None);

    let err = m
        .pull(&format!("{}/no/such:1", reg.authority()), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");

    // Corrupt the layer in the registry's storage (same size, different bytes).
    let data = reg.blob_data(img.layers[0].digest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let err = m
        .pull(&format!("{}/bad/blob:1", reg.authority()), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(
        m.content()
            .size(&cri_server::image::Digest::parse(&img.layers[0].digest).unwrap())
            .is_none(),
        "no corrupt blob stored"
    );
    assert_eq!(
        std::fs::read_dir(e.root.join("content/ingest"))
            .unwrap()
            .count(),
        0
    );
    assert!(m.list().is_empty());

    let port = reg.port;
    drop(reg);
    let err = m
        .pull(&format!("127.0.0.1:{port}/bad/blob:1"), None)
        .await
        .unwrap_err();
    match &err {
        Error::Unavailable { url, .. } => {
            assert!(url.contains(&format!("127.0.0.1:{port}")), "{err}")
        }
        other => panic!("expected Unavailable, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_from_cri_and_docker_config() {
    let reg = Registry::start(Mode::Basic {
        user: "kina".into(),
        password: "s3cret".into(),
    });
    let e = env();
    let img = images::image(
        &[(LayerBuilder::new().busybox().finish(), Comp::Gzip)],
        "amd64",
        "",
    );
    images::push(&reg, "private/img:1", &img).await;
    let name = format!("{}/private/img:1", reg.authority());

    let m = support::manager(&e.root, &e.certs, None);
    let err = m.pull(&name, None).await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err}");
    let wrong = cri_server::image::AuthConfig {
        username: "kina".into(),
        password: "nope".into(),
        ..Default::default()
    };
    assert!(matches!(
        m.pull(&name, Some(&wrong)).await.unwrap_err(),
        Error::Unauthenticated { .. }
    ));
    let good = cri_server::image::AuthConfig {
        username: "kina".into(),
        password: "s3cret".into(),
        ..Default::default()
    };
    m.pull(&name, Some(&good)).await.unwrap();

    let cfg = e.certs.join("config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"a2luYTpzM2NyZXQ="}}}}}}"#,
            reg.authority()
        ),
    )
    .unwrap();
    let m2 = support::manager(&e.root.join("2"), &e.certs, Some(cfg));
    m2.pull(&name, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_registry_needs_the_ca_from_hosts_toml() {
    let reg = Registry::start(Mode::Tls);
    let e = env();
    let img = images::image(
        &[(LayerBuilder::new().busybox().finish(), Comp::Gzip)],
        "amd64",
        "",
    );
    images::push(&reg, "secure/img:1", &img).await;

    let m = support::manager(&e.root, &e.certs, None);
    reg.write_hosts_toml(&e.certs, "secure.example", "");
    let err = m
        .pull("secure.example/secure/img:1", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { .. })
            && err.to_string().to_lowercase().contains("certificate"),
        "an untrusted certificate must fail the pull: {err}"
    );
    reg.write_hosts_toml(
        &e.certs,
        "secure.example",
        &format!("  ca = \"{}\"\n", reg.ca().display()),
    );
    let m = support::manager(&e.root, &e.certs, None);
    m.pull("secure.example/secure/img:1", None).await.unwrap();

    // skip_verify instead of a CA works too.
    reg.write_hosts_toml(&e.certs, "insecure.example", "  skip_verify = true\n");
    let m = support::manager(&e.root.join("2"), &e.certs, None);
    m.pull("insecure.example/secure/img:1", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_during_pulls_and_container_rootfs_keep_content_alive() {
    let reg = Registry::start(Mode::Plain);
    let e = env();
    let img = images::image(
        &[
            (LayerBuilder::new().busybox().finish(), Comp::Gzip),
            (
                LayerBuilder::new()
                    .file("data", &vec![7u8; 4 << 20])
                    .finish(),
                Comp::Gzip,
            ),
        ],
        "amd64",
        "",
    );
    images::push(&reg, "gc/img:1", &img).await;
    let m = support::manager(&e.root, &e.certs, None);
    let name = format!("{}/gc/img:1", reg.authority());

    let pull = {
        let (m, name) = (m.clone(), name.clone());
        tokio::spawn(async move { m.pull(&name, None).await })
    };
    while !pull.is_finished() {
        m.gc().await.unwrap();
        tokio::task::yield_now().await;
    }
    let rec = pull.await.unwrap().unwrap();
    for l in &rec.layers {
        assert!(
            m.content().size(&l.digest).is_some(),
            "GC never takes a running pull's blobs"
        );
    }
    assert_eq!(
        m.gc().await.unwrap(),
        Default::default(),
        "nothing unreferenced"
    );

    // A container's rootfs keeps its chain alive after the image is removed.
    let chain = rec.chain_ids();
    let rootfs = m.prepare_rootfs(&name, "ctr-1").await.unwrap();
    assert_eq!(rootfs.lowerdirs.len(), 2);
    assert_eq!(
        rootfs.lowerdirs[0],
        m.snapshotter().path(&chain[1]),
        "top layer first"
    );
    assert!(m.remove(&rec.id.to_string()).await.unwrap());
    assert!(chain.iter().all(|c| m.snapshotter().exists(c)));
    m.remove_rootfs("ctr-1").unwrap();
    let report = m.gc().await.unwrap();
    assert_eq!(report.snapshots, 2);
    assert!(m.snapshotter().list().unwrap().is_empty());
    assert!(
        m.content().list().unwrap().is_empty(),
        "all blobs collected"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_docker_schema2_manifests() {
    let reg = Registry::start(Mode::Plain);
    let e = env();
    let img = images::to_docker(&images::image(
        &[(
            LayerBuilder::new().busybox().file("docker", b"v2").finish(),
            Comp::Gzip,
        )],
        "amd64",
        "",
    ));
    images::push(&reg, "docker/v2:1", &img).await;
    let m = support::manager(&e.root, &e.certs, None);
    let name = format!("{}/docker/v2:1", reg.authority());
    let rec = m.pull(&name, None).await.unwrap();
    assert_eq!(rec.manifest.to_string(), img.manifest.digest);
    assert_eq!(
        rec.manifest_media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let top = m.snapshotter().path(rec.chain_ids().last().unwrap());
    assert_eq!(std::fs::read(top.join("docker")).unwrap(), b"v2");
    // And by digest reference.
    let by_digest = format!("{}/docker/v2@{}", reg.authority(), img.manifest.digest);
    assert_eq!(m.pull(&by_digest, None).await.unwrap().id, rec.id);
}

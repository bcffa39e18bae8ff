//! Import of OCI-layout and `docker save` tars and export to an OCI-layout tar.

mod support;

use cri_server::image::Error;
use support::images::{self, Comp, LayerBuilder, TestImage};
use support::registry::{Mode, Registry};

fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn blob_files(img: &TestImage) -> Vec<(String, Vec<u8>)> {
    img.layers
        .iter()
        .chain([&img.config, &img.manifest])
        .map(|b| (format!("blobs/sha256/{}", &b.digest[7..]), b.data.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn export_then_import_round_trips_and_skopeo_reads_it() {
    let reg = Registry::start(Mode::Plain);
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs.d");
    reg.write_hosts_toml(&certs, "registry.k8s.io", "");
    let img = images::whiteout_image(Comp::Zstd);
    images::push(&reg, "pause:3.10", &img).await;
    let a = support::manager(&tmp.path().join("a"), &certs, None);
    let rec = a.pull("registry.k8s.io/pause:3.10", None).await.unwrap();

    let archive = tmp.path().join("pause.tar");
    a.export_archive("registry.k8s.io/pause:3.10", &archive)
        .await
        .unwrap();
    let out = std::process::Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", archive.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo reads our OCI layout: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"], img.manifest.digest);

    let b = support::manager(&tmp.path().join("b"), &certs, None);
    let imported = b.import_archive(&archive).await.unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].0, vec!["registry.k8s.io/pause:3.10".to_owned()]);
    assert_eq!(imported[0].1, rec);
    let view = b.resolve("registry.k8s.io/pause:3.10").unwrap();
    assert_eq!(
        view.repo_digests,
        vec![format!("registry.k8s.io/pause@{}", img.manifest.digest)]
    );
    let top = b.snapshotter().path(rec.chain_ids().last().unwrap());
    assert_eq!(std::fs::read(top.join("etc/opaque/new")).unwrap(), b"new");
}

#[tokio::test(flavor = "multi_thread")]
async fn imports_docker_save_tar_with_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = LayerBuilder::new()
        .busybox()
        .file("hello", b"docker")
        .finish();
    let img = images::image(&[(layer.clone(), Comp::None)], "amd64", "nobody");
    let files = vec![
        (
            format!("{}.json", &img.config.digest[7..]),
            img.config.data.clone(),
        ),
        ("abc123/layer.tar".to_owned(), layer),
        (
            "manifest.json".to_owned(),
            serde_json::to_vec(&serde_json::json!([{
                "Config": format!("{}.json", &img.config.digest[7..]),
                "RepoTags": ["busybox:latest", "kina.local/tools/bb:v1"],
                "Layers": ["abc123/layer.tar"],
            }]))
            .unwrap(),
        ),
    ];
    let archive = tmp.path().join("save.tar");
    std::fs::write(&archive, tar_of(&files)).unwrap();
    let m = support::manager(&tmp.path().join("root"), &tmp.path().join("certs.d"), None);
    let imported = m.import_archive(&archive).await.unwrap();
    assert_eq!(imported[0].1.id.to_string(), img.config.digest);
    let view = m.resolve("busybox").unwrap();
    let mut tags = view.repo_tags.clone();
    tags.sort();
    assert_eq!(
        tags,
        vec![
            "docker.io/library/busybox:latest".to_owned(),
            "kina.local/tools/bb:v1".to_owned()
        ]
    );
    assert_eq!(view.record.user, "nobody");
    let top = m
        .snapshotter()
        .path(view.record.chain_ids().last().unwrap());
    assert_eq!(std::fs::read(top.join("hello")).unwrap(), b"docker");
}

#[test]
fn imports_oci_layout_index_for_host_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let amd = images::image(
        &[(
            LayerBuilder::new().file("arch", b"amd64").finish(),
            Comp::Gzip,
        )],
        "amd64",
        "",
    );
    let arm = images::image(
        &[(
            LayerBuilder::new().file("arch", b"arm64").finish(),
            Comp::Gzip,
        )],
        "arm64",
        "",
    );
    let inner = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": arm.manifest.media_type, "digest": arm.manifest.digest, "size": arm.manifest.data.len(), "platform": {"architecture": "arm64", "os": "linux"}},
            {"mediaType": amd.manifest.media_type, "digest": amd.manifest.digest, "size": amd.manifest.data.len(), "platform": {"architecture": "amd64", "os": "linux"}},
        ]
    }))
    .unwrap();
    let inner_digest = images::sha(&inner);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": inner_digest, "size": inner.len(),
                       "annotations": {"io.containerd.image.name": "kina.local/multi:v1", "org.opencontainers.image.ref.name": "v1"}}]
    }))
    .unwrap();
    let mut files = blob_files(&amd);
    files.extend(blob_files(&arm));
    files.push((format!("blobs/sha256/{}", &inner_digest[7..]), inner));
    files.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    files.push(("index.json".into(), index));
    let archive = tmp.path().join("oci.tar");
    std::fs::write(&archive, tar_of(&files)).unwrap();
    let m = support::manager(&tmp.path().join("root"), &tmp.path().join("certs.d"), None);
    let imported = m.import_archive_blocking(&archive).unwrap();
    assert_eq!(imported[0].1.id.to_string(), amd.config.digest);
    let view = m.resolve("kina.local/multi:v1").unwrap();
    assert_eq!(
        view.repo_digests,
        vec![format!("kina.local/multi@{inner_digest}")]
    );
}

#[test]
fn bad_archives_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let m = support::manager(&tmp.path().join("root"), &tmp.path().join("certs.d"), None);
    let archive = tmp.path().join("empty.tar");
    std::fs::write(&archive, tar_of(&[("hello.txt".into(), b"hi".to_vec())])).unwrap();
    let err = m.import_archive_blocking(&archive).unwrap_err();
    assert!(
        matches!(err, Error::Archive { .. }) && err.to_string().contains("index.json"),
        "{err}"
    );

    let files = vec![(
        "manifest.json".to_owned(),
        br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l/layer.tar"]}]"#.to_vec(),
    )];
    std::fs::write(&archive, tar_of(&files)).unwrap();
    let err = m.import_archive_blocking(&archive).unwrap_err();
    assert!(err.to_string().contains("c.json"), "{err}");

    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": images::sha(b"m"), "size": 1,
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    let files = vec![("index.json".to_owned(), serde_json::to_vec(&index).unwrap())];
    std::fs::write(&archive, tar_of(&files)).unwrap();
    let err = m.import_archive_blocking(&archive).unwrap_err();
    assert!(err.to_string().contains("no image name"), "{err}");

    std::fs::write(
        &archive,
        b"not a tar at all, just some bytes that are not 512 long",
    )
    .unwrap();
    assert!(m.import_archive_blocking(&archive).is_err());
    assert!(matches!(
        m.import_archive_blocking(&tmp.path().join("missing.tar")),
        Err(Error::Io { .. })
    ));
    assert!(m.list().is_empty());
}

#[test]
fn imports_oci_layout_directory_and_rejects_a_tampered_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let img = images::image(
        &[(
            LayerBuilder::new().file("hello", b"layout").finish(),
            Comp::Gzip,
        )],
        "amd64",
        "",
    );
    let layout = tmp.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    for (name, data) in blob_files(&img) {
        std::fs::write(layout.join(name), data).unwrap();
    }
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": img.manifest.media_type, "digest": img.manifest.digest,
                       "size": img.manifest.data.len(),
                       "annotations": {"io.containerd.image.name": "kina.local/layout:v1"}}]
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();

    let m = support::manager(&tmp.path().join("root"), &tmp.path().join("certs.d"), None);
    let imported = m.import_archive_blocking(&layout).unwrap();
    assert_eq!(imported[0].0, vec!["kina.local/layout:v1".to_owned()]);
    assert_eq!(imported[0].1.id.to_string(), img.config.digest);
    m.resolve("kina.local/layout:v1").unwrap();
    // Importing again is a no-op that gives the same image.
    let again = m.import_archive_blocking(&layout).unwrap();
    assert_eq!(again[0].1.id, imported[0].1.id);

    // A blob whose content does not match its name is refused by a fresh store.
    let layer = &img.layers[0].digest[7..];
    std::fs::write(layout.join("blobs/sha256").join(layer), b"tampered").unwrap();
    let fresh = support::manager(&tmp.path().join("fresh"), &tmp.path().join("certs.d"), None);
    let e = fresh
        .import_archive_blocking(&layout)
        .unwrap_err()
        .to_string();
    assert!(e.contains(layer) || e.contains("digest"), "{e}");

    // Something that is not a layout is a clear error.
    let e = fresh
        .import_archive_blocking(tmp.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an OCI image layout"), "{e}");
}

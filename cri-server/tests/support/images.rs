//! Builds test images locally (layers from busybox-static and hand-made entries, gzip / zstd /
//! plain, single images and multi-arch indexes) and pushes them with oci-client.

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use sha2::{Digest as _, Sha256};
use std::io::Write;

use super::registry::{Mode, Registry};

pub fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Assembles one layer tar.
pub struct LayerBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h
}

impl LayerBuilder {
    pub fn new() -> Self {
        Self {
            b: tar::Builder::new(Vec::new()),
        }
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = header(tar::EntryType::Directory, mode, 0, 0, 0);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn file_owned(mut self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = header(tar::EntryType::Regular, mode, uid, gid, data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    pub fn file(self, path: &str, data: &[u8]) -> Self {
        self.file_owned(path, data, 0o644, 0, 0)
    }

    /// A file with extended attributes (PAX `SCHILY.xattr.*` records).
    pub fn file_xattr(mut self, path: &str, data: &[u8], xattrs: &[(&str, &[u8])]) -> Self {
        let mut pax = Vec::new();
        for (k, v) in xattrs {
            let body_len = format!(" SCHILY.xattr.{k}=").len() + v.len() + 1;
            let mut len = body_len + 1;
            while format!("{len}").len() + body_len != len {
                len += 1;
            }
            pax.extend_from_slice(format!("{len} SCHILY.xattr.{k}=").as_bytes());
            pax.extend_from_slice(v);
            pax.push(b'\n');
        }
        let mut h = header(tar::EntryType::XHeader, 0o644, 0, 0, pax.len() as u64);
        self.b.append_data(&mut h, "PaxHeader", &pax[..]).unwrap();
        self.file(path, data)
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(tar::EntryType::Link, 0o644, 0, 0, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn chardev(mut self, path: &str, major: u32, minor: u32) -> Self {
        let mut h = header(tar::EntryType::Char, 0o666, 0, 0, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn fifo(mut self, path: &str) -> Self {
        let mut h = header(tar::EntryType::Fifo, 0o644, 0, 0, 0);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// An entry whose raw name bytes are written as-is (for hostile paths the tar crate refuses).
    pub fn raw(
        mut self,
        kind: tar::EntryType,
        name: &str,
        link: Option<&str>,
        data: &[u8],
    ) -> Self {
        let mut h = header(kind, 0o644, 0, 0, data.len() as u64);
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                old.linkname = [0; 100];
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    /// /bin/busybox from busybox-static plus `sh`, `ls`, `cat` symlinks.
    pub fn busybox(self) -> Self {
        let bb = std::fs::read("/bin/busybox").expect("busybox-static installed");
        let mut s = self
            .dir("bin", 0o755)
            .file_owned("bin/busybox", &bb, 0o755, 0, 0);
        for tool in ["sh", "ls", "cat", "true"] {
            s = s.symlink(&format!("bin/{tool}"), "busybox");
        }
        s
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

/// A blob ready to push.
#[derive(Debug, Clone)]
pub struct Blob {
    pub data: Vec<u8>,
    pub digest: String,
    pub media_type: String,
}

/// A single-platform image.
#[derive(Debug, Clone)]
pub struct TestImage {
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub manifest: Blob,
    pub diff_ids: Vec<String>,
}

pub fn compress(tar: &[u8], comp: Comp) -> Blob {
    let (data, media_type) = match comp {
        Comp::None => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            (
                e.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Comp::Zstd => (
            zstd::encode_all(tar, 3).unwrap(),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    };
    Blob {
        digest: sha(&data),
        data,
        media_type: media_type.into(),
    }
}

/// Builds an OCI image from uncompressed layer tars.
pub fn image(layers: &[(Vec<u8>, Comp)], arch: &str, user: &str) -> TestImage {
    let diff_ids: Vec<String> = layers.iter().map(|(t, _)| sha(t)).collect();
    let blobs: Vec<Blob> = layers.iter().map(|(t, c)| compress(t, *c)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"User": user, "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config = Blob {
        digest: sha(&config),
        data: config,
        media_type: "application/vnd.oci.image.config.v1+json".into(),
    };
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.data.len()},
        "layers": blobs.iter().map(|b| serde_json::json!({"mediaType": b.media_type, "digest": b.digest, "size": b.data.len()})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let manifest = Blob {
        digest: sha(&manifest),
        data: manifest,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
    };
    TestImage {
        config,
        layers: blobs,
        manifest,
        diff_ids,
    }
}

/// A busybox image with two layers exercising whiteouts, opaque dirs, links and devices.
pub fn whiteout_image(comp: Comp) -> TestImage {
    let l1 = LayerBuilder::new()
        .busybox()
        .dir("etc", 0o755)
        .dir("etc/opaque", 0o755)
        .file("etc/opaque/old1", b"old1")
        .file("etc/opaque/old2", b"old2")
        .file("etc/gone", b"deleted in layer 2")
        .file("etc/kept", b"kept")
        .finish();
    let l2 = LayerBuilder::new()
        .dir("etc", 0o755)
        .file(".wh.placeholder", b"")
        .file("etc/.wh.gone", b"")
        .dir("etc/opaque", 0o750)
        .file("etc/opaque/.wh..wh..opq", b"")
        .file("etc/opaque/new", b"new")
        .file_owned("usr-suid", b"#!/bin/sh\n", 0o4755, 1000, 1000)
        .file_xattr("etc/xattr", b"x", &[("user.kina", b"yes")])
        .hardlink("etc/hard", "etc/xattr")
        .symlink("etc/abs-link", "/etc/kept")
        .chardev("dev-null", 1, 3)
        .fifo("fifo")
        .finish();
    image(&[(l1, comp), (l2, comp)], "amd64", "1000:1000")
}

/// oci-client for pushing to `reg`.
pub fn client(reg: &Registry) -> Client {
    let mut cfg = ClientConfig {
        protocol: if reg.mode == Mode::Tls {
            ClientProtocol::Https
        } else {
            ClientProtocol::Http
        },
        ..Default::default()
    };
    if reg.mode == Mode::Tls {
        cfg.extra_root_certificates = vec![Certificate {
            encoding: CertificateEncoding::Pem,
            data: std::fs::read(reg.ca()).unwrap(),
        }];
    }
    Client::new(cfg)
}

fn auth(reg: &Registry) -> RegistryAuth {
    match &reg.mode {
        Mode::Basic { user, password } => RegistryAuth::Basic(user.clone(), password.clone()),
        _ => RegistryAuth::Anonymous,
    }
}

async fn push_blobs(c: &Client, r: &Reference, img: &TestImage) {
    for b in img.layers.iter().chain([&img.config]) {
        c.push_blob(r, b.data.clone(), &b.digest).await.unwrap();
    }
}

/// Pushes `img` as `<reg>/<repo_tag>`.
pub async fn push(reg: &Registry, repo_tag: &str, img: &TestImage) {
    let r: Reference = format!("{}/{repo_tag}", reg.authority()).parse().unwrap();
    let c = client(reg);
    c.auth(&r, &auth(reg), RegistryOperation::Push)
        .await
        .unwrap();
    push_blobs(&c, &r, img).await;
    let ct = tonic::codegen::http::HeaderValue::from_str(&img.manifest.media_type).unwrap();
    c.push_manifest_raw(&r, img.manifest.data.clone(), ct)
        .await
        .unwrap();
}

/// Pushes a multi-arch index of `images` (arch, image) as `<reg>/<repo_tag>`; returns its digest.
pub async fn push_index(reg: &Registry, repo_tag: &str, images: &[(&str, &TestImage)]) -> String {
    let r: Reference = format!("{}/{repo_tag}", reg.authority()).parse().unwrap();
    let c = client(reg);
    c.auth(&r, &auth(reg), RegistryOperation::Push)
        .await
        .unwrap();
    let mut manifests = Vec::new();
    for (arch, img) in images {
        push_blobs(&c, &r, img).await;
        let by_digest = r.clone_with_digest(img.manifest.digest.clone());
        let ct = tonic::codegen::http::HeaderValue::from_str(&img.manifest.media_type).unwrap();
        c.push_manifest_raw(&by_digest, img.manifest.data.clone(), ct)
            .await
            .unwrap();
        manifests.push(serde_json::json!({
            "mediaType": img.manifest.media_type, "digest": img.manifest.digest, "size": img.manifest.data.len(),
            "platform": {"architecture": arch, "os": "linux"},
        }));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests,
    }))
    .unwrap();
    let ct =
        tonic::codegen::http::HeaderValue::from_static("application/vnd.oci.image.index.v1+json");
    c.push_manifest_raw(&r, index.clone(), ct).await.unwrap();
    sha(&index)
}

/// The same image as a docker schema2 manifest (docker media types).
pub fn to_docker(img: &TestImage) -> TestImage {
    let mut out = img.clone();
    for l in &mut out.layers {
        l.media_type = "application/vnd.docker.image.rootfs.diff.tar.gzip".into();
    }
    out.config.media_type = "application/vnd.docker.container.image.v1+json".into();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": out.config.media_type, "digest": out.config.digest, "size": out.config.data.len()},
        "layers": out.layers.iter().map(|b| serde_json::json!({"mediaType": b.media_type, "digest": b.digest, "size": b.data.len()})).collect::<Vec<_>>(),
    }))
    .unwrap();
    out.manifest = Blob {
        digest: sha(&manifest),
        data: manifest,
        media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
    };
    out
}

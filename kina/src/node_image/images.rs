//! Images preloaded into a node so `kubeadm init` needs no registry: the control-plane
//! components and kube-proxy built from the Kubernetes binaries, the pod sandbox ("pause")
//! image from kina's pause binary and CoreDNS from a coredns binary (tagged with its real
//! version; the cluster's kubeadm config sets `dns.imageTag` to it). Each is written as an OCI archive for `/kina/images/`, which
//! `kina-import-images.service` imports into cri-server at the node's first boot.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::cache::{BaseLayer, Cache};
use super::error::{NodeImageError, Result};
use super::kube_binaries::KubeBinaries;
use super::layer::{LayerWriter, TREE_MTIME};
use super::oci::{self, ImageMeta, ImageRef, LayerBlob};
use super::tree::{Content, Tree};

/// The registry kubeadm names its images under.
pub const REGISTRY: &str = "registry.k8s.io";
/// The sandbox image tag cri-server's config names (`sandbox_image`).
pub const PAUSE_TAG: &str = "3.10.2";
/// Where kina's own add-on images are named (`manifests/*.yaml` use these names; they are
/// preloaded, never pulled).
pub const ADDON_REGISTRY: &str = "localhost/kina";
/// The add-on images' tag: `v` + the workspace version (the manifests' tag; kina-addons' test
/// `manifests.rs` checks they agree).
pub const ADDON_TAG: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// One image to build.
#[derive(Debug, Clone)]
pub struct ComponentImage {
    /// File name in /kina/images, e.g. `kube-apiserver.tar`.
    pub file: String,
    /// Full reference, e.g. `registry.k8s.io/kube-apiserver:v1.36.2`.
    pub reference: ImageRef,
    /// The binary and where it goes.
    pub binary: (PathBuf, String),
    /// Whether the Debian base is its first layer (kube-proxy runs iptables and nft).
    pub on_base: bool,
}

/// Optional images besides Kubernetes' own.
#[derive(Debug, Clone, Default)]
pub struct Extras<'a> {
    /// kina's pause binary.
    pub pause: Option<&'a Path>,
    /// A coredns binary and its version (`v1.13.1`).
    pub coredns: Option<(&'a Path, String)>,
    /// An etcd binary and its version (`3.5.16`).
    pub etcd: Option<(&'a Path, String)>,
    /// The kina-net binary (default CNI daemon, `manifests/kindnet.yaml`).
    pub kina_net: Option<&'a Path>,
    /// The kina-local-path binary (default storage provisioner, `manifests/storage.yaml`).
    pub local_path: Option<&'a Path>,
}

/// `coredns -version` → `v1.13.1`.
pub fn coredns_version(coredns: &Path) -> Result<String> {
    let out = std::process::Command::new(coredns)
        .arg("-version")
        .output()
        .map_err(NodeImageError::io("run", coredns))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("CoreDNS-"))
        .map(|v| format!("v{v}"));
    match version {
        Some(v) if out.status.success() && super::kube_binaries::check_version(&v).is_ok() => Ok(v),
        _ => Err(NodeImageError::input(
            format!("--coredns {}", coredns.display()),
            format!(
                "`coredns -version` printed no CoreDNS-X.Y.Z line: {:?}",
                text.trim()
            ),
        )),
    }
}

/// The images for `kube` and the `extras` given.
pub fn component_images(kube: &KubeBinaries, extras: &Extras<'_>) -> Vec<ComponentImage> {
    let mut images: Vec<ComponentImage> = [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
    ]
    .iter()
    .map(|name| ComponentImage {
        file: format!("{name}.tar"),
        reference: ImageRef {
            name: format!("{REGISTRY}/{name}"),
            tag: kube.version.clone(),
        },
        binary: (kube.path(name), format!("/usr/local/bin/{name}")),
        on_base: *name == "kube-proxy",
    })
    .collect();
    if let Some(pause) = extras.pause {
        images.push(ComponentImage {
            file: "pause.tar".into(),
            reference: ImageRef {
                name: format!("{REGISTRY}/pause"),
                tag: PAUSE_TAG.into(),
            },
            binary: (pause.to_owned(), "/pause".into()),
            on_base: false,
        });
    }
    if let Some((coredns, version)) = &extras.coredns {
        images.push(ComponentImage {
            file: "coredns.tar".into(),
            reference: ImageRef {
                name: format!("{REGISTRY}/coredns/coredns"),
                tag: version.clone(),
            },
            binary: (coredns.to_path_buf(), "/coredns".into()),
            on_base: false,
        });
    }
    if let Some((etcd, version)) = &extras.etcd {
        images.push(ComponentImage {
            file: "etcd.tar".into(),
            reference: ImageRef {
                name: format!("{REGISTRY}/etcd"),
                tag: format!("{version}-0"),
            },
            binary: (etcd.to_path_buf(), "/usr/local/bin/etcd".into()),
            // Debian's etcd links libc.
            on_base: true,
        });
    }
    // kina's add-ons link glibc, and kina-net runs `nft`: both sit on the Debian base layer,
    // which the node's store holds once for all images using it.
    for (bin, name) in [
        (extras.kina_net, "kina-net"),
        (extras.local_path, "kina-local-path"),
    ] {
        if let Some(bin) = bin {
            images.push(ComponentImage {
                file: format!("{name}.tar"),
                reference: ImageRef {
                    name: format!("{ADDON_REGISTRY}/{name}"),
                    tag: ADDON_TAG.into(),
                },
                binary: (bin.to_owned(), format!("/usr/local/bin/{name}")),
                on_base: true,
            });
        }
    }
    images
}

/// Write `image` as an OCI archive at `archive`; its binary layer is cached by content.
pub fn write_component(
    cache: &Cache,
    base: &BaseLayer,
    arch: &str,
    image: &ComponentImage,
    archive: &Path,
) -> Result<()> {
    let mut tree = Tree::new();
    let (src, dest) = &image.binary;
    tree.insert(dest, 0o755, Content::HostFile(src.clone()));
    let key = tree
        .content_key()
        .map_err(NodeImageError::io("hash", src.clone()))?;
    let (path, info) = cache.layer(&key, |blob| {
        let mut w = LayerWriter::create(blob)?;
        w.append_tree(&tree)?;
        w.finish()
    })?;
    let mut layers = Vec::new();
    if image.on_base {
        layers.push(LayerBlob {
            path: base.blob.clone(),
            info: base.layer.clone(),
            created_by: format!("debootstrap {}", base.suite),
        });
    }
    layers.push(LayerBlob {
        path,
        info,
        created_by: format!("kina build node-image: {dest}"),
    });
    let meta = ImageMeta {
        reference: image.reference.clone(),
        arch: arch.to_owned(),
        labels: HashMap::from([(
            "io.kina.built-by".to_owned(),
            "kina build node-image".to_owned(),
        )]),
        // Fixed, so unchanged inputs give the same archive and the node layer stays cached.
        created: super::rfc3339(TREE_MTIME),
        entrypoint: vec![dest.clone()],
        env: Vec::new(),
        stop_signal: None,
    };
    let layout = cache.scratch("component")?;
    oci::write_layout(layout.path(), &meta, &layers)?;
    oci::write_archive(layout.path(), archive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coredns_version_is_read_from_the_binary() {
        let dir = std::env::temp_dir().join(format!("kina-coredns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("coredns");
        std::fs::write(&bin, "#!/bin/sh\necho CoreDNS-1.13.1\necho linux/amd64\n").unwrap();
        std::fs::set_permissions(
            &bin,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
        )
        .unwrap();
        assert_eq!(coredns_version(&bin).unwrap(), "v1.13.1");
        std::fs::write(&bin, "#!/bin/sh\necho hello\n").unwrap();
        let e = coredns_version(&bin).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(e.contains("--coredns") && e.contains("hello"), "{e}");
    }

    #[test]
    fn kubeadm_names_and_tags() {
        let kube = KubeBinaries {
            dir: "/k".into(),
            version: "v1.36.2".into(),
        };
        let extras = Extras {
            pause: Some(Path::new("/t/kina-pause")),
            coredns: Some((Path::new("/t/coredns"), "v1.13.1".into())),
            etcd: Some((Path::new("/t/etcd"), "3.5.16".into())),
            kina_net: Some(Path::new("/t/kina-net")),
            local_path: Some(Path::new("/t/kina-local-path")),
        };
        let images = component_images(&kube, &extras);
        let refs: Vec<String> = images.iter().map(|i| i.reference.to_string()).collect();
        assert_eq!(
            refs,
            [
                "registry.k8s.io/kube-apiserver:v1.36.2",
                "registry.k8s.io/kube-controller-manager:v1.36.2",
                "registry.k8s.io/kube-scheduler:v1.36.2",
                "registry.k8s.io/kube-proxy:v1.36.2",
                "registry.k8s.io/pause:3.10.2",
                "registry.k8s.io/coredns/coredns:v1.13.1",
                "registry.k8s.io/etcd:3.5.16-0",
                &format!("localhost/kina/kina-net:{ADDON_TAG}"),
                &format!("localhost/kina/kina-local-path:{ADDON_TAG}"),
            ]
        );
        let proxy = &images[3];
        assert!(proxy.on_base && !images[0].on_base);
        assert_eq!(
            proxy.binary,
            (
                PathBuf::from("/k/kube-proxy"),
                "/usr/local/bin/kube-proxy".into()
            )
        );
        assert_eq!(images[4].binary.1, "/pause");
        assert_eq!(images[5].binary.1, "/coredns");
        assert!(images[6].on_base);
        assert!(images[7].on_base && images[8].on_base);
        assert_eq!(images[7].binary.1, "/usr/local/bin/kina-net");
        assert_eq!(images[8].binary.1, "/usr/local/bin/kina-local-path");
        assert_eq!(component_images(&kube, &Extras::default()).len(), 4);
    }
}

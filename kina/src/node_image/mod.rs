//! `kina build node-image`: a Debian root filesystem (debootstrap, cached) with systemd,
//! cri-server as the node's CRI runtime, crictl, the CNI plugins and the Kubernetes binaries,
//! written as an OCI image that `--image` accepts. The recipe is data in `node-image/`.
//!
//! The build is a sequence of steps: resolve the Kubernetes binaries, make sure the cached
//! Debian base layer exists, write kina's layer on top, write the OCI layout (or archive).

pub mod cache;
pub mod debootstrap;
pub mod elf;
pub mod error;
pub mod etcd;
pub mod images;
pub mod kube_binaries;
pub mod layer;
pub mod oci;
pub mod recipe;
pub mod rootfs;
pub mod tree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use error::{NodeImageError, Result};
pub use kube_binaries::KubeSource;

use crate::status::Status;
use cache::Cache;
use layer::LayerWriter;
use oci::{ImageMeta, ImageRef, LayerBlob};
use recipe::Recipe;

/// Cached layers no build used for this long are removed after a build.
const CACHE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// Everything `kina build node-image` needs.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `NAME:TAG` of the image.
    pub image: String,
    /// Where the Kubernetes binaries come from.
    pub kube: KubeSource,
    /// The cri-server binary to install.
    pub cri_server: PathBuf,
    /// cri-monitor, the shim cri-server runs every container through (required; `None`: the
    /// caller found none to default to).
    pub monitor: Option<PathBuf>,
    /// kina-runtime, the node's default OCI runtime handler (required, like `monitor`).
    pub runtime: Option<PathBuf>,
    /// The crictl binary to install, if any.
    pub crictl: Option<PathBuf>,
    /// An OCI layout directory, or a `.tar` file for an oci-archive.
    pub output: PathBuf,
    /// Debian suite instead of the recipe's.
    pub suite: Option<String>,
    /// Build cache (debootstrap base, downloads).
    pub cache_dir: PathBuf,
    /// Debian mirror; default: the one apt uses on this machine.
    pub mirror: Option<String>,
    /// kina's pause binary, preloaded as the sandbox image (`registry.k8s.io/pause`).
    pub pause: Option<PathBuf>,
    /// A coredns binary, preloaded as `registry.k8s.io/coredns/coredns:<its version>`.
    pub coredns: Option<PathBuf>,
    /// Where etcd comes from, preloaded as `registry.k8s.io/etcd:<its version>-0`.
    pub etcd: etcd::EtcdSource,
    /// The kina-net binary, preloaded as `localhost/kina/kina-net:<kina version>`.
    pub kina_net: Option<PathBuf>,
    /// The kina-local-path binary, preloaded as `localhost/kina/kina-local-path:<kina version>`.
    pub local_path: Option<PathBuf>,
}

/// What was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// `NAME:TAG`.
    pub reference: String,
    /// The manifest digest.
    pub digest: String,
    /// Where it was written.
    pub output: PathBuf,
    /// The Kubernetes version inside.
    pub kube_version: String,
    /// Compressed size of config and layers.
    pub size: u64,
}

/// Whether `output` names an archive rather than a layout directory.
pub fn is_archive(output: &Path) -> bool {
    output.extension().is_some_and(|e| e == "tar")
}

/// Build the node image described by `opts`, reporting each step on `status`.
pub fn build(opts: &BuildOptions, status: &Status) -> Result<BuiltImage> {
    let started = Instant::now();
    let reference = ImageRef::parse(&opts.image)?;
    let mut recipe = Recipe::embedded()?;
    if let Some(suite) = &opts.suite {
        recipe.base.suite = suite.clone();
    }
    let arch = kube_binaries::host_arch()?;
    let cri_server = rootfs::check_executable("--cri-server", &opts.cri_server)?;
    let required = |flag: &str, given: &Option<PathBuf>, name: &str| match given {
        Some(p) => rootfs::check_executable(flag, p),
        None => Err(NodeImageError::input(
            flag,
            format!("no {name} binary next to kina; pass {flag} PATH"),
        )),
    };
    let monitor = required("--monitor", &opts.monitor, "cri-monitor")?;
    let runtime = required("--runtime", &opts.runtime, "kina-runtime")?;
    let crictl = opts
        .crictl
        .as_deref()
        .map(|p| rootfs::check_executable("--crictl", p))
        .transpose()?;
    let pause = opts
        .pause
        .as_deref()
        .map(|p| {
            let p = rootfs::check_executable("--pause", p)?;
            elf::check_static("--pause", &p)?;
            Ok::<_, NodeImageError>(p)
        })
        .transpose()?;
    let kina_net = opts
        .kina_net
        .as_deref()
        .map(|p| rootfs::check_executable("--kina-net", p))
        .transpose()?;
    let local_path = opts
        .local_path
        .as_deref()
        .map(|p| rootfs::check_executable("--local-path", p))
        .transpose()?;
    let coredns = match &opts.coredns {
        Some(p) => {
            let p = rootfs::check_executable("--coredns", p)?;
            let version = images::coredns_version(&p)?;
            Some((p, version))
        }
        None => None,
    };
    let cache = Cache::new(&opts.cache_dir);
    let mirror = opts
        .mirror
        .clone()
        .unwrap_or_else(debootstrap::default_mirror);

    let kube = status.step("Preparing Kubernetes binaries ☸", || {
        kube_binaries::resolve(&opts.kube, &cache.downloads())
    })?;
    let base_title = match cache.cached_base(&recipe, arch) {
        Some(_) => format!("Using the cached Debian {} base 📦", recipe.base.suite),
        None => format!(
            "Building the Debian {} base with debootstrap from {mirror} 📦",
            recipe.base.suite
        ),
    };
    let base = status.step(&base_title, || cache.ensure_base(&recipe, arch, &mirror))?;
    let etcd = match &opts.etcd {
        etcd::EtcdSource::None => None,
        source => status.step("Preparing etcd 🗄", || {
            let bin = etcd::resolve(source, &cache, &mirror)?
                .ok_or_else(|| NodeImageError::input("--etcd", "no etcd binary"))?;
            let version = etcd::version(&bin)?;
            Ok::<_, NodeImageError>(Some((bin, version)))
        })?,
    };

    let component_dir = cache.scratch("images")?;
    let preloaded = status.step("Building the control-plane images 🧱", || {
        let extras = images::Extras {
            pause: pause.as_deref(),
            coredns: coredns.as_ref().map(|(p, v)| (p.as_path(), v.clone())),
            etcd: etcd.as_ref().map(|(p, v)| (p.as_path(), v.clone())),
            kina_net: kina_net.as_deref(),
            local_path: local_path.as_deref(),
        };
        images::component_images(&kube, &extras)
            .iter()
            .map(|image| {
                let archive = component_dir.path().join(&image.file);
                images::write_component(&cache, &base, arch, image, &archive)?;
                Ok((image.file.clone(), archive))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let node_layer = status.step(
        "Adding cri-server, Kubernetes and node configuration 🔧",
        || {
            let tree = rootfs::node_tree(&rootfs::NodeInputs {
                recipe: &recipe,
                kube: &kube,
                cri_server: &cri_server,
                monitor: &monitor,
                runtime: &runtime,
                crictl: crictl.as_deref(),
                cni_plugins: &base.cni_plugins,
                images: &preloaded,
            })?;
            let key = tree
                .content_key()
                .map_err(NodeImageError::io("hash node files", cache.root()))?;
            let (path, info) = cache.layer(&key, |blob| {
                let mut w = LayerWriter::create(blob)?;
                w.append_tree(&tree)?;
                w.finish()
            })?;
            Ok::<_, NodeImageError>(LayerBlob {
                path,
                info,
                created_by: format!(
                    "kina build node-image: cri-server, Kubernetes {}",
                    kube.version
                ),
            })
        },
    )?;

    let layers = [
        LayerBlob {
            path: base.blob.clone(),
            info: base.layer.clone(),
            created_by: format!("debootstrap {} {}", recipe.base.suite, recipe.include_arg()),
        },
        node_layer,
    ];
    let meta = ImageMeta {
        reference: reference.clone(),
        arch: arch.to_owned(),
        labels: HashMap::from([
            (
                "io.kina.kubernetes.version".to_owned(),
                kube.version.clone(),
            ),
            ("io.kina.base.suite".to_owned(), recipe.base.suite.clone()),
            (
                "org.opencontainers.image.title".to_owned(),
                "kina node".to_owned(),
            ),
        ]),
        created: rfc3339_now(),
        entrypoint: vec!["/sbin/init".to_owned()],
        env: vec!["container=docker".to_owned()],
        stop_signal: Some("SIGRTMIN+3".to_owned()),
    };
    let written = status.step(
        &format!("Writing {reference} to {} 🖼", opts.output.display()),
        || {
            if is_archive(&opts.output) {
                let layout = cache.scratch("layout")?;
                oci::write_layout(layout.path(), &meta, &layers).and_then(|w| {
                    oci::write_archive(layout.path(), &opts.output)?;
                    Ok(w)
                })
            } else {
                oci::write_layout(&opts.output, &meta, &layers)
            }
        },
    )?;
    tracing::info!(elapsed = ?started.elapsed(), "node image built");
    match cache.prune(CACHE_MAX_AGE) {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "pruned stale build cache entries"),
        Err(e) => tracing::warn!(error = %e, "cannot prune the build cache"),
    }
    Ok(BuiltImage {
        reference: reference.to_string(),
        digest: written.manifest_digest,
        output: opts.output.clone(),
        kube_version: kube.version,
        size: written.blobs_size,
    })
}

/// The image's creation time as RFC 3339: `SOURCE_DATE_EPOCH` when set (reproducible builds:
/// the same inputs then give the same digest), else now.
fn rfc3339_now() -> String {
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok());
    let secs = epoch.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    rfc3339(secs)
}

/// Seconds since the epoch as RFC 3339 UTC (civil-from-days, Howard Hinnant's algorithm).
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(layer::TREE_MTIME), "2025-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn archives_are_named_by_extension() {
        assert!(is_archive(Path::new("/x/node.tar")));
        assert!(!is_archive(Path::new("/x/node")));
    }
}

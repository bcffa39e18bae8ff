//! `kina build node-image`: the command line of [`crate::node_image::build`].
//!
//! Kubernetes comes from a release version (downloaded and checksum-verified) or a
//! directory of binaries, given as kind's positional SOURCE or explicitly with
//! `--kube-version` / `--kube-bin-dir`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{CliError, Env};
use crate::node_image::{self, BuildOptions, KubeSource, cache, kube_binaries};

const CMD: &str = "kina build node-image";

/// `kina build …`
#[derive(Debug, Subcommand)]
pub enum Build {
    /// Build the node image which contains Kubernetes build artifacts and other kina requirements.
    NodeImage(Box<NodeImageArgs>),
}

/// Flags of `kina build node-image`.
#[derive(Debug, Args)]
pub struct NodeImageArgs {
    /// Kubernetes source: a release version (v1.36.2) or a directory of binaries.
    #[arg(conflicts_with_all = ["kube_version", "kube_bin_dir"])]
    pub source: Option<String>,
    /// Kubernetes release to download, e.g. v1.36.2.
    #[arg(long, conflicts_with = "kube_bin_dir")]
    pub kube_version: Option<String>,
    /// Directory holding kubeadm, kubelet, kubectl and the control-plane binaries.
    #[arg(long)]
    pub kube_bin_dir: Option<PathBuf>,
    /// Where releases are downloaded from.
    #[arg(long, default_value = kube_binaries::DEFAULT_RELEASE_URL)]
    pub release_url: String,
    /// Name:tag of the resulting image.
    #[arg(long, default_value = "kina/node:latest")]
    pub image: String,
    /// OCI layout directory to write, or a `.tar` file for an oci-archive [default: store
    /// the image in kina's image store, where `kina create cluster` finds it by name].
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// The cri-server binary to install [default: `cri-server` next to kina].
    #[arg(long)]
    pub cri_server: Option<PathBuf>,
    /// cri-monitor, cri-server's per-container shim [default: `cri-monitor` next to kina].
    #[arg(long)]
    pub monitor: Option<PathBuf>,
    /// kina-runtime, the node's default OCI runtime [default: `kina-runtime` next to kina].
    #[arg(long)]
    pub runtime: Option<PathBuf>,
    /// The crictl binary to install.
    #[arg(long)]
    pub crictl: Option<PathBuf>,
    /// kina's pause binary, preloaded as the sandbox image [default: `kina-pause` next to kina].
    #[arg(long)]
    pub pause: Option<PathBuf>,
    /// A coredns binary, preloaded as registry.k8s.io/coredns/coredns:<its version>.
    #[arg(long)]
    pub coredns: Option<PathBuf>,
    /// kina's CNI daemon, preloaded as localhost/kina/kina-net [default: `kina-net` next to kina].
    #[arg(long)]
    pub kina_net: Option<PathBuf>,
    /// kina's storage provisioner, preloaded as localhost/kina/kina-local-path [default:
    /// `kina-local-path` next to kina].
    #[arg(long)]
    pub local_path: Option<PathBuf>,
    /// etcd for the control plane: `debian:SUITE` (Debian's etcd-server), a binary, or `none`.
    #[arg(long, default_value = "debian:trixie")]
    pub etcd: String,
    /// Debian suite of the base instead of the recipe's.
    #[arg(long)]
    pub suite: Option<String>,
    /// Debian mirror [default: the one apt uses on this machine].
    #[arg(long)]
    pub mirror: Option<String>,
    /// Build cache (Debian base, downloads).
    #[arg(long, default_value = cache::DEFAULT_CACHE_DIR)]
    pub cache_dir: PathBuf,
}

/// Where the Kubernetes binaries come from.
fn kube_source(a: &NodeImageArgs) -> Result<KubeSource, CliError> {
    let release = |version: &str| KubeSource::Release {
        version: version.to_string(),
        base_url: a.release_url.clone(),
    };
    if let Some(v) = &a.kube_version {
        return Ok(release(v));
    }
    if let Some(d) = &a.kube_bin_dir {
        return Ok(KubeSource::Dir(d.clone()));
    }
    match a.source.as_deref() {
        Some(s) if Path::new(s).is_dir() => Ok(KubeSource::Dir(PathBuf::from(s))),
        Some(s) if s.starts_with('v') && s[1..].starts_with(|c: char| c.is_ascii_digit()) => {
            Ok(release(s))
        }
        Some(s) => Err(CliError::request(
            CMD,
            format!("SOURCE {s:?} is neither a directory nor a release version like v1.36.2"),
        )),
        None => Err(CliError::request(
            CMD,
            "name the Kubernetes binaries: SOURCE, --kube-version or --kube-bin-dir",
        )),
    }
}

/// `cri-server` next to the running kina, as cargo and the release tarball place it.
fn default_cri_server() -> Option<PathBuf> {
    sibling("cri-server")
}

/// `name` next to the running kina.
fn sibling(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.join(name);
    candidate.is_file().then_some(candidate)
}

/// Run `kina build …`.
pub fn run(what: Build, env: &Env) -> Result<(), CliError> {
    let Build::NodeImage(a) = what;
    let a = *a;
    let kube = kube_source(&a)?;
    let cri_server = a
        .cri_server
        .clone()
        .or_else(default_cri_server)
        .ok_or_else(|| {
            CliError::request(
                CMD,
                "no cri-server binary next to kina; pass --cri-server PATH",
            )
        })?;
    // Without --output the image is written next to the store, imported, then dropped.
    let staging = env
        .store
        .root()
        .join(format!("images/.build-{}", std::process::id()));
    let opts = BuildOptions {
        image: a.image,
        kube,
        cri_server,
        monitor: a.monitor.clone().or_else(|| sibling("cri-monitor")),
        runtime: a.runtime.clone().or_else(|| sibling("kina-runtime")),
        crictl: a.crictl,
        output: a.output.clone().unwrap_or_else(|| staging.clone()),
        suite: a.suite,
        cache_dir: a.cache_dir,
        mirror: a.mirror,
        pause: a.pause.or_else(|| sibling("kina-pause")),
        coredns: a.coredns,
        kina_net: a.kina_net.or_else(|| sibling("kina-net")),
        local_path: a.local_path.or_else(|| sibling("kina-local-path")),
        etcd: node_image::etcd::EtcdSource::parse(&a.etcd).map_err(|error| {
            CliError::NodeImage {
                command: CMD,
                error,
            }
        })?,
    };
    env.status
        .line(&format!("Building node image {:?} ...", opts.image));
    let built = node_image::build(&opts, &env.status).map_err(|error| CliError::NodeImage {
        command: CMD,
        error,
    })?;
    if a.output.is_some() {
        env.status.line(&format!(
            "Image {} ({}, Kubernetes {}) written to {}",
            built.reference,
            built.digest,
            built.kube_version,
            built.output.display()
        ));
        return Ok(());
    }
    let stored = crate::provider::native::NodeImages::open(&env.store.root().join("images"))
        .and_then(|images| images.import(&staging));
    let _ = std::fs::remove_dir_all(&staging);
    stored.map_err(|e| CliError::request(CMD, e.to_string()))?;
    env.status.line(&format!(
        "Image {} ({}, Kubernetes {}) stored in {}",
        built.reference,
        built.digest,
        built.kube_version,
        env.store.root().join("images").display()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(argv: &[&str]) -> NodeImageArgs {
        let mut full = vec!["kina", "build", "node-image", "--output", "/tmp/x.tar"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Build {
                what: Build::NodeImage(a),
            } => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn source_is_a_release_or_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        assert_eq!(kube_source(&args(&[d])).unwrap(), KubeSource::Dir(d.into()));
        assert!(matches!(
            kube_source(&args(&["v1.36.2"])).unwrap(),
            KubeSource::Release { version, base_url }
                if version == "v1.36.2" && base_url == kube_binaries::DEFAULT_RELEASE_URL
        ));
        assert!(matches!(
            kube_source(&args(&["--kube-bin-dir", d])).unwrap(),
            KubeSource::Dir(_)
        ));
        assert!(kube_source(&args(&["latest"])).is_err());
        assert!(kube_source(&args(&[])).is_err());
        let both = [
            "kina",
            "build",
            "node-image",
            "--output",
            "x",
            "v1.36.2",
            "--kube-version",
            "v1.36.2",
        ];
        assert!(Cli::try_parse_from(both).is_err());
    }
}

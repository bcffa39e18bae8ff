//! What kina adds on top of the Debian base, as a [`Tree`]: the recipe's files, cri-server with
//! cri-monitor and kina-runtime, crictl, the Kubernetes binaries, the CNI plugin links, the version stamp, the sysctl shield
//! files and the systemd enable/mask symlinks (what `systemctl enable/mask` would create).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::error::{NodeImageError, Result};
use super::kube_binaries::{KubeBinaries, NODE_BINARIES};
use super::recipe::{self, Recipe};
use super::tree::{Content, Tree};

/// Where the systemd units and their links live.
const UNIT_DIR: &str = "/etc/systemd/system";

/// Host files that go into the node.
#[derive(Debug, Clone)]
pub struct NodeInputs<'a> {
    /// The recipe.
    pub recipe: &'a Recipe,
    /// Verified Kubernetes binaries.
    pub kube: &'a KubeBinaries,
    /// The cri-server binary.
    pub cri_server: &'a Path,
    /// cri-monitor, the shim cri-server starts every container through.
    pub monitor: &'a Path,
    /// kina-runtime, cri-server's default OCI runtime handler (`kina`).
    pub runtime: &'a Path,
    /// The crictl binary, if any.
    pub crictl: Option<&'a Path>,
    /// CNI plugins the base has in /usr/lib/cni.
    pub cni_plugins: &'a [String],
    /// Image archives (file name, host path) for /kina/images.
    pub images: &'a [(String, PathBuf)],
}

/// An executable regular file, or an error naming `flag`.
pub fn check_executable(flag: &str, path: &Path) -> Result<PathBuf> {
    let meta = fs::metadata(path)
        .map_err(|e| NodeImageError::input(format!("{flag} {}", path.display()), e.to_string()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(NodeImageError::input(
            format!("{flag} {}", path.display()),
            "is not an executable file",
        ));
    }
    Ok(path.to_owned())
}

/// The tree of everything kina adds to the base.
pub fn node_tree(inputs: &NodeInputs<'_>) -> Result<Tree> {
    let mut t = Tree::new();
    for f in recipe::FILES {
        t.file(f.path, f.mode, f.contents);
    }
    for dir in [
        "/etc/cni/net.d",
        "/etc/cri-server/certs.d",
        "/etc/kubernetes/manifests",
        "/opt/cni/bin",
    ] {
        t.dir(dir, 0o755);
    }
    let binary = |t: &mut Tree, path: &str, src: PathBuf| {
        t.insert(path, 0o755, Content::HostFile(src));
    };
    binary(
        &mut t,
        "/usr/local/bin/cri-server",
        inputs.cri_server.to_owned(),
    );
    binary(
        &mut t,
        "/usr/local/bin/cri-monitor",
        inputs.monitor.to_owned(),
    );
    binary(
        &mut t,
        "/usr/local/bin/kina-runtime",
        inputs.runtime.to_owned(),
    );
    if let Some(crictl) = inputs.crictl {
        binary(&mut t, "/usr/local/bin/crictl", crictl.to_owned());
    }
    for b in NODE_BINARIES {
        binary(&mut t, &format!("/usr/bin/{b}"), inputs.kube.path(b));
    }
    // The control-plane binaries reach the node inside their images (see images.rs).
    for (file, archive) in inputs.images {
        t.insert(
            &format!("/kina/images/{file}"),
            0o644,
            Content::HostFile(archive.clone()),
        );
    }
    for p in inputs.cni_plugins {
        t.symlink(&format!("/opt/cni/bin/{p}"), format!("/usr/lib/cni/{p}"));
    }
    t.file("/kina/version", 0o644, format!("{}\n", inputs.kube.version));
    for (name, value) in &inputs.recipe.sysctl_shields {
        t.file(&format!("/kina/sysctl/{name}"), 0o644, format!("{value}\n"));
    }
    for (name, value) in &inputs.recipe.node_sysctls {
        t.file(
            &format!("/kina/node-sysctl/{name}"),
            0o644,
            format!("{value}\n"),
        );
    }
    systemd_links(&mut t, inputs.recipe)?;
    Ok(t)
}

/// `systemctl set-default`, `enable` and `mask` as symlinks in /etc/systemd/system.
fn systemd_links(t: &mut Tree, r: &Recipe) -> Result<()> {
    t.symlink(
        &format!("{UNIT_DIR}/default.target"),
        format!("/lib/systemd/system/{}", r.systemd.default_target),
    );
    for unit in &r.systemd.enable {
        let file = recipe::unit_file(unit)?;
        for target in recipe::wanted_by(unit, file.contents)? {
            t.symlink(&format!("{UNIT_DIR}/{target}.wants/{unit}"), file.path);
        }
    }
    for unit in &r.systemd.mask {
        t.symlink(&format!("{UNIT_DIR}/{unit}"), "/dev/null");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_wires_units_binaries_and_shields() {
        let r = Recipe::embedded().unwrap();
        let kube = KubeBinaries {
            dir: "/k".into(),
            version: "v1.36.2".into(),
        };
        let cni = vec!["bridge".to_owned(), "loopback".to_owned()];
        let t = node_tree(&NodeInputs {
            recipe: &r,
            kube: &kube,
            cri_server: Path::new("/b/cri-server"),
            monitor: Path::new("/b/cri-monitor"),
            runtime: Path::new("/b/kina-runtime"),
            crictl: None,
            cni_plugins: &cni,
            images: &[(
                "kube-apiserver.tar".to_owned(),
                "/c/kube-apiserver.tar".into(),
            )],
        })
        .unwrap();
        let link = |p: &str| match &t.get(p).unwrap_or_else(|| panic!("{p} missing")).content {
            Content::Symlink(s) => s.display().to_string(),
            other => panic!("{p}: {other:?}"),
        };
        assert_eq!(
            link("/etc/systemd/system/multi-user.target.wants/cri-server.service"),
            "/etc/systemd/system/cri-server.service"
        );
        assert_eq!(
            link("/etc/systemd/system/multi-user.target.wants/kubelet.service"),
            "/etc/systemd/system/kubelet.service"
        );
        assert_eq!(
            link("/etc/systemd/system/sysinit.target.wants/kina-sysctl-shield.service"),
            "/etc/systemd/system/kina-sysctl-shield.service"
        );
        assert_eq!(
            link("/etc/systemd/system/systemd-sysctl.service"),
            "/dev/null"
        );
        assert_eq!(link("/etc/systemd/system/getty@.service"), "/dev/null");
        assert_eq!(
            link("/etc/systemd/system/default.target"),
            "/lib/systemd/system/multi-user.target"
        );
        assert_eq!(link("/opt/cni/bin/bridge"), "/usr/lib/cni/bridge");
        let kubeadm = t.get("/usr/bin/kubeadm").unwrap();
        assert_eq!(
            (kubeadm.mode, &kubeadm.content),
            (0o755, &Content::HostFile("/k/kubeadm".into()))
        );
        assert_eq!(
            t.get("/kina/images/kube-apiserver.tar").unwrap().content,
            Content::HostFile("/c/kube-apiserver.tar".into())
        );
        assert!(t.get("/kina/bin/kube-apiserver").is_none());
        assert_eq!(t.get("/usr/local/bin/cri-server").unwrap().mode, 0o755);
        assert!(t.get("/usr/local/bin/crictl").is_none());
        for (path, src) in [
            ("/usr/local/bin/cri-monitor", "/b/cri-monitor"),
            ("/usr/local/bin/kina-runtime", "/b/kina-runtime"),
        ] {
            let f = t.get(path).unwrap_or_else(|| panic!("{path} missing"));
            assert_eq!(
                (f.mode, &f.content),
                (0o755, &Content::HostFile(src.into()))
            );
        }
        assert_eq!(
            t.get("/kina/node-sysctl/net.ipv4.ip_forward")
                .unwrap()
                .content,
            Content::Bytes(b"1\n".to_vec())
        );
        assert_eq!(
            t.get("/kina/version").unwrap().content,
            Content::Bytes(b"v1.36.2\n".to_vec())
        );
        assert_eq!(
            t.get("/kina/sysctl/kernel.panic").unwrap().content,
            Content::Bytes(b"10\n".to_vec())
        );
        assert_eq!(
            t.get("/usr/local/bin/kina-shield-sysctls").unwrap().mode,
            0o755
        );
        assert_eq!(t.get("/etc/cni/net.d").unwrap().content, Content::Dir);
    }

    #[test]
    fn non_executables_are_named() {
        let f = std::env::temp_dir().join(format!("kina-not-exec-{}", std::process::id()));
        fs::write(&f, "x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_executable("--cri-server", &f).unwrap_err();
        fs::remove_file(&f).unwrap();
        assert!(
            e.to_string()
                .contains(&format!("--cri-server {}", f.display())),
            "{e}"
        );
        assert!(e.to_string().contains("not an executable file"), "{e}");
        let e = check_executable("--crictl", Path::new("/nonexistent")).unwrap_err();
        assert!(e.to_string().contains("--crictl /nonexistent"), "{e}");
        let e = check_executable("--crictl", Path::new("/etc")).unwrap_err();
        assert!(e.to_string().contains("not an executable file"), "{e}");
    }
}

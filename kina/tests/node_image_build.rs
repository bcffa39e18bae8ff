//! A real node image: `kina build node-image` debootstraps Debian (cached across runs), adds
//! cri-server, crictl and Kubernetes v1.36.2 from the shared tarball and the control-plane images
//! (etcd from Debian trixie's etcd-server), and writes an OCI layout that umoci unpacks with
//! systemd, the units, the binaries and the images where a node needs them.

mod node_image_support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use node_image_support::{KUBE_VERSION, image, rootfs, run, work_dir};

fn assert_executable(root: &Path, path: &str) {
    let meta = fs::metadata(root.join(path.trim_start_matches('/')))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        meta.is_file() && meta.permissions().mode() & 0o111 != 0,
        "{path} is not executable"
    );
}

fn link(root: &Path, path: &str) -> PathBuf {
    fs::read_link(root.join(path.trim_start_matches('/'))).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn image_holds_systemd_cri_server_kubernetes_and_cni() {
    let r = rootfs();
    assert_eq!(link(r, "/sbin/init"), Path::new("/lib/systemd/systemd"));
    assert_executable(r, "/lib/systemd/systemd");
    for bin in [
        "/usr/local/bin/cri-server",
        "/usr/local/bin/cri-monitor",
        "/usr/local/bin/kina-runtime",
        "/usr/local/bin/crictl",
        "/usr/bin/kubeadm",
        "/usr/bin/kubelet",
        "/usr/bin/kubectl",
        "/opt/cni/bin/bridge",
        "/opt/cni/bin/host-local",
        "/opt/cni/bin/loopback",
        "/opt/cni/bin/portmap",
        "/usr/sbin/runc",
        "/usr/sbin/iptables",
        "/usr/sbin/conntrack",
    ] {
        assert_executable(r, bin);
    }
    let units = "/etc/systemd/system";
    assert_eq!(
        link(
            r,
            &format!("{units}/multi-user.target.wants/cri-server.service")
        ),
        Path::new("/etc/systemd/system/cri-server.service")
    );
    assert_eq!(
        link(
            r,
            &format!("{units}/multi-user.target.wants/kubelet.service")
        ),
        Path::new("/etc/systemd/system/kubelet.service")
    );
    for masked in [
        "systemd-sysctl.service",
        "systemd-binfmt.service",
        "proc-sys-fs-binfmt_misc.automount",
        "systemd-modules-load.service",
        "getty@.service",
        "apt-daily.timer",
    ] {
        assert_eq!(
            link(r, &format!("{units}/{masked}")),
            Path::new("/dev/null"),
            "{masked}"
        );
    }
    // The control-plane images kubeadm asks for, as archives skopeo reads.
    for (file, tag, layers) in [
        ("kube-apiserver", KUBE_VERSION, 1),
        ("kube-controller-manager", KUBE_VERSION, 1),
        ("kube-scheduler", KUBE_VERSION, 1),
        ("kube-proxy", KUBE_VERSION, 2),
        ("pause", "3.10.2", 1),
        ("coredns", "v1.13.1", 1),
        ("etcd", "3.5.16-0", 2),
        // kina's add-ons (manifests/), on the Debian base layer.
        ("kina-net", concat!("v", env!("CARGO_PKG_VERSION")), 2),
        (
            "kina-local-path",
            concat!("v", env!("CARGO_PKG_VERSION")),
            2,
        ),
    ] {
        let archive = r.join(format!("kina/images/{file}.tar"));
        let out = run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci-archive:{}:{tag}", archive.display())));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Layers"].as_array().unwrap().len(), layers, "{file}: {v}");
    }
    assert!(!r.join("kina/bin").exists());
    assert_eq!(
        fs::read_to_string(r.join("kina/version")).unwrap(),
        format!("{KUBE_VERSION}\n")
    );
    let crictl = fs::read_to_string(r.join("etc/crictl.yaml")).unwrap();
    assert!(
        crictl.contains("unix:///run/cri-server/cri-server.sock"),
        "{crictl}"
    );
    // cri-server accepting /etc/cri-server/config.toml is checked by booting the node.
    let kubeadm = fs::metadata(r.join("usr/bin/kubeadm")).unwrap();
    assert_eq!((kubeadm.uid(), kubeadm.gid()), (0, 0));
    assert_eq!(fs::read_to_string(r.join("etc/machine-id")).unwrap(), "");
    assert!(fs::read_dir(r.join("var/lib/apt/lists")).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with("_Packages")
    }));
}

#[test]
fn bad_build_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let kina = env!("CARGO_BIN_EXE_kina");
    // A static pause: the default next to a dev build of kina is dynamic and refused first.
    let out = Command::new(kina)
        .args(["build", "node-image", "--kube-bin-dir"])
        .arg(dir.path())
        .arg("--cri-server")
        .arg("/bin/true")
        .arg("--pause")
        .arg(node_image_support::static_pause())
        .arg("--output")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("--kube-bin-dir {}", dir.path().display()))
            && stderr.contains("kubeadm"),
        "{stderr}"
    );

    let not_exec = dir.path().join("cri-server");
    fs::write(&not_exec, "x").unwrap();
    let out = Command::new(kina)
        .args([
            "build",
            "node-image",
            "--kube-version",
            "v1.36.2",
            "--cri-server",
        ])
        .arg(&not_exec)
        .arg("--output")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("--cri-server {}", not_exec.display()))
            && stderr.contains("not an executable file"),
        "{stderr}"
    );
    assert!(!dir.path().join("out").exists());

    // The pause image holds nothing but the pause binary: a dynamically linked one is refused.
    let out = Command::new(kina)
        .args(["build", "node-image", "--kube-bin-dir"])
        .arg(dir.path())
        .args([
            "--cri-server",
            "/bin/true",
            "--pause",
            "/bin/ls",
            "--output",
        ])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--pause /bin/ls") && stderr.contains("dynamically linked"),
        "{stderr}"
    );
}

#[test]
fn archive_output_is_the_same_image_as_an_oci_archive() {
    let (layout, tag) = image();
    let inspect = |transport: &str| -> serde_json::Value {
        let out = run(Command::new("skopeo").arg("inspect").arg(transport));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let from_layout = inspect(&format!("oci:{}:{tag}", layout.display()));
    // The same inputs again (every layer is cached), written as FILE.tar.
    let archive = work_dir().join("node-image.tar");
    let _ = fs::remove_file(&archive);
    let mut rebuild = node_image_support::build_command();
    run(rebuild.arg("--output").arg(&archive));
    let from_archive = inspect(&format!(
        "oci-archive:{}:{}",
        archive.display(),
        node_image_support::TAG
    ));
    if std::env::var_os("KINA_TEST_NODE_IMAGE").is_none() {
        assert_eq!(from_archive["Layers"], from_layout["Layers"]);
    }
    assert_eq!(from_archive["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(
        from_archive["Labels"]["io.kina.kubernetes.version"],
        KUBE_VERSION
    );
    fs::remove_file(&archive).unwrap();
}

#[test]
fn without_output_the_image_is_stored_for_create_cluster() {
    // Built first (shared), so the rebuild below only reuses cached layers.
    image();
    let state = work_dir().join(format!("store-{}", std::process::id()));
    let _ = fs::remove_dir_all(&state);
    let mut build = node_image_support::build_command();
    let out = run(build.env("KINA_STATE_DIR", &state));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stored in"), "{stderr}");
    let images = kina::provider::native::NodeImages::open(&state.join("images")).unwrap();
    let reference = format!("kina/node:{}", node_image_support::TAG);
    images
        .resolve(&reference)
        .unwrap_or_else(|e| panic!("{reference} is not in the store: {e}"));
    let staging: Vec<_> = fs::read_dir(state.join("images"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".build-"))
        .collect();
    assert!(staging.is_empty(), "the staging layout was left behind");
    fs::remove_dir_all(&state).unwrap();
}

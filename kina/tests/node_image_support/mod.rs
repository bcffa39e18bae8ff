//! Shared by the node-image tests: the real node image, built once per test run through
//! `kina build node-image` (caches make repeat runs take seconds), and its umoci-unpacked root,
//! kept per layer set so later test binaries and runs reuse it.
//!
//! Set `KINA_TEST_NODE_IMAGE=LAYOUT:TAG` to use an image built elsewhere (CI builds it once).

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

pub const KUBE_VERSION: &str = "v1.36.2";
pub const TAG: &str = "test";

pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

pub fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("node-image-test")
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The Kubernetes binaries, unpacked once from the shared release tarball.
pub fn kube_bin_dir() -> PathBuf {
    let tarball = shared_dir().join(format!(
        "kubernetes/kubernetes-{KUBE_VERSION}-linux-amd64.tar.xz"
    ));
    assert!(
        tarball.is_file(),
        "{} is missing: the node image test needs the shared Kubernetes binaries",
        tarball.display()
    );
    let dir = work_dir().join(format!("kubernetes-{KUBE_VERSION}"));
    if !dir.join("kube-proxy").is_file() {
        let tmp = work_dir().join("kubernetes.partial");
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).unwrap();
        run(Command::new("tar")
            .arg("-C")
            .arg(&tmp)
            .arg("-xJf")
            .arg(&tarball));
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&tmp, &dir).unwrap();
    }
    dir
}

/// The coredns binary, unpacked once from the shared tarball.
pub fn coredns() -> PathBuf {
    let tarball = shared_dir().join("kubernetes/coredns-v1.13.1-linux-amd64.tar.xz");
    assert!(tarball.is_file(), "{} is missing", tarball.display());
    let dir = work_dir().join("coredns-v1.13.1");
    if !dir.join("coredns").is_file() {
        fs::create_dir_all(&dir).unwrap();
        run(Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("-xJf")
            .arg(&tarball));
    }
    dir.join("coredns")
}

/// A binary of this workspace (built next to kina), stripped like a release binary.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    let kina = Path::new(env!("CARGO_BIN_EXE_kina"));
    let built = kina.with_file_name(bin);
    if !built.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run(Command::new(cargo)
            .args(["build", "-p", package, "--bin", bin])
            .current_dir(env!("CARGO_MANIFEST_DIR")));
    }
    assert!(built.is_file(), "{} was not built", built.display());
    let stripped = work_dir().join(bin);
    fs::copy(&built, &stripped).unwrap();
    run(Command::new("strip").arg(&stripped));
    stripped
}

/// kina's pause built static (it is the only file of its image), as releases ship it.
pub fn static_pause() -> PathBuf {
    let out = work_dir().join("kina-pause-static");
    if !out.is_file() {
        let kina = Path::new(env!("CARGO_BIN_EXE_kina"));
        let target = kina.parent().unwrap().join("..").join("static");
        run(
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../pause/build-static.sh"))
                .env("KINA_STATIC_TARGET_DIR", target)
                .arg(&out),
        );
    }
    out
}

/// `kina build node-image` with this test suite's inputs and cache; the caller adds `--output`.
pub fn build_command() -> Command {
    let crictl = shared_dir().join("bin/crictl");
    assert!(crictl.is_file(), "{} is missing", crictl.display());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kina"));
    cmd.args([
        "build",
        "node-image",
        "--image",
        &format!("kina/node:{TAG}"),
    ])
    .arg("--kube-bin-dir")
    .arg(kube_bin_dir())
    .arg("--cri-server")
    .arg(workspace_binary("cri-server", "cri-server"))
    .arg("--monitor")
    .arg(workspace_binary("cri-monitor", "cri-monitor"))
    .arg("--runtime")
    .arg(workspace_binary("kina-runtime", "kina-runtime"))
    .arg("--pause")
    .arg(static_pause())
    .arg("--coredns")
    .arg(coredns())
    .arg("--kina-net")
    .arg(workspace_binary("kina-addons", "kina-net"))
    .arg("--local-path")
    .arg(workspace_binary("kina-addons", "kina-local-path"))
    .arg("--crictl")
    .arg(&crictl)
    .arg("--cache-dir")
    .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("node-image-cache"));
    cmd
}

/// The layout (and tag) of the image all tests here share.
pub fn image() -> &'static (PathBuf, String) {
    static IMAGE: OnceLock<(PathBuf, String)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        if let Ok(v) = std::env::var("KINA_TEST_NODE_IMAGE") {
            let (layout, tag) = v.rsplit_once(':').expect("KINA_TEST_NODE_IMAGE=LAYOUT:TAG");
            return (PathBuf::from(layout), tag.to_owned());
        }
        fs::create_dir_all(work_dir()).unwrap();
        let layout = work_dir().join("layout");
        let started = Instant::now();
        let out = run(build_command().arg("--output").arg(&layout));
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{stderr}built in {:?}", started.elapsed());
        assert!(
            stderr.contains(&format!("kina/node:{TAG}")) && stderr.contains("sha256:"),
            "{stderr}"
        );
        (layout, TAG.to_owned())
    })
}

/// The image unpacked by umoci, once per set of layers (a marker file says it completed).
pub fn rootfs() -> &'static PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let (layout, tag) = image();
        let out = run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{tag}", layout.display())));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let layers: Vec<&str> = v["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        let key = layers
            .iter()
            .map(|d| &d["sha256:".len().."sha256:".len() + 12])
            .collect::<Vec<_>>()
            .join("-");
        let bundle = work_dir().join(format!("unpacked-{key}"));
        let done = bundle.join("unpacked");
        if !done.is_file() {
            let _ = fs::remove_dir_all(&bundle);
            run(Command::new("umoci")
                .args(["unpack", "--image"])
                .arg(format!("{}:{tag}", layout.display()))
                .arg(&bundle));
            fs::write(&done, layers.join("\n")).unwrap();
        }
        bundle.join("rootfs")
    })
}

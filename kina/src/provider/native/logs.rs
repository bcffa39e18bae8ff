//! `kina export logs` for one node, in kind's layout: the systemd journal, the kubelet's and
//! the runtime's journals, the console (serial) log, the node's spec and state, the image
//! list, and the pod and container logs under /var/log.

use std::path::Path;
use std::process::Command;

use super::NativeError;
use super::node::NativeNode;
use super::runtime::RuntimeCli;
use crate::provider::Node;

/// Commands whose output becomes one file each.
const COMMANDS: &[(&str, &[&str])] = &[
    ("journal.log", &["journalctl", "--no-pager"]),
    (
        "kubelet.log",
        &["journalctl", "--no-pager", "-u", "kubelet.service"],
    ),
    (
        "cri-server.log",
        &["journalctl", "--no-pager", "-u", "cri-server.service"],
    ),
    ("images.log", &["crictl", "images"]),
    ("pods.log", &["crictl", "pods"]),
    ("containers.log", &["crictl", "ps", "-a"]),
    (
        "kubernetes-version.txt",
        &["kubeadm", "version", "-o", "short"],
    ),
    (
        "systemd-units.log",
        &["systemctl", "list-units", "--all", "--no-pager"],
    ),
];

/// Writes the logs of `node` into `out` (created).
pub fn collect(node: &NativeNode, runtime: &RuntimeCli, out: &Path) -> Result<(), NativeError> {
    let state = runtime.state(node.name())?;
    if state.as_ref().is_none_or(|s| s.status != "running") {
        return Err(NativeError::NotReady {
            node: node.name().to_string(),
            message: format!(
                "not running (container {}); delete and re-create the cluster",
                state.map(|s| s.status).unwrap_or_else(|| "missing".into())
            ),
        });
    }
    std::fs::create_dir_all(out).map_err(|e| NativeError::io("create", out, e))?;
    let mut failures = Vec::new();
    for (file, argv) in COMMANDS {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let path = out.join(file);
        match runtime.exec(node.name(), &argv, None) {
            Ok(o) => {
                let mut data = o.stdout;
                if o.status != 0 {
                    data.extend_from_slice(&o.stderr);
                    failures.push(format!("{} (exit {})", argv.join(" "), o.status));
                }
                std::fs::write(&path, data).map_err(|e| NativeError::io("write", &path, e))?;
            }
            Err(e) => failures.push(format!("{}: {e}", argv.join(" "))),
        }
    }
    for (from, to) in [
        ("console.log", "serial.log"),
        ("config.json", "inspect.json"),
    ] {
        let src = node.dir().join(from);
        if src.is_file() {
            let dst = out.join(to);
            std::fs::copy(&src, &dst).map_err(|e| NativeError::io("copy", &src, e))?;
        }
    }
    if let Some(state) = state {
        let path = out.join("state.txt");
        std::fs::write(
            &path,
            format!("status: {}\npid: {}\n", state.status, state.pid),
        )
        .map_err(|e| NativeError::io("write", &path, e))?;
    }
    for sub in ["pods", "containers"] {
        let src = node.dir().join("var/log").join(sub);
        if src.is_dir() {
            let status = Command::new("cp")
                .arg("-a")
                .arg(&src)
                .arg(out.join(sub))
                .status()
                .map_err(|e| NativeError::Spawn {
                    program: "cp".into(),
                    error: e,
                })?;
            if !status.success() {
                failures.push(format!("copy {}", src.display()));
            }
        }
    }
    if !failures.is_empty() {
        let path = out.join("errors.log");
        std::fs::write(&path, failures.join("\n") + "\n")
            .map_err(|e| NativeError::io("write", &path, e))?;
    }
    Ok(())
}

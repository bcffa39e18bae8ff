//! Booting the real node image (see node_image_support): systemd runs as PID 1 in a privileged
//! runc container like a kind node until `systemctl is-system-running` answers, cri-server serves
//! crictl, the preloaded images are imported, host sysctls stay shielded, and SIGRTMIN+3 stops it.

mod node_image_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use node_image_support::{KUBE_VERSION, rootfs, run, work_dir};

/// A privileged node container, like kind's, on an overlay of the shared unpacked image (so
/// its writes stay its own): deleted, unmounted and removed (with its /var) on drop.
struct Node {
    runc_root: PathBuf,
    id: String,
    /// Bundle: config.json, rootfs (the overlay), upper, work, var.
    dir: PathBuf,
}

impl Node {
    fn runc(&self) -> Command {
        let mut c = Command::new("runc");
        c.arg("--root").arg(&self.runc_root);
        c
    }

    fn exec(&self, args: &[&str]) -> Output {
        self.runc()
            .arg("exec")
            .arg(&self.id)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn exec_stdout(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn status(&self) -> String {
        let out = self.runc().args(["state", &self.id]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["status"].as_str().unwrap_or("").to_owned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.runc().args(["delete", "--force", &self.id]).output();
        let rootfs = self.dir.join("rootfs");
        if let Err(e) = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("umount {}: {e}", rootfs.display());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn boot(image_rootfs: &Path) -> Node {
    let id = format!("kina-node-image-test-{}", std::process::id());
    let bundle = work_dir().join(&id);
    let _ = fs::remove_dir_all(&bundle);
    for d in ["rootfs", "upper", "work"] {
        fs::create_dir_all(bundle.join(d)).unwrap();
    }
    let rootfs = bundle.join("rootfs");
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        image_rootfs.display(),
        bundle.join("upper").display(),
        bundle.join("work").display()
    );
    nix::mount::mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(options.as_str()),
    )
    .unwrap_or_else(|e| panic!("mount overlay on {}: {e}", rootfs.display()));
    let node = Node {
        runc_root: work_dir().join("runc"),
        id: id.clone(),
        dir: bundle.clone(),
    };
    let var = bundle.join("var");
    // Like kind's /var volume: the image's /var copied to a host directory, bound over /var.
    run(Command::new("cp")
        .arg("-a")
        .arg(rootfs.join("var"))
        .arg(&var));
    // The node gets every capability of the host's bounding set, as kina's own nodes do.
    let caps = kina::provider::native::spec::bounding_capabilities();
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/sbin/init"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "container=docker"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps},
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "kina-test-node",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "rw"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "rw"]},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=755"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
            {"destination": "/var", "type": "bind", "source": var, "options": ["rbind", "rw"]},
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}, {"type": "network"}],
            "cgroupsPath": format!("/{id}"),
            "resources": {"devices": [{"allow": true, "access": "rwm"}]},
        },
    });
    fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    let log = fs::File::create(work_dir().join("node-console.log")).unwrap();
    run(node
        .runc()
        .args(["run", "--detach", "--bundle"])
        .arg(&bundle)
        .arg(&node.id)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log));
    node
}

/// Poll `f` until it returns Some or `timeout` passes.
fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn node_boots_systemd_and_serves_cri() {
    let r = rootfs();
    let node = boot(r);
    let started = Instant::now();
    let state = wait_for(Duration::from_secs(60), || {
        let s = node.exec_stdout(&["systemctl", "is-system-running"]);
        matches!(s.as_str(), "running" | "degraded").then_some(s)
    });
    let failed = node.exec_stdout(&["systemctl", "--failed", "--no-legend", "--no-pager"]);
    let state = state.unwrap_or_else(|| {
        panic!(
            "systemd did not finish booting in 60s; failed units:\n{failed}\n{}",
            node.exec_stdout(&["journalctl", "--no-pager", "-n", "50"])
        )
    });
    eprintln!(
        "systemd is {state} after {:?}; failed units: {failed:?}",
        started.elapsed()
    );
    assert!(
        !failed.contains("cri-server") && !failed.contains("kina-sysctl-shield"),
        "{failed}"
    );

    assert_eq!(
        node.exec_stdout(&["systemctl", "is-active", "cri-server.service"]),
        "active",
        "{}",
        node.exec_stdout(&["journalctl", "--no-pager", "-u", "cri-server"])
    );
    assert_eq!(
        node.exec_stdout(&["systemctl", "is-active", "kina-sysctl-shield.service"]),
        "active"
    );
    assert_eq!(
        node.exec_stdout(&["systemctl", "is-enabled", "kubelet.service"]),
        "enabled"
    );
    // kubelet waits for kubeadm's config instead of crash-looping.
    assert_eq!(
        node.exec_stdout(&["systemctl", "is-active", "kubelet.service"]),
        "inactive"
    );
    assert_eq!(
        node.exec_stdout(&["systemctl", "is-enabled", "systemd-sysctl.service"]),
        "masked"
    );
    assert_eq!(
        node.exec_stdout(&["kubeadm", "version", "-o", "short"]),
        KUBE_VERSION
    );

    // crictl, configured by /etc/crictl.yaml, reaches cri-server through its socket.
    let version = wait_for(Duration::from_secs(20), || {
        let out = node.exec(&["crictl", "version"]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .unwrap_or_else(|| {
        panic!(
            "crictl version failed: {:?}",
            node.exec(&["crictl", "version"])
        )
    });
    assert!(version.contains("RuntimeName:  cri-server"), "{version}");

    // The preloaded images are imported once, before the kubelet could ask for them.
    let imported = wait_for(Duration::from_secs(120), || {
        let s = node.exec_stdout(&["systemctl", "is-active", "kina-import-images.service"]);
        (s != "activating").then_some(s)
    });
    assert_eq!(
        imported.as_deref(),
        Some("active"),
        "{}",
        node.exec_stdout(&["journalctl", "--no-pager", "-u", "kina-import-images"])
    );
    let images = node.exec_stdout(&["crictl", "images"]);
    for (name, tag) in [
        ("registry.k8s.io/kube-apiserver", KUBE_VERSION),
        ("registry.k8s.io/kube-controller-manager", KUBE_VERSION),
        ("registry.k8s.io/kube-scheduler", KUBE_VERSION),
        ("registry.k8s.io/kube-proxy", KUBE_VERSION),
        ("registry.k8s.io/pause", "3.10.2"),
        ("registry.k8s.io/coredns/coredns", "v1.13.1"),
        ("registry.k8s.io/etcd", "3.5.16-0"),
    ] {
        assert!(
            images
                .lines()
                .any(|l| l.split_whitespace().take(2).eq([name, tag])),
            "{name}:{tag} not imported:\n{images}"
        );
    }

    // kubeadm's preflight needs forwarding in the node's own network namespace.
    assert_eq!(
        node.exec_stdout(&["cat", "/proc/sys/net/ipv4/ip_forward"]),
        "1"
    );

    // A pod without a RuntimeClass runs on the default handler, kina-runtime (nested in the node,
    // shimmed by cri-monitor), from the preloaded images.
    let pod = r#"{"metadata":{"name":"hello","namespace":"default","uid":"hello-uid"},"log_directory":"/var/log/pods/hello","linux":{"security_context":{"namespace_options":{"network":2}}}}"#;
    let ctr = format!(
        r#"{{"metadata":{{"name":"hello"}},"image":{{"image":"registry.k8s.io/kube-proxy:{KUBE_VERSION}"}},"command":["sh","-c","echo hello from the default handler"],"log_path":"hello.log"}}"#
    );
    let script = format!(
        "set -e; printf '%s' '{pod}' > /root/pod.json; printf '%s' '{ctr}' > /root/ctr.json; \
         id=$(crictl run --no-pull /root/ctr.json /root/pod.json); \
         for i in $(seq 200); do \
           [ \"$(crictl inspect -o go-template --template '{{{{.status.state}}}}' $id)\" = CONTAINER_EXITED ] && break; \
           sleep 0.05; done; \
         crictl logs $id; crictl pods -o json | grep -o '\"runtimeHandler\": *\"[a-z]*\"'; \
         crictl rmp -fa >/dev/null"
    );
    let out = node.exec(&["sh", "-c", &script]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("hello from the default handler")
            && stdout.contains("\"kina\""),
        "{out:?}\n{}",
        node.exec_stdout(&["journalctl", "--no-pager", "-u", "cri-server"])
    );

    // The kubelet's host-wide sysctls are shielded: writing them inside leaves the host alone.
    let host_path = "/proc/sys/vm/overcommit_memory";
    let host_before = fs::read_to_string(host_path).unwrap();
    let other = if host_before.trim() == "1" { "0" } else { "1" };
    let out = node.exec(&["sh", "-c", &format!("echo {other} > {host_path}")]);
    let host_after = fs::read_to_string(host_path).unwrap();
    if host_after != host_before {
        fs::write(host_path, &host_before).unwrap();
    }
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        host_after, host_before,
        "a write inside the node changed the host's vm.overcommit_memory"
    );
    assert_eq!(node.exec_stdout(&["cat", host_path]), other);

    // SIGRTMIN+3 asks systemd to shut down: the node stops by itself.
    run(node.runc().args(["kill", &node.id, "37"]));
    let stopped = wait_for(Duration::from_secs(30), || {
        (node.status() == "stopped").then_some(())
    });
    assert!(
        stopped.is_some(),
        "the node did not stop within 30s of SIGRTMIN+3: {}",
        node.status()
    );
    let cgroup = PathBuf::from("/sys/fs/cgroup/memory").join(&node.id);
    let dir = node.dir.clone();
    drop(node);
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&dir.display().to_string()),
        "a node mount leaked:\n{mounts}"
    );
    assert!(!dir.exists(), "{} leaked", dir.display());
    assert!(!cgroup.exists(), "{} leaked", cgroup.display());
}

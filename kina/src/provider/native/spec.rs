//! The OCI runtime spec of a node container, kind's node in OCI terms: systemd as PID 1,
//! privileged (every capability of the host's bounding set, every device, no seccomp),
//! its own pid/mount/ipc/uts/network and cgroup namespaces, tmpfs on /run and /tmp, a host
//! directory on /var (nested overlayfs needs a real filesystem there), /lib/modules
//! read-only when the host has it, and the user's `extraMounts`.

use std::path::Path;

use serde_json::{Value, json};

use super::NativeError;
use crate::config::{Mount, MountPropagation};

/// Signal that asks systemd to shut down (SIGRTMIN+3), the node's stop signal.
pub const STOP_SIGNAL: i32 = 37;

/// What varies between nodes.
#[derive(Debug, Clone)]
pub struct NodeSpecInput<'a> {
    /// Node name (container id and hostname).
    pub name: &'a str,
    /// Host directory bound on the node's /var.
    pub var_dir: &'a Path,
    /// cgroups path of the node (cgroupfs form).
    pub cgroups_path: String,
    /// The user's `extraMounts`.
    pub extra_mounts: &'a [Mount],
    /// Capability names (`CAP_…`) to grant: the host's bounding set.
    pub capabilities: Vec<String>,
    /// Whether the host has /lib/modules to share read-only.
    pub lib_modules: bool,
    /// RLIMIT_NOFILE of the node (soft and hard): the host's hard limit.
    pub nofile: u64,
}

/// The hard RLIMIT_NOFILE of this process: what a node may get without CAP_SYS_RESOURCE.
pub fn host_nofile() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard)
        .unwrap_or(1024)
        .min(1 << 20)
}

fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": destination, "type": kind, "source": source, "options": options})
}

fn extra_mount(m: &Mount) -> Value {
    let propagation = match m.propagation {
        MountPropagation::None => "rprivate",
        MountPropagation::HostToContainer => "rslave",
        MountPropagation::Bidirectional => "rshared",
    };
    let mode = if m.read_only { "ro" } else { "rw" };
    json!({
        "destination": m.container_path,
        "type": "bind",
        "source": m.host_path,
        "options": ["rbind", mode, propagation],
    })
}

/// The node's `config.json`, checked against the OCI runtime-spec types.
pub fn node_spec(input: &NodeSpecInput<'_>) -> Result<Value, NativeError> {
    let caps = &input.capabilities;
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        // Privileged: sysfs and the cgroup hierarchy are writable, as the kubelet needs.
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "rw"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "rw"],
        ),
        mount("/run", "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=755"]),
        mount("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=1777"]),
        json!({
            "destination": "/var",
            "type": "bind",
            "source": input.var_dir,
            "options": ["rbind", "rw"],
        }),
    ];
    if input.lib_modules {
        mounts.push(mount(
            "/lib/modules",
            "bind",
            "/lib/modules",
            &["rbind", "ro", "rprivate"],
        ));
    }
    mounts.extend(input.extra_mounts.iter().map(extra_mount));
    let spec = json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/sbin/init"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                // systemd's container detection; kind's nodes say docker, kina's say kina.
                "container=kina",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
                "inheritable": caps, "ambient": caps,
            },
            // Open files as many as the host allows (kind's nodes get Docker's 1048576): the
            // API server, etcd and HAProxy need far more than a shell's 1024.
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": input.nofile, "hard": input.nofile}],
            "noNewPrivileges": false,
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": input.name,
        "mounts": mounts,
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "mount"}, {"type": "cgroup"}, {"type": "network"},
            ],
            "cgroupsPath": input.cgroups_path,
            "resources": {"devices": [{"allow": true, "access": "rwm"}]},
            // The kubelet reads /dev/kmsg (OOM events); fuse for nested workloads.
            "devices": [
                {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o644, "uid": 0, "gid": 0},
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0},
            ],
            "rootfsPropagation": "rslave",
            // A node routes for its pods (kubeadm checks ip_forward), as kind's nodes do.
            "sysctl": {
                "net.ipv4.ip_forward": "1",
                "net.ipv6.conf.all.forwarding": "1",
                "net.ipv6.conf.all.disable_ipv6": "0",
            },
        },
    });
    serde_json::from_value::<oci_spec::runtime::Spec>(spec.clone()).map_err(|e| {
        NativeError::Spec {
            node: input.name.to_string(),
            message: e.to_string(),
        }
    })?;
    Ok(spec)
}

/// Names (`CAP_…`) of the capabilities in the host's bounding set.
pub fn bounding_capabilities() -> Vec<String> {
    use kina_runtime::process::capabilities::{CAPABILITY_NAMES, host_bounding};
    let bits = host_bounding();
    CAPABILITY_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits >> i & 1 == 1)
        .map(|(_, n)| n.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(mounts: &'a [Mount]) -> NodeSpecInput<'a> {
        NodeSpecInput {
            name: "kina-control-plane",
            var_dir: Path::new("/var/lib/kina/nodes/kina-control-plane/var"),
            cgroups_path: "/kina/kina-control-plane".into(),
            extra_mounts: mounts,
            capabilities: vec!["CAP_SYS_ADMIN".into(), "CAP_NET_ADMIN".into()],
            lib_modules: false,
            nofile: 65536,
        }
    }

    #[test]
    fn node_is_privileged_systemd_with_private_cgroupns() {
        let spec = node_spec(&input(&[])).unwrap();
        assert_eq!(spec["process"]["args"], json!(["/sbin/init"]));
        assert_eq!(spec["hostname"], "kina-control-plane");
        let ns: Vec<&str> = spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(ns.contains(&"cgroup") && ns.contains(&"network"), "{ns:?}");
        assert!(!ns.contains(&"user"));
        assert!(spec["linux"].get("seccomp").is_none());
        assert_eq!(spec["linux"]["sysctl"]["net.ipv4.ip_forward"], "1");
        assert_eq!(
            spec["process"]["rlimits"],
            json!([{"type": "RLIMIT_NOFILE", "soft": 65536, "hard": 65536}])
        );
        assert_eq!(
            spec["process"]["capabilities"]["bounding"],
            json!(["CAP_SYS_ADMIN", "CAP_NET_ADMIN"])
        );
        let dests: Vec<&str> = spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        for d in ["/run", "/tmp", "/var", "/sys/fs/cgroup"] {
            assert!(dests.contains(&d), "{d} missing: {dests:?}");
        }
        assert!(!dests.contains(&"/lib/modules"));
    }

    #[test]
    fn extra_mounts_keep_mode_and_propagation() {
        let mounts = [
            Mount {
                container_path: "/data".into(),
                host_path: "/srv/data".into(),
                read_only: true,
                selinux_relabel: false,
                propagation: MountPropagation::HostToContainer,
            },
            Mount {
                container_path: "/shared".into(),
                host_path: "/srv/shared".into(),
                read_only: false,
                selinux_relabel: false,
                propagation: MountPropagation::Bidirectional,
            },
        ];
        let mut i = input(&mounts);
        i.lib_modules = true;
        let spec = node_spec(&i).unwrap();
        let all = spec["mounts"].as_array().unwrap();
        let find = |d: &str| all.iter().find(|m| m["destination"] == d).unwrap().clone();
        assert_eq!(find("/data")["options"], json!(["rbind", "ro", "rslave"]));
        assert_eq!(
            find("/shared")["options"],
            json!(["rbind", "rw", "rshared"])
        );
        assert_eq!(
            find("/lib/modules")["options"],
            json!(["rbind", "ro", "rprivate"])
        );
    }
}

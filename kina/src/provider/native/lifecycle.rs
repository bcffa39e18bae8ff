//! Creating and deleting node containers: the node's root filesystem (image overlay and a
//! host /var seeded from the image), its runtime spec, the container itself, its place on
//! the cluster network and its published ports — and, on delete or on a failed create, the
//! removal of exactly those things.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::mount::MntFlags;

use super::NativeError;
use super::images::NodeImages;
use super::runtime::RuntimeCli;
use super::spec::{self, NodeSpecInput};
use crate::network::{self, NetworkHost, PortMapping};
use crate::provider::NodeSpec;
use crate::state::{ClusterRecord, NodeRecord, PortRecord, StateStore};

/// How long a node may take to boot systemd to `running`.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What the lifecycle works with.
pub struct Ctx<'a> {
    /// The state dir.
    pub state_dir: &'a Path,
    /// Cluster records.
    pub store: &'a StateStore,
    /// The node runtime.
    pub runtime: &'a RuntimeCli,
    /// Node images.
    pub images: &'a NodeImages,
}

/// A node's bundle directory.
pub fn node_dir(state_dir: &Path, node: &str) -> PathBuf {
    state_dir.join("nodes").join(node)
}

/// The cgroup of a node (cgroupfs form, one level so nothing is left behind).
pub fn cgroups_path(node: &str) -> String {
    format!("/kina-{node}")
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> Result<T, NativeError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NativeError::io("start", Path::new("tokio runtime"), e))?;
    Ok(rt.block_on(f))
}

/// Creates the nodes of `plans` (spec, image ID) in parallel and waits until systemd runs
/// in each. On failure the first error is returned and what was made stays (recorded, so
/// [`delete`] removes it).
pub fn create_all(
    ctx: &Ctx<'_>,
    plans: &[(NodeSpec, String)],
) -> Result<Vec<(String, NodeRecord)>, NativeError> {
    let Some((first, _)) = plans.first() else {
        return Ok(Vec::new());
    };
    let cluster = first.cluster.clone();
    // The record exists before any container, so a half-made cluster can be deleted.
    ctx.store.update(&cluster, |rec| {
        (
            Some(rec.unwrap_or_else(|| ClusterRecord::new(&cluster))),
            (),
        )
    })?;
    let host = NetworkHost::new(ctx.state_dir);
    let net = block_on(host.ensure_cluster_network(&cluster, first.ip_family.into()))??;
    let results: Vec<Result<NodeRecord, NativeError>> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|(spec, image)| {
                let net = &net;
                s.spawn(move || {
                    let rec = create_one(ctx, net, spec, image)?;
                    wait_ready(
                        ctx.runtime,
                        &spec.name,
                        &node_dir(ctx.state_dir, &spec.name),
                    )?;
                    Ok(rec)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(NativeError::Poisoned)))
            .collect()
    });
    // Nodes of a failed create stay for the caller to delete or retain (--retain).
    if let Some(pos) = results.iter().position(Result::is_err) {
        return Err(results
            .into_iter()
            .nth(pos)
            .and_then(Result::err)
            .unwrap_or(NativeError::Poisoned));
    }
    Ok(results
        .into_iter()
        .flatten()
        .map(|r| (cluster.clone(), r))
        .collect())
}

fn create_one(
    ctx: &Ctx<'_>,
    net: &network::ClusterNetwork,
    spec: &NodeSpec,
    image: &str,
) -> Result<NodeRecord, NativeError> {
    let name = spec.name.as_str();
    let dir = node_dir(ctx.state_dir, name);
    if ctx.runtime.state(name)?.is_some() {
        return Err(NativeError::Exists {
            node: name.to_string(),
            dir,
        });
    }
    if dir.exists() {
        tracing::warn!(node = name, "removing the leftovers of an earlier node");
        teardown(ctx, &spec.cluster, name)?;
    }
    let mut record = NodeRecord {
        name: name.to_string(),
        role: spec.role,
        image: spec.image.clone(),
        ipv4: None,
        ipv6: None,
        ports: Vec::new(),
    };
    let cluster = spec.cluster.as_str();
    put_node(ctx.store, cluster, &record)?;
    std::fs::create_dir_all(&dir).map_err(|e| NativeError::io("create", &dir, e))?;
    match build(ctx, net, spec, image, &dir) {
        Ok((ipv4, ipv6, ports)) => {
            record.ipv4 = ipv4;
            record.ipv6 = ipv6;
            record.ports = ports;
            put_node(ctx.store, cluster, &record)?;
            Ok(record)
        }
        Err(e) => {
            if let Err(cleanup) = teardown(ctx, cluster, name) {
                tracing::warn!(node = name, error = %cleanup, "cleanup after failed create");
            }
            Err(e)
        }
    }
}

type Built = (
    Option<std::net::Ipv4Addr>,
    Option<std::net::Ipv6Addr>,
    Vec<PortRecord>,
);

fn build(
    ctx: &Ctx<'_>,
    net: &network::ClusterNetwork,
    spec: &NodeSpec,
    image: &str,
    dir: &Path,
) -> Result<Built, NativeError> {
    let name = spec.name.as_str();
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| NativeError::io("create", &rootfs, e))?;
    let layers = ctx.images.prepare_rootfs(image, name)?;
    layers.mount(&rootfs).map_err(|error| NativeError::Image {
        image: image.to_string(),
        error,
    })?;
    write_identity(&rootfs, name)?;
    // kind's /var volume: a real filesystem (nested overlayfs needs one) seeded with the
    // image's /var.
    let var = dir.join("var");
    copy_tree(&rootfs.join("var"), &var)?;
    let config = spec::node_spec(&NodeSpecInput {
        name,
        var_dir: &var,
        cgroups_path: cgroups_path(name),
        extra_mounts: &spec.mounts,
        capabilities: spec::bounding_capabilities(),
        lib_modules: Path::new("/lib/modules").is_dir(),
        nofile: spec::host_nofile(),
    })?;
    let config_path = dir.join("config.json");
    let bytes = serde_json::to_vec_pretty(&config).map_err(|e| NativeError::Spec {
        node: name.to_string(),
        message: e.to_string(),
    })?;
    std::fs::write(&config_path, bytes).map_err(|e| NativeError::io("write", &config_path, e))?;

    ctx.runtime.create(name, dir, &dir.join("console.log"))?;
    let pid = match ctx.runtime.state(name)? {
        Some(s) if s.pid > 0 => s.pid,
        other => {
            return Err(NativeError::Runtime {
                node: name.to_string(),
                what: "create".into(),
                output: format!("no init process after create ({other:?})"),
            });
        }
    };
    let host = NetworkHost::new(ctx.state_dir);
    let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let addrs = block_on(host.attach_node(net, name, &netns))??;
    let mappings = spec
        .ports
        .iter()
        .enumerate()
        .map(|(i, m)| PortMapping::from_config(name, i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let published = block_on(host.publish_ports(net, name, &mappings))??;
    ctx.runtime.start(name)?;
    let ports = published
        .into_iter()
        .map(|p| PortRecord {
            listen_address: p.listen_address,
            host_port: p.host_port,
            container_port: p.container_port,
            protocol: p.protocol.into(),
        })
        .collect();
    Ok((addrs.ipv4, addrs.ipv6, ports))
}

/// Writes what Docker gives a kind node: `/etc/hostname` and `/etc/hosts` naming the node,
/// and `/etc/resolv.conf` with the host's name servers (loopback ones, which mean nothing
/// in the node's network namespace, replaced as Docker does).
fn write_identity(rootfs: &Path, name: &str) -> Result<(), NativeError> {
    let etc = rootfs.join("etc");
    let meta = std::fs::symlink_metadata(&etc).map_err(|e| NativeError::io("stat", &etc, e))?;
    if !meta.is_dir() {
        return Err(NativeError::io(
            "use",
            &etc,
            std::io::Error::other("the node image's /etc is not a directory"),
        ));
    }
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let files = [
        ("hostname", format!("{name}\n")),
        (
            "hosts",
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{name}\n"
            ),
        ),
        ("resolv.conf", node_resolv_conf(&host_resolv)),
    ];
    for (file, content) in files {
        let path = etc.join(file);
        // Never write through a symlink of the image: it would resolve on the host.
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NativeError::io("remove", &path, e)),
        }
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc_o_nofollow())
            .open(&path)
            .map_err(|e| NativeError::io("create", &path, e))?;
        std::io::Write::write_all(&mut f, content.as_bytes())
            .map_err(|e| NativeError::io("write", &path, e))?;
    }
    Ok(())
}

fn libc_o_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

/// The node's resolv.conf from the host's: loopback name servers dropped (a resolver on
/// the host's 127.0.0.53 is unreachable from the node), public ones as Docker's fallback
/// when none is left.
pub fn node_resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let loopback = words
                .next()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                .is_none_or(|a| a.is_loopback());
            if loopback {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// Copies `src` to the new directory `dst` with everything (modes, owners, xattrs, links).
fn copy_tree(src: &Path, dst: &Path) -> Result<(), NativeError> {
    let out = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .output()
        .map_err(|e| NativeError::Spawn {
            program: "cp".into(),
            error: e,
        })?;
    if !out.status.success() {
        return Err(NativeError::io(
            "copy",
            src,
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        ));
    }
    Ok(())
}

fn put_node(store: &StateStore, cluster: &str, node: &NodeRecord) -> Result<(), NativeError> {
    store.update(cluster, |rec| {
        let mut rec = rec.unwrap_or_else(|| ClusterRecord::new(cluster));
        rec.nodes.retain(|n| n.name != node.name);
        rec.nodes.push(node.clone());
        (Some(rec), ())
    })?;
    Ok(())
}

/// Waits until systemd in the node reports `running` (or `degraded`: some unit failed,
/// which `kina export logs` shows, but the node works).
fn wait_ready(runtime: &RuntimeCli, node: &str, dir: &Path) -> Result<(), NativeError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let argv = ["systemctl".to_string(), "is-system-running".to_string()];
    loop {
        match runtime.state(node)? {
            Some(s) if s.status == "running" => {}
            other => {
                let console = std::fs::read_to_string(dir.join("console.log")).unwrap_or_default();
                let tail: Vec<&str> = console.lines().rev().take(20).collect();
                return Err(NativeError::NotReady {
                    node: node.to_string(),
                    message: format!(
                        "the node stopped while booting ({}); console:\n{}",
                        other.map(|s| s.status).unwrap_or_else(|| "gone".into()),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    ),
                });
            }
        }
        let out = runtime.exec(node, &argv, None)?;
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if matches!(state.as_str(), "running" | "degraded") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(NativeError::NotReady {
                node: node.to_string(),
                message: format!(
                    "systemd did not finish booting in {}s (state {state:?}); see `systemctl --failed` in the node",
                    READY_TIMEOUT.as_secs()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (a bounded time) until no process is left in the node's cgroups: SIGKILLed
/// processes of a big node (an API server, etcd) can take a moment to release their memory
/// and exit after the runtime has reaped the node's init.
fn wait_processes_gone(node: &str) {
    let needle = cgroups_path(node);
    let in_node = |cgroup: &str| {
        cgroup.lines().any(|l| {
            l.split(':')
                .nth(2)
                .is_some_and(|p| p == needle || p.starts_with(&format!("{needle}/")))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .filter_map(|e| std::fs::read_to_string(e.path().join("cgroup")).ok())
            .any(|c| in_node(&c));
        if !left {
            return;
        }
        if Instant::now() > deadline {
            tracing::warn!(node, "processes of the node are still exiting");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deletes `nodes` of `cluster` and their records; the cluster's network and record go
/// with its last node.
pub fn delete(ctx: &Ctx<'_>, cluster: &str, nodes: &[String]) -> Result<(), NativeError> {
    let results: Vec<Result<(), NativeError>> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|n| s.spawn(move || teardown(ctx, cluster, n)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(NativeError::Poisoned)))
            .collect()
    });
    ctx.store.remove_nodes(cluster, nodes)?;
    let remaining = ctx.store.get(cluster)?.map(|r| r.nodes.len()).unwrap_or(0);
    if remaining == 0 {
        block_on(NetworkHost::new(ctx.state_dir).delete_cluster_network(cluster))??;
    }
    results.into_iter().collect()
}

/// Removes one node: its container (killed: a deleted node has nothing worth a clean
/// shutdown, as with kind's `docker rm -f`), mounts, writable layer, files and network.
fn teardown(ctx: &Ctx<'_>, cluster: &str, node: &str) -> Result<(), NativeError> {
    if ctx.runtime.state(node)?.is_some() {
        let _ = ctx.runtime.kill_all(node, "KILL");
        let mut tries = 0;
        while let Err(e) = ctx.runtime.delete_force(node) {
            tries += 1;
            if tries > 50 {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    wait_processes_gone(node);
    let dir = node_dir(ctx.state_dir, node);
    for m in crate::node_image::cache::mounts_below(&dir) {
        nix::mount::umount2(&m, MntFlags::MNT_DETACH)
            .map_err(|e| NativeError::io("unmount", &m, e.into()))?;
    }
    ctx.images.remove_rootfs(node)?;
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(NativeError::io("remove", &dir, e)),
    }
    let host = NetworkHost::new(ctx.state_dir);
    if let Some(net) = host.cluster_network(cluster)? {
        block_on(host.detach_node(&net, node))??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback_servers() {
        let host =
            "search example.org\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n";
        assert_eq!(
            node_resolv_conf(host),
            "search example.org\nnameserver 10.0.0.2\noptions edns0\n"
        );
        let only_local = "nameserver 127.0.0.53\nnameserver ::1\n";
        assert_eq!(
            node_resolv_conf(only_local),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
    }
}

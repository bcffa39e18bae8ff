//! RunPodSandbox: validate, reserve the name, then pod files, netns + CNI (in a spawned task so a
//! cancelled RPC never kills a plugin mid-ADD), the pause container through the monitor. Any
//! failure runs the same idempotent teardown as RemovePodSandbox, so nothing is left behind.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_cri::v1 as cri;
use prost::Message;

use crate::container::error::{RuntimeError, io};
use crate::container::imagecfg::{self, ImageConfig};
use crate::container::runtime::{Runtime, new_id, now_ns};
use crate::network::{NetNs, PodNetworkRequest, PortMapping};
use crate::oci::{CreateOptions, spec};

use super::SandboxRecord;
use super::files;

/// Namespace modes (CRI `NamespaceMode`).
pub const POD: i32 = 0;
pub const NODE: i32 = 2;

/// The sandbox's namespace options (defaults: all POD).
pub fn ns_options(c: &cri::PodSandboxConfig) -> cri::NamespaceOption {
    c.linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default()
}

/// `<name>_<namespace>_<uid>_<attempt>`, after checking the metadata.
pub fn sandbox_name(c: &cri::PodSandboxConfig) -> Result<String, RuntimeError> {
    let m = c
        .metadata
        .as_ref()
        .ok_or_else(|| RuntimeError::InvalidArgument("config.metadata: required".into()))?;
    for (field, v) in [
        ("name", &m.name),
        ("namespace", &m.namespace),
        ("uid", &m.uid),
    ] {
        if v.is_empty() {
            return Err(RuntimeError::InvalidArgument(format!(
                "config.metadata.{field}: required"
            )));
        }
        if v.contains(['_', '/', '\0']) && field != "uid" {
            return Err(RuntimeError::InvalidArgument(format!(
                "config.metadata.{field}: {v:?} must not contain '_', '/' or NUL"
            )));
        }
    }
    Ok(format!(
        "{}_{}_{}_{}",
        m.name, m.namespace, m.uid, m.attempt
    ))
}

/// The CNI request for a sandbox.
pub fn network_request(id: &str, netns: &str, c: &cri::PodSandboxConfig) -> PodNetworkRequest {
    let m = c.metadata.clone().unwrap_or_default();
    PodNetworkRequest {
        container_id: id.to_owned(),
        netns_path: netns.to_owned(),
        pod_name: m.name,
        pod_namespace: m.namespace,
        pod_uid: m.uid,
        port_mappings: c
            .port_mappings
            .iter()
            .filter(|p| p.host_port > 0)
            .map(|p| PortMapping {
                host_port: p.host_port as u16,
                container_port: p.container_port as u16,
                protocol: match p.protocol {
                    1 => "udp".into(),
                    2 => "sctp".into(),
                    _ => "tcp".into(),
                },
                host_ip: p.host_ip.clone(),
            })
            .collect(),
        ..Default::default()
    }
}

impl Runtime {
    /// The sandbox image, pulled (like containerd does) when the store lacks it.
    async fn sandbox_image(&self) -> Result<(crate::image::ImageView, ImageConfig), RuntimeError> {
        let name = &self.config.sandbox_image;
        match ImageConfig::resolve(&self.images, name) {
            Err(RuntimeError::NotFound(_)) => {
                tracing::info!(image = %name, "sandbox image missing: pulling it");
                self.images.pull(name, None).await.map_err(|e| {
                    RuntimeError::NotFound(format!(
                        "sandbox image {name:?} is not in the store and pulling it failed: {e}"
                    ))
                })?;
                ImageConfig::resolve(&self.images, name)
            }
            r => r,
        }
    }

    /// RunPodSandbox.
    pub async fn run_sandbox(
        self: &Arc<Self>,
        config: cri::PodSandboxConfig,
        handler: &str,
    ) -> Result<String, RuntimeError> {
        let name = sandbox_name(&config)?;
        for p in &config.port_mappings {
            if !(0..=65535).contains(&p.host_port) || !(1..=65535).contains(&p.container_port) {
                return Err(RuntimeError::InvalidArgument(format!(
                    "config.port_mappings: {}:{} out of range",
                    p.host_port, p.container_port
                )));
            }
        }
        let (handler, backend) = self.backend(handler)?;
        let (view, image) = self.sandbox_image().await?;
        let id = new_id()?;
        self.sandboxes.add(SandboxRecord {
            id: id.clone(),
            name,
            config: config.encode_to_vec(),
            handler: handler.clone(),
            ready: false,
            created_at: now_ns(),
            netns: String::new(),
            ips: Vec::new(),
            pid: 0,
            monitor_pid: 0,
            network_attached: false,
        })?;
        let _guard = self.lock(&id).await;
        match self
            .setup_sandbox(&id, &config, &view, &image, backend)
            .await
        {
            Ok(()) => Ok(id),
            Err(e) => {
                tracing::warn!(id = %id, "RunPodSandbox failed, cleaning up: {e}");
                if let Err(c) = self.teardown_sandbox(&id, true).await {
                    tracing::error!(id = %id, "cleanup after failed RunPodSandbox: {c}");
                }
                Err(e)
            }
        }
    }

    async fn setup_sandbox(
        self: &Arc<Self>,
        id: &str,
        config: &cri::PodSandboxConfig,
        view: &crate::image::ImageView,
        image: &ImageConfig,
        backend: Arc<dyn crate::oci::RuntimeBackend>,
    ) -> Result<(), RuntimeError> {
        let dir = self.sandbox_dir(id);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let ns = ns_options(config);
        let host_net = ns.network == NODE;
        let hostname = if !config.hostname.is_empty() {
            config.hostname.clone()
        } else if host_net {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            config
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default()
        };
        files::write_files(&dir, &hostname, config.dns_config.as_ref())?;
        if ns.ipc != NODE {
            files::mount_shm(&dir.join("shm"))?;
        }
        // Network: a pinned netns, then CNI ADD in its own task.
        let mut netns_path = String::new();
        if !host_net {
            let (nsdir, name) = (self.netns_dir(), format!("cri-{}", &id[..16]));
            let ns = tokio::task::spawn_blocking(move || NetNs::create(&nsdir, &name))
                .await
                .map_err(|e| RuntimeError::Internal(format!("netns task: {e}")))??;
            netns_path = ns.path().display().to_string();
            let p = netns_path.clone();
            self.sandboxes.update(id, |r| r.netns = p)?;
            let req = network_request(id, &netns_path, config);
            let (rt, sid) = (self.clone(), id.to_owned());
            let status = tokio::spawn(async move {
                let r = rt.cni.setup(&req).await;
                if r.is_ok() {
                    let _ = rt.sandboxes.update(&sid, |s| s.network_attached = true);
                }
                r
            })
            .await
            .map_err(|e| RuntimeError::Internal(format!("CNI task: {e}")))??;
            let ips: Vec<String> = status
                .ips
                .iter()
                .map(|ip| ip.address.ip().to_string())
                .collect();
            self.sandboxes.update(id, |r| r.ips = ips)?;
        }
        // The pause container.
        let rootfs = dir.join("rootfs");
        imagecfg::mount_rootfs(&self.images, view, id, &rootfs)?;
        let linux = config.linux.clone().unwrap_or_default();
        let sc = linux.security_context.clone().unwrap_or_default();
        let mut namespaces = vec![("mount", String::new())];
        if ns.pid != NODE {
            namespaces.push(("pid", String::new()));
        }
        if ns.ipc != NODE {
            namespaces.push(("ipc", String::new()));
        }
        if !host_net {
            namespaces.push(("uts", String::new()));
            namespaces.push(("network", netns_path.clone()));
        }
        let mut mounts = vec![
            spec::bind_mount(&dir.join("hostname"), "/etc/hostname", true, 0),
            spec::bind_mount(&dir.join("resolv.conf"), "/etc/resolv.conf", true, 0),
            spec::bind_mount(&dir.join("hosts"), "/etc/hosts", true, 0),
        ];
        let shm = if ns.ipc == NODE {
            std::path::PathBuf::from("/dev/shm")
        } else {
            dir.join("shm")
        };
        mounts.push(spec::bind_mount(&shm, "/dev/shm", false, 0));
        let seccomp = match &sc.seccomp {
            Some(p) => {
                crate::oci::security::seccomp(p.profile_type, &p.localhost_ref, sc.privileged)?
            }
            None => None,
        };
        let args = image.args(&[], &[]);
        if args.is_empty() {
            return Err(RuntimeError::FailedPrecondition(format!(
                "sandbox image {}: has no entrypoint or cmd",
                self.config.sandbox_image
            )));
        }
        let input = spec::SpecInput {
            rootfs: &rootfs,
            readonly_rootfs: true,
            hostname: &hostname,
            args,
            env: image.env.clone(),
            cwd: "/".into(),
            user: spec::User {
                uid: sc.run_as_user.as_ref().map_or(65535, |u| u.value as u32),
                gid: sc.run_as_group.as_ref().map_or(65535, |g| g.value as u32),
                additional_gids: vec![],
            },
            namespaces: spec::Namespaces { list: namespaces },
            cgroups_path: spec::cgroups_path(
                self.config.cgroup_driver == crate::config::CgroupDriver::Systemd,
                &linux.cgroup_parent,
                id,
            ),
            mounts,
            resources: linux.resources.as_ref(),
            privileged: sc.privileged,
            caps_add: vec![],
            caps_drop: vec![],
            no_new_privs: true,
            seccomp,
            masked_paths: None,
            readonly_paths: None,
            sysctls: linux.sysctls.clone(),
            devices: vec![],
            tty: false,
            annotations: HashMap::from([
                (
                    "io.kubernetes.cri.container-type".to_owned(),
                    "sandbox".to_owned(),
                ),
                ("io.kubernetes.cri.sandbox-id".to_owned(), id.to_owned()),
            ]),
        };
        let spec = spec::build(&input)?;
        let cfg = dir.join("config.json");
        std::fs::write(&cfg, spec.to_string()).map_err(io("write", &cfg))?;
        let created = backend
            .create(&CreateOptions {
                id: id.to_owned(),
                bundle: dir.clone(),
                log_path: dir.join("pause.log"),
                exit_file: dir.join("exit"),
                socket_dir: self.socket_dir(id),
                tty: false,
                stdin: false,
            })
            .await?;
        self.sandboxes.update(id, |r| {
            r.pid = created.pid;
            r.monitor_pid = created.monitor_pid;
        })?;
        backend.start(id).await?;
        self.sandboxes.update(id, |r| r.ready = true)?;
        tracing::info!(id, pid = created.pid, "pod sandbox ready");
        Ok(())
    }
}

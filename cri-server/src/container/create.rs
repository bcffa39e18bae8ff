//! CreateContainer: validate, reserve the name, mount the rootfs from the image store, build the
//! OCI spec (joining the sandbox's namespaces) and create the container under its monitor.
//! Failure undoes everything through the same path as RemoveContainer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_cri::v1 as cri;
use prost::Message;
use serde_json::Value;

use crate::events::Kind;
use crate::oci::{CreateOptions, security, spec};
use crate::sandbox::SandboxRecord;
use crate::sandbox::run::{NODE, POD};

use super::error::{RuntimeError, io};
use super::imagecfg::{self, ImageConfig, signal_number};
use super::record::{ContainerRecord, State};
use super::runtime::{Runtime, new_id, now_ns};
use super::user;

fn required<'a>(v: Option<&'a str>, field: &str) -> Result<&'a str, RuntimeError> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(RuntimeError::InvalidArgument(format!("{field}: required"))),
    }
}

impl Runtime {
    /// CreateContainer.
    pub async fn create_container(
        self: &Arc<Self>,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox_config: Option<cri::PodSandboxConfig>,
    ) -> Result<String, RuntimeError> {
        if sandbox_id.is_empty() {
            return Err(RuntimeError::InvalidArgument(
                "pod_sandbox_id: required".into(),
            ));
        }
        let cname = required(
            config.metadata.as_ref().map(|m| m.name.as_str()),
            "config.metadata.name",
        )?;
        if cname.contains(['_', '/']) {
            return Err(RuntimeError::InvalidArgument(format!(
                "config.metadata.name: {cname:?} must not contain '_' or '/'"
            )));
        }
        let image = required(
            config.image.as_ref().map(|i| i.image.as_str()),
            "config.image.image",
        )?;
        let sandbox = self.sandboxes.get(sandbox_id)?;
        if !sandbox.ready {
            return Err(RuntimeError::FailedPrecondition(format!(
                "pod sandbox {} is not ready",
                sandbox.id
            )));
        }
        let (view, image_cfg) = ImageConfig::resolve(&self.images, image)?;
        let name = format!(
            "{cname}_{}_{}",
            sandbox.name,
            config.metadata.as_ref().map_or(0, |m| m.attempt)
        );
        let id = new_id()?;
        let log_path = match (&sandbox_config, config.log_path.is_empty()) {
            (_, true) => String::new(),
            (Some(sc), false) if !sc.log_directory.is_empty() => Path::new(&sc.log_directory)
                .join(&config.log_path)
                .display()
                .to_string(),
            _ => {
                let c = sandbox.decode_config();
                Path::new(&c.log_directory)
                    .join(&config.log_path)
                    .display()
                    .to_string()
            }
        };
        self.containers.add(ContainerRecord {
            id: id.clone(),
            sandbox_id: sandbox.id.clone(),
            name,
            config: config.encode_to_vec(),
            image: image.to_owned(),
            image_id: view.record.id.to_string(),
            image_ref: view
                .repo_digests
                .first()
                .cloned()
                .unwrap_or_else(|| view.record.id.to_string()),
            handler: sandbox.handler.clone(),
            state: State::Created,
            created_at: now_ns(),
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            pid: 0,
            monitor_pid: 0,
            log_path,
            stop_signal: signal_number(&image_cfg.stop_signal),
            uid: 0,
            gid: 0,
            gids: vec![],
        })?;
        let _guard = self.lock(&id).await;
        match self
            .setup_container(&id, &sandbox, &config, &view, &image_cfg)
            .await
        {
            Ok(()) => {
                self.events.container(&id, Kind::Created);
                Ok(id)
            }
            Err(e) => {
                tracing::warn!(id = %id, "CreateContainer failed, cleaning up: {e}");
                if let Err(c) = self.destroy_container(&id).await {
                    tracing::error!(id = %id, "cleanup after failed CreateContainer: {c}");
                }
                Err(e)
            }
        }
    }

    async fn setup_container(
        self: &Arc<Self>,
        id: &str,
        sandbox: &SandboxRecord,
        config: &cri::ContainerConfig,
        view: &crate::image::ImageView,
        image: &ImageConfig,
    ) -> Result<(), RuntimeError> {
        let rec = self.containers.get(id)?;
        let (_, backend) = self.backend(&rec.handler)?;
        let dir = self.container_dir(id);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let rootfs = dir.join("rootfs");
        imagecfg::mount_rootfs(&self.images, view, id, &rootfs)?;
        let linux = config.linux.clone().unwrap_or_default();
        let sc = linux.security_context.clone().unwrap_or_default();
        let user = user::resolve(
            &rootfs,
            &image.user,
            sc.run_as_user.as_ref().map(|u| u.value),
            &sc.run_as_username,
            sc.run_as_group.as_ref().map(|g| g.value),
            &sc.supplemental_groups,
        )?;
        let (uid, gid, gids) = (user.uid, user.gid, user.additional_gids.clone());
        let args = image.args(&config.command, &config.args);
        if args.is_empty() {
            return Err(RuntimeError::InvalidArgument(format!(
                "config.command: empty, and image {} has no entrypoint or cmd",
                rec.image
            )));
        }
        let mut env = image.env.clone();
        for kv in &config.envs {
            if kv.key.is_empty() {
                return Err(RuntimeError::InvalidArgument(
                    "config.envs: empty key".into(),
                ));
            }
            env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != kv.key);
            env.push(format!("{}={}", kv.key, kv.value));
        }
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        }
        let sdir = self.sandbox_dir(&sandbox.id);
        let sb_config = sandbox.decode_config();
        let sb_ns = crate::sandbox::run::ns_options(&sb_config);
        let ns = sc.namespace_options.clone().unwrap_or_default();
        let pause = format!("/proc/{}/ns", sandbox.pid);
        let mut namespaces = vec![("mount", String::new())];
        match ns.pid {
            NODE => {}
            POD => namespaces.push(("pid", format!("{pause}/pid"))),
            3 => {
                let target = self.containers.get(&ns.target_id).map_err(|_| {
                    RuntimeError::NotFound(format!(
                        "linux.security_context.namespace_options.target_id: container {:?} not found",
                        ns.target_id
                    ))
                })?;
                namespaces.push(("pid", format!("/proc/{}/ns/pid", target.pid)));
            }
            _ => namespaces.push(("pid", String::new())),
        }
        if sb_ns.ipc != NODE {
            namespaces.push(("ipc", format!("{pause}/ipc")));
        }
        if sb_ns.network != NODE {
            namespaces.push(("uts", format!("{pause}/uts")));
            namespaces.push(("network", sandbox.netns.clone()));
        }
        let mut mounts = vec![
            spec::bind_mount(
                &sdir.join("hostname"),
                "/etc/hostname",
                sc.readonly_rootfs,
                0,
            ),
            spec::bind_mount(
                &sdir.join("resolv.conf"),
                "/etc/resolv.conf",
                sc.readonly_rootfs,
                0,
            ),
            spec::bind_mount(&sdir.join("hosts"), "/etc/hosts", sc.readonly_rootfs, 0),
            spec::bind_mount(
                &if sb_ns.ipc == NODE {
                    PathBuf::from("/dev/shm")
                } else {
                    sdir.join("shm")
                },
                "/dev/shm",
                false,
                0,
            ),
        ];
        for (i, m) in config.mounts.iter().enumerate() {
            if m.container_path.is_empty() || !m.container_path.starts_with('/') {
                return Err(RuntimeError::InvalidArgument(format!(
                    "config.mounts[{i}].container_path: {:?} must be absolute",
                    m.container_path
                )));
            }
            if m.host_path.is_empty() {
                return Err(RuntimeError::InvalidArgument(format!(
                    "config.mounts[{i}].host_path: required"
                )));
            }
            let host = Path::new(&m.host_path);
            if !host.exists() {
                std::fs::create_dir_all(host).map_err(io("create mount source", host))?;
            }
            super::propagation::check(host, m.propagation).map_err(|e| {
                RuntimeError::InvalidArgument(format!("config.mounts[{i}].propagation: {e}"))
            })?;
            mounts.push(spec::bind_mount(
                host,
                &m.container_path,
                m.readonly,
                m.propagation,
            ));
        }
        let mut devices = Vec::new();
        for (i, d) in config.devices.iter().enumerate() {
            let (device, rule) =
                spec::device(Path::new(&d.host_path), &d.container_path, &d.permissions).map_err(
                    |e| RuntimeError::InvalidArgument(format!("config.devices[{i}]: {e}")),
                )?;
            devices.push(serde_json::json!({"device": device, "rule": rule}));
        }
        let seccomp = match &sc.seccomp {
            Some(p) => security::seccomp(p.profile_type, &p.localhost_ref, sc.privileged)?,
            None => None,
        };
        let caps = sc.capabilities.clone().unwrap_or_default();
        let hostname = std::fs::read_to_string(sdir.join("hostname")).unwrap_or_default();
        let cwd = if !config.working_dir.is_empty() {
            config.working_dir.clone()
        } else if !image.working_dir.is_empty() {
            image.working_dir.clone()
        } else {
            "/".into()
        };
        let input = spec::SpecInput {
            rootfs: &rootfs,
            readonly_rootfs: sc.readonly_rootfs,
            hostname: hostname.trim(),
            args,
            env,
            cwd,
            user,
            namespaces: spec::Namespaces { list: namespaces },
            cgroups_path: spec::cgroups_path(
                self.config.cgroup_driver == crate::config::CgroupDriver::Systemd,
                &sb_config
                    .linux
                    .as_ref()
                    .map(|l| l.cgroup_parent.clone())
                    .unwrap_or_default(),
                id,
            ),
            mounts,
            resources: linux.resources.as_ref(),
            privileged: sc.privileged,
            caps_add: caps.add_capabilities,
            caps_drop: caps.drop_capabilities,
            no_new_privs: sc.no_new_privs,
            seccomp,
            masked_paths: (!sc.masked_paths.is_empty()).then(|| sc.masked_paths.clone()),
            readonly_paths: (!sc.readonly_paths.is_empty()).then(|| sc.readonly_paths.clone()),
            sysctls: HashMap::new(),
            devices,
            tty: config.tty,
            annotations: HashMap::from([
                (
                    "io.kubernetes.cri.container-type".to_owned(),
                    "container".to_owned(),
                ),
                (
                    "io.kubernetes.cri.sandbox-id".to_owned(),
                    sandbox.id.clone(),
                ),
            ]),
        };
        let spec: Value = spec::build(&input)?;
        let cfg = dir.join("config.json");
        std::fs::write(&cfg, spec.to_string()).map_err(io("write", &cfg))?;
        let log_path = if rec.log_path.is_empty() {
            dir.join("unrequested.log")
        } else {
            PathBuf::from(&rec.log_path)
        };
        let created = backend
            .create(&CreateOptions {
                id: id.to_owned(),
                bundle: dir.clone(),
                log_path,
                exit_file: dir.join("exit"),
                socket_dir: self.socket_dir(id),
                tty: config.tty,
                stdin: config.stdin,
            })
            .await?;
        self.containers.update(id, |r| {
            r.pid = created.pid;
            r.monitor_pid = created.monitor_pid;
            r.uid = uid;
            r.gid = gid;
            r.gids = gids;
        })?;
        Ok(())
    }
}

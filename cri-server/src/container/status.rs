//! ContainerStatus, ListContainers, UpdateContainerResources and ReopenContainerLog.

use std::sync::Arc;

use k8s_cri::v1 as cri;
use prost::Message;

use crate::sandbox::status::labels_match;

use super::error::RuntimeError;
use super::record::{ContainerRecord, State};
use super::runtime::Runtime;

impl ContainerRecord {
    /// The CRI config this container was created with.
    pub fn decode_config(&self) -> cri::ContainerConfig {
        cri::ContainerConfig::decode(self.config.as_slice()).unwrap_or_default()
    }

    /// ContainerStatus.
    pub fn status(&self) -> cri::ContainerStatus {
        let c = self.decode_config();
        cri::ContainerStatus {
            id: self.id.clone(),
            metadata: c.metadata.clone(),
            state: self.state.cri(),
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            exit_code: self.exit_code,
            image: Some(cri::ImageSpec {
                image: self.image.clone(),
                ..Default::default()
            }),
            image_ref: self.image_ref.clone(),
            reason: self.reason.clone(),
            message: self.message.clone(),
            labels: c.labels.clone(),
            annotations: c.annotations.clone(),
            mounts: c.mounts.clone(),
            log_path: self.log_path.clone(),
            resources: c.linux.as_ref().and_then(|l| l.resources.clone()).map(|r| {
                cri::ContainerResources {
                    linux: Some(r),
                    ..Default::default()
                }
            }),
            image_id: self.image_id.clone(),
            user: Some(cri::ContainerUser {
                linux: Some(cri::LinuxContainerUser {
                    uid: i64::from(self.uid),
                    gid: i64::from(self.gid),
                    supplemental_groups: self.gids.iter().map(|g| i64::from(*g)).collect(),
                }),
            }),
        }
    }

    /// ListContainers entry.
    pub fn summary(&self) -> cri::Container {
        let c = self.decode_config();
        cri::Container {
            id: self.id.clone(),
            pod_sandbox_id: self.sandbox_id.clone(),
            metadata: c.metadata,
            image: Some(cri::ImageSpec {
                image: self.image.clone(),
                ..Default::default()
            }),
            image_ref: self.image_ref.clone(),
            state: self.state.cri(),
            created_at: self.created_at,
            labels: c.labels,
            annotations: c.annotations,
            image_id: self.image_id.clone(),
        }
    }
}

impl Runtime {
    /// A container record with any recorded exit folded in.
    pub fn container(&self, id: &str) -> Result<ContainerRecord, RuntimeError> {
        let c = self.containers.get(id)?;
        Ok(self.refresh_container(&c).unwrap_or(c))
    }

    /// ListContainers with the CRI filter.
    pub fn list_containers(&self, f: Option<&cri::ContainerFilter>) -> Vec<cri::Container> {
        let mut out: Vec<cri::Container> = self
            .containers
            .list()
            .into_iter()
            .map(|c| self.refresh_container(&c).unwrap_or(c))
            .filter(|c| match f {
                None => true,
                Some(f) => {
                    (f.id.is_empty() || c.id.starts_with(&f.id))
                        && (f.pod_sandbox_id.is_empty()
                            || c.sandbox_id.starts_with(&f.pod_sandbox_id))
                        && f.state.as_ref().is_none_or(|s| s.state == c.state.cri())
                }
            })
            .map(|c| c.summary())
            .filter(|c| f.is_none_or(|f| labels_match(&c.labels, &f.label_selector)))
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        out
    }

    /// UpdateContainerResources.
    pub async fn update_resources(
        self: &Arc<Self>,
        id: &str,
        resources: Option<cri::LinuxContainerResources>,
    ) -> Result<(), RuntimeError> {
        let c = self.container(id)?;
        let _guard = self.lock(&c.id).await;
        let Some(r) = resources else { return Ok(()) };
        if matches!(c.state, State::Running | State::Created) {
            let (_, backend) = self.backend(&c.handler)?;
            backend
                .update(&c.id, &crate::oci::spec::resources(Some(&r)))
                .await?;
        }
        self.containers.update(&c.id, |rec| {
            let mut cfg = rec.decode_config();
            cfg.linux.get_or_insert_with(Default::default).resources = Some(r);
            rec.config = cfg.encode_to_vec();
        })?;
        Ok(())
    }

    /// ReopenContainerLog: asks the monitor (ctl fifo) to reopen the log file.
    pub fn reopen_log(&self, id: &str) -> Result<(), RuntimeError> {
        let c = self.container(id)?;
        if c.state != State::Running {
            return Err(RuntimeError::FailedPrecondition(format!(
                "container {} is not running",
                c.id
            )));
        }
        let fifo = self.socket_dir(&c.id).join("ctl");
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .map_err(super::error::io("open ctl fifo", &fifo))?;
        f.write_all(b"2 0 0\n")
            .map_err(super::error::io("write ctl fifo", &fifo))
    }
}

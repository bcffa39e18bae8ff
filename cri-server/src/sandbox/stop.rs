//! StopPodSandbox (idempotent: containers killed, pause stopped, network detached, netns gone)
//! and RemovePodSandbox (plus containers, runtime state, mounts, files and the record). The same
//! teardown undoes a failed RunPodSandbox.

use std::sync::Arc;
use std::time::Duration;

use crate::container::error::RuntimeError;
use crate::container::runtime::{Runtime, process_alive};
use crate::network::netns;

use super::files;
use super::run::network_request;

impl Runtime {
    /// StopPodSandbox.
    pub async fn stop_sandbox(self: &Arc<Self>, id: &str) -> Result<(), RuntimeError> {
        let s = self.sandboxes.get(id)?;
        for c in self
            .containers
            .list()
            .into_iter()
            .filter(|c| c.sandbox_id == s.id)
        {
            self.stop_container(&c.id, 0).await?;
        }
        let _guard = self.lock(&s.id).await;
        self.teardown_sandbox(&s.id, false).await
    }

    /// RemovePodSandbox: idempotent, an unknown sandbox is fine.
    pub async fn remove_sandbox(self: &Arc<Self>, id: &str) -> Result<(), RuntimeError> {
        let s = match self.sandboxes.get(id) {
            Ok(s) => s,
            Err(_) => return Ok(()),
        };
        self.forget_cpu_sample(&s.id);
        for c in self
            .containers
            .list()
            .into_iter()
            .filter(|c| c.sandbox_id == s.id)
        {
            self.remove_container(&c.id).await?;
        }
        let _guard = self.lock(&s.id).await;
        self.teardown_sandbox(&s.id, true).await
    }

    /// Stops the pause container and detaches the network; with `remove` also deletes the
    /// runtime state, mounts, files and record. Every step tolerates being already done.
    pub(crate) async fn teardown_sandbox(
        self: &Arc<Self>,
        id: &str,
        remove: bool,
    ) -> Result<(), RuntimeError> {
        let s = self.sandboxes.get(id)?;
        let (_, backend) = self.backend(&s.handler)?;
        let dir = self.sandbox_dir(id);
        if s.monitor_pid > 0 && process_alive(s.monitor_pid) {
            match backend.kill(id, 9, true).await {
                Ok(()) | Err(crate::oci::OciError::NotFound { .. }) => {}
                Err(e) => tracing::warn!(id, "kill pause: {e}"),
            }
            // The monitor records the exit and ends; wait for that (bounded).
            for _ in 0..1000 {
                if !process_alive(s.monitor_pid) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        if s.network_attached || !s.netns.is_empty() {
            let config = s.decode_config();
            let req = network_request(id, &s.netns, &config);
            let rt = self.clone();
            let sid = id.to_owned();
            tokio::spawn(async move {
                rt.cni.teardown(&req).await?;
                rt.sandboxes.update(&sid, |r| r.network_attached = false)?;
                Ok::<_, RuntimeError>(())
            })
            .await
            .map_err(|e| RuntimeError::Internal(format!("CNI task: {e}")))??;
        }
        if !s.netns.is_empty() {
            netns::remove_path(std::path::Path::new(&s.netns))?;
            self.sandboxes.update(id, |r| r.netns.clear())?;
        }
        if s.ready {
            self.sandboxes.update(id, |r| r.ready = false)?;
        }
        if !remove {
            return Ok(());
        }
        backend.delete(id).await?;
        files::unmount_all(&dir.join("rootfs"))?;
        self.images.snapshotter().remove_rootfs(id)?;
        files::unmount_all(&dir.join("shm"))?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(crate::container::error::io("remove", &dir)(e)),
        }
        let sock = self.socket_dir(id);
        if let Err(e) = std::fs::remove_dir_all(&sock)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(crate::container::error::io("remove", &sock)(e));
        }
        self.sandboxes.remove(id)?;
        tracing::info!(id, "removed pod sandbox");
        Ok(())
    }
}

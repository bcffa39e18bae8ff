//! StartContainer, StopContainer (stop signal, grace period, then SIGKILL), RemoveContainer and
//! the idempotent teardown shared with a failed CreateContainer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

use crate::events::Kind;
use crate::oci::OciError;
use crate::sandbox::files;

use super::error::RuntimeError;
use super::record::{ContainerRecord, State};
use super::runtime::{Runtime, now_ns, process_alive};

impl Runtime {
    /// StartContainer.
    pub async fn start_container(self: &Arc<Self>, id: &str) -> Result<(), RuntimeError> {
        let c = self.containers.get(id)?;
        let _guard = self.lock(&c.id).await;
        let c = self.containers.get(&c.id)?;
        if c.state != State::Created {
            return Err(RuntimeError::FailedPrecondition(format!(
                "container {} is {:?}, not created",
                c.id, c.state
            )));
        }
        let (_, backend) = self.backend(&c.handler)?;
        // Taken before `start`: a quick process may have exited by the time it returns.
        let started_at = now_ns();
        if let Err(e) = backend.start(&c.id).await {
            self.containers.update(&c.id, |r| {
                r.state = State::Exited;
                r.exit_code = 128;
                r.finished_at = now_ns();
                r.reason = "StartError".into();
                r.message = e.to_string();
            })?;
            return Err(e.into());
        }
        self.containers.update(&c.id, |r| {
            r.state = State::Running;
            r.started_at = started_at;
        })?;
        self.events.container(&c.id, Kind::Started);
        Ok(())
    }

    /// Waits until the container is found exited, up to `timeout`.
    async fn wait_exit(&self, id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let Ok(c) = self.containers.get(id) else {
                return true;
            };
            if c.state != State::Running {
                return true;
            }
            if self.refresh_container(&c).is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// StopContainer: idempotent; `timeout` seconds of grace after the stop signal.
    ///
    /// The grace period is waited without the container's lock, so a forced stop (a second
    /// StopContainer with timeout 0, StopPodSandbox, RemoveContainer, `kubeadm reset`) kills
    /// at once instead of queueing behind a stop that waits for a process ignoring SIGTERM.
    pub async fn stop_container(
        self: &Arc<Self>,
        id: &str,
        timeout: i64,
    ) -> Result<(), RuntimeError> {
        let id = self.containers.get(id)?.id;
        if timeout > 0 {
            let Some((c, guard)) = self.begin_stop(&id).await? else {
                return Ok(());
            };
            let (_, backend) = self.backend(&c.handler)?;
            match backend.kill(&c.id, c.stop_signal, false).await {
                Ok(()) | Err(OciError::NotFound { .. }) => {}
                Err(e) => tracing::warn!(id = %c.id, "stop signal: {e}"),
            }
            drop(guard);
            if self
                .wait_exit(&id, Duration::from_secs(timeout as u64))
                .await
            {
                return Ok(());
            }
        }
        let Some((c, _guard)) = self.begin_stop(&id).await? else {
            return Ok(());
        };
        let (_, backend) = self.backend(&c.handler)?;
        match backend.kill(&c.id, 9, true).await {
            Ok(()) | Err(OciError::NotFound { .. }) => {}
            Err(e) => tracing::warn!(id = %c.id, "SIGKILL: {e}"),
        }
        if !self.wait_exit(&c.id, Duration::from_secs(10)).await {
            return Err(RuntimeError::Internal(format!(
                "container {} did not exit 10s after SIGKILL",
                c.id
            )));
        }
        Ok(())
    }

    /// Takes the container's lock; a running container is returned with the lock held, a
    /// created (never started) one is killed and recorded as exited, and anything else needs
    /// no stop (`None`).
    async fn begin_stop(
        self: &Arc<Self>,
        id: &str,
    ) -> Result<Option<(ContainerRecord, OwnedMutexGuard<()>)>, RuntimeError> {
        let guard = self.lock(id).await;
        let c = self.containers.get(id)?;
        match c.state {
            State::Running => Ok(Some((c, guard))),
            State::Created => {
                // Never started: kill the waiting init and record the exit.
                let (_, backend) = self.backend(&c.handler)?;
                let _ = backend.kill(&c.id, 9, true).await;
                self.containers.update(&c.id, |r| {
                    r.state = State::Exited;
                    r.finished_at = now_ns();
                    r.exit_code = 137;
                    r.reason = "Error".into();
                })?;
                self.events.container(&c.id, Kind::Stopped);
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// RemoveContainer: idempotent; a running container is killed first.
    pub async fn remove_container(self: &Arc<Self>, id: &str) -> Result<(), RuntimeError> {
        let c = match self.containers.get(id) {
            Ok(c) => c,
            Err(_) => return Ok(()),
        };
        if matches!(c.state, State::Running | State::Created) {
            self.stop_container(&c.id, 0).await?;
        }
        let _guard = self.lock(&c.id).await;
        self.destroy_container(&c.id).await?;
        self.forget_cpu_sample(&c.id);
        self.events.container(&c.id, Kind::Deleted);
        Ok(())
    }

    /// Deletes runtime state, monitor, mounts, rootfs, files and the record.
    pub(crate) async fn destroy_container(&self, id: &str) -> Result<(), RuntimeError> {
        let c = self.containers.get(id)?;
        let (_, backend) = self.backend(&c.handler)?;
        backend.delete(id).await?;
        // The monitor ends once the init has gone; give it a moment to write the exit file.
        for _ in 0..400 {
            if !process_alive(c.monitor_pid) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let dir = self.container_dir(id);
        files::unmount_all(&dir.join("rootfs"))?;
        self.images.snapshotter().remove_rootfs(id)?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(super::error::io("remove", &dir)(e)),
        }
        let sock = self.socket_dir(id);
        if let Err(e) = std::fs::remove_dir_all(&sock)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(super::error::io("remove", &sock)(e));
        }
        self.containers.remove(id)?;
        Ok(())
    }
}

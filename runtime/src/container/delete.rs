//! `kill` and `delete`: signal the init (or every process of the cgroup), and tear a stopped
//! container down: poststop hooks, cgroup, state directory.

use std::time::Duration;

use super::{ContainerError, Ctx, ErrorKind, Runtime, cgroup, err, signal_pid, sys, wait_gone};
use crate::hooks::{self, HookKind};
use crate::state::{State, Status};

/// How long `delete --force` waits for killed processes to disappear.
const KILL: i32 = libc::SIGKILL;
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

impl Runtime {
    /// `kill`: signal the init, or with `all` every process in the container's cgroup.
    pub fn kill(&self, id: &str, sig: i32, all: bool) -> Result<(), ContainerError> {
        let loaded = self.load(id)?;
        let st = &loaded.state;
        match loaded.status {
            Status::Stopped | Status::Creating if !all => {
                return Err(err(
                    id,
                    ErrorKind::WrongState {
                        action: "kill",
                        status: loaded.status,
                    },
                ));
            }
            _ => {}
        }
        if all {
            let cg = cgroup(st).ctx(id)?;
            for pid in cg.pids().ctx(id)? {
                signal_pid(pid, sig)
                    .map_err(sys(format!("kill({pid}, {sig})")))
                    .ctx(id)?;
            }
            if loaded.status == Status::Paused && sig == KILL {
                // Frozen tasks only die once thawed.
                cg.thaw().ctx(id)?;
            }
            return Ok(());
        }
        signal_pid(st.pid, sig)
            .map_err(sys(format!("kill({}, {sig})", st.pid)))
            .ctx(id)
    }

    /// `delete`: a running or paused container needs `force`; a created one is killed.
    /// Deleting a missing container with `force` only removes a leftover directory.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), ContainerError> {
        let loaded = match self.load(id) {
            Ok(l) => l,
            Err(e)
                if matches!(
                    e.kind,
                    ErrorKind::State(crate::state::StateError::NotFound { .. })
                ) =>
            {
                // An aborted create may leave a directory without a state file.
                self.store.remove(id).ctx(id)?;
                return if force { Ok(()) } else { Err(e) };
            }
            Err(e) => return Err(e),
        };
        match loaded.status {
            Status::Running | Status::Paused if !force => {
                return Err(err(
                    id,
                    ErrorKind::Invalid(format!(
                        "cannot delete a {} container without --force",
                        loaded.status
                    )),
                ));
            }
            Status::Stopped => {}
            _ => self.kill_all(&loaded.state, loaded.status == Status::Paused)?,
        }
        self.destroy(&loaded.state)
    }

    /// SIGKILL every process of the container and wait for the init to go away.
    pub(crate) fn kill_all(&self, st: &State, paused: bool) -> Result<(), ContainerError> {
        let id = st.id.as_str();
        signal_pid(st.pid, KILL).map_err(sys("kill init")).ctx(id)?;
        if let Ok(cg) = cgroup(st) {
            for pid in cg.pids().unwrap_or_default() {
                let _ = signal_pid(pid, KILL);
            }
            if paused {
                cg.thaw().ctx(id)?;
            }
        }
        if !wait_gone(st.pid, st.pid_start, KILL_TIMEOUT) {
            return Err(err(
                id,
                ErrorKind::Invalid(format!("init {} did not exit after SIGKILL", st.pid)),
            ));
        }
        Ok(())
    }

    /// Releases a stopped container: leftover processes, poststop hooks, cgroup, state.
    pub(crate) fn destroy(&self, st: &State) -> Result<(), ContainerError> {
        let id = st.id.as_str();
        if let Ok(cg) = cgroup(st) {
            // Without a private pid namespace, children can outlive the init.
            let pids = cg.pids().unwrap_or_default();
            for pid in &pids {
                let _ = signal_pid(*pid, KILL);
            }
            if !pids.is_empty() {
                let _ = cg.thaw();
            }
            if let Err(e) = hooks::run(&st.spec, HookKind::Poststop, &st.oci(Status::Stopped)) {
                tracing::warn!(id, "{e}");
            }
            cg.destroy().ctx(id)?;
        } else if let Err(e) = hooks::run(&st.spec, HookKind::Poststop, &st.oci(Status::Stopped)) {
            tracing::warn!(id, "{e}");
        }
        self.store.remove(id).ctx(id)
    }
}

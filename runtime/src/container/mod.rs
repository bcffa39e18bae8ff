//! Container lifecycle: create, start, kill, delete, exec, pause/resume, update.
//!
//! [`Runtime`] is the entry point: it owns the state store (`--root`) and implements each
//! runc command as a method (one file per concern). Status is always derived from the live
//! system: the init's pid *and* start time (pid reuse), the exec fifo and the freezer.

mod create;
mod delete;
mod exec;
mod foreground;
mod ops;
mod start;

pub use create::CreateOptions;
pub use exec::ExecOptions;
pub use foreground::exit_code;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kina_cgroups::{CgroupError, CgroupManager, FreezerState};
use nix::unistd::Pid;

use crate::state::{self, State, StateError, StateStore, Status};

/// A failed lifecycle operation, naming the container.
#[derive(Debug, thiserror::Error)]
#[error("container {id}: {kind}")]
pub struct ContainerError {
    pub id: String,
    pub kind: ErrorKind,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cgroup: {0}")]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Namespace(#[from] crate::namespaces::NamespaceError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Sync(#[from] crate::init::sync::SyncError),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    #[error(transparent)]
    Process(#[from] crate::process::ProcessError),
    #[error("{op}: {source}")]
    Sys { op: String, source: nix::Error },
    #[error("{op}: {source}")]
    Io { op: String, source: std::io::Error },
    #[error("cannot {action} a {status} container")]
    WrongState {
        action: &'static str,
        status: Status,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Attaches the container id to errors.
pub(crate) trait Ctx<T> {
    fn ctx(self, id: &str) -> Result<T, ContainerError>;
}

impl<T, E: Into<ErrorKind>> Ctx<T> for Result<T, E> {
    fn ctx(self, id: &str) -> Result<T, ContainerError> {
        self.map_err(|e| ContainerError {
            id: id.to_string(),
            kind: e.into(),
        })
    }
}

pub(crate) fn err(id: &str, kind: ErrorKind) -> ContainerError {
    ContainerError {
        id: id.to_string(),
        kind,
    }
}

pub(crate) fn sys(op: impl Into<String>) -> impl FnOnce(nix::Error) -> ErrorKind {
    move |source| ErrorKind::Sys {
        op: op.into(),
        source,
    }
}

pub(crate) fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> ErrorKind {
    move |source| ErrorKind::Io {
        op: op.into(),
        source,
    }
}

/// The runtime: a state directory plus global options.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub store: StateStore,
    /// `--systemd-cgroup`: cgroupsPath is in systemd's slice:prefix:name form.
    pub systemd_cgroup: bool,
}

/// A container loaded from the store with its live status.
#[derive(Debug)]
pub struct Loaded {
    pub state: State,
    pub status: Status,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>, systemd_cgroup: bool) -> Self {
        Self {
            store: StateStore::new(root),
            systemd_cgroup,
        }
    }

    /// Loads a container and derives its live status.
    pub fn load(&self, id: &str) -> Result<Loaded, ContainerError> {
        crate::spec::validate_id(id).ctx(id)?;
        let state = self.store.load(id).ctx(id)?;
        let status = self.status_of(&state);
        Ok(Loaded { state, status })
    }

    /// The live status of a recorded container.
    pub fn status_of(&self, st: &State) -> Status {
        if st.status == Status::Creating && st.pid == 0 {
            return Status::Creating;
        }
        if !state::process_alive(st.pid, st.pid_start) {
            return Status::Stopped;
        }
        if let Ok(m) = cgroup(st)
            && matches!(m.state(), Ok(FreezerState::Frozen | FreezerState::Freezing))
        {
            return Status::Paused;
        }
        if self.store.fifo(&st.id).exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    /// All containers with their live status (unreadable entries are skipped with a warning).
    pub fn list(&self) -> Result<Vec<Loaded>, ContainerError> {
        let ids = self.store.list().ctx("*")?;
        let mut out = Vec::new();
        for id in ids {
            match self.load(&id) {
                Ok(l) => out.push(l),
                Err(e) => tracing::warn!("skipping {id}: {e}"),
            }
        }
        Ok(out)
    }
}

/// The cgroup manager of a recorded container.
pub(crate) fn cgroup(st: &State) -> Result<Box<dyn CgroupManager>, CgroupError> {
    kina_cgroups::manager(&st.cgroup_path)
}

/// Sends signal number `sig` to a pid, ignoring ESRCH (already gone).
pub(crate) fn signal_pid(pid: i32, sig: i32) -> Result<(), nix::Error> {
    if pid <= 0 {
        return Ok(());
    }
    match crate::sys::lifecycle::kill_raw(pid, sig) {
        Err(nix::Error::ESRCH) => Ok(()),
        r => r,
    }
}

/// Waits until the recorded init is gone (exited or zombie), up to `timeout`.
pub(crate) fn wait_gone(pid: i32, start: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_micros(50);
    while state::process_alive(pid, start) {
        if Instant::now() >= deadline {
            return false;
        }
        // Reap it if it happens to be our child (run/exec foreground, or cleanup after create).
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(10));
    }
    true
}

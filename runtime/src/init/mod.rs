//! The init stage: the steps the container process runs between fork and execve.
//!
//! Process tree during `create`:
//! - the runtime (parent) forks **stage-1**, puts it in the cgroup, then answers its requests;
//! - stage-1 joins namespaces given by path, creates the user namespace (the parent writes the
//!   id maps), unshares the other new namespaces, forks **stage-2**, reports its pid and exits;
//! - stage-2 is the container init (PID 1 of a new pid namespace): it runs the steps of
//!   [`steps`], reports `Ready`, blocks on the exec fifo until `start`, then execs.
//!
//! `exec` uses the same two stages ([`exec`]) with the namespaces of the running init.
//! Every error in a child is sent to the parent over the sync socket ([`sync`]) and the child
//! exits, so the command that started it prints the error and cleans up.

pub mod exec;
pub mod steps;
pub mod sync;

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::namespaces::{self, NamespaceError};
use crate::sys::lifecycle::{self, Forked};
use sync::{Msg, SyncError, SyncSocket};

/// Errors inside the container's init (reported to the parent as text).
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Rootfs(Box<crate::rootfs::RootfsError>),
    #[error(transparent)]
    Process(#[from] crate::process::ProcessError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    #[error("{op}: {source}")]
    Sys { op: String, source: nix::Error },
    #[error("{0}")]
    Invalid(String),
}

impl From<crate::rootfs::RootfsError> for InitError {
    fn from(e: crate::rootfs::RootfsError) -> Self {
        InitError::Rootfs(Box::new(e))
    }
}

pub(crate) fn sys_err(op: impl Into<String>) -> impl FnOnce(nix::Error) -> InitError {
    move |source| InitError::Sys {
        op: op.into(),
        source,
    }
}

/// Everything the container init needs, prepared by the parent before forking.
#[derive(Debug)]
pub struct InitConfig<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    /// O_PATH descriptor of the exec fifo, reopened write-only via /proc/self/fd after setup.
    pub fifo: BorrowedFd<'a>,
    /// The console socket (external `--console-socket` or the runtime's own for `run -t`).
    pub console: Option<BorrowedFd<'a>>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// Number of fds after stdio passed to the container (`--preserve-fds`, LISTEN_FDS).
    pub preserve_fds: u32,
    /// The signal mask to restore in the children (the foreground parent blocks signals).
    pub sigmask: Option<SigSet>,
}

/// Restores the caller's signal mask in a freshly forked child.
pub(crate) fn restore_sigmask(mask: Option<&SigSet>) {
    if let Some(m) = mask {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(m), None);
    }
}

/// Stage-1 of `create`: never returns. Errors go to the parent over `sync`.
pub fn stage1(cfg: &InitConfig<'_>, sync: &SyncSocket) -> ! {
    restore_sigmask(cfg.sigmask.as_ref());
    // Die with the runtime if it dies before we are done.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    match stage1_steps(cfg, sync) {
        Ok(Forked::Child) => {
            let code = match steps::container_init(cfg, sync) {
                Ok(never) => match never {},
                Err(e) => {
                    report(sync, &e);
                    1
                }
            };
            lifecycle::exit_now(code)
        }
        Ok(Forked::Parent(_)) => lifecycle::exit_now(0),
        Err(e) => {
            report(sync, &e);
            lifecycle::exit_now(1)
        }
    }
}

fn report(sync: &SyncSocket, e: &InitError) {
    sync.send_error(e.to_string());
}

fn stage1_steps(cfg: &InitConfig<'_>, sync: &SyncSocket) -> Result<Forked, InitError> {
    sync.expect(Msg::Go)?;
    // Paths first (user namespace first among them), opened before any setns.
    for ns in namespaces::open_spec_paths(cfg.spec)? {
        ns.enter()?;
    }
    if crate::spec::has_new_namespace(cfg.spec, LinuxNamespaceType::User) {
        namespaces::unshare(namespaces::clone_flag(LinuxNamespaceType::User))?;
        // Our maps are written by the parent (it has the privileges in the parent namespace).
        sync.send(&Msg::NeedMaps)?;
        sync.expect(Msg::MapsDone)?;
        become_root_if_mapped()?;
    }
    let flags = namespaces::new_namespace_flags(cfg.spec);
    namespaces::unshare(flags)?;
    if crate::spec::has_new_namespace(cfg.spec, LinuxNamespaceType::Time) {
        namespaces::write_time_offsets(cfg.spec)?;
    }
    let forked = lifecycle::fork().map_err(sys_err("fork container init"))?;
    if let Forked::Parent(pid) = forked {
        sync.send(&Msg::Pid { pid: pid.as_raw() })?;
    }
    Ok(forked)
}

/// Inside a new user namespace: become uid/gid 0 when 0 is mapped (runc does the same), so
/// files created during setup belong to the container's root.
fn become_root_if_mapped() -> Result<(), InitError> {
    use nix::unistd::{Gid, Uid, setresgid, setresuid};
    let mapped = |file: &str| {
        std::fs::read_to_string(file)
            .map(|m| m.lines().any(|l| l.split_whitespace().next() == Some("0")))
            .unwrap_or(false)
    };
    if mapped("/proc/self/gid_map") {
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .map_err(sys_err("setresgid(0)"))?;
    }
    if mapped("/proc/self/uid_map") {
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .map_err(sys_err("setresuid(0)"))?;
    }
    Ok(())
}

/// Number of inherited fds to keep open for the container: `--preserve-fds` plus LISTEN_FDS.
pub fn listen_fds() -> u32 {
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The raw number of a borrowed fd (for /proc/self/fd paths).
pub(crate) fn raw(fd: BorrowedFd<'_>) -> i32 {
    fd.as_raw_fd()
}

//! The `exec` stages: join the running container's namespaces (user first) and cgroup, fork
//! into its pid namespace, apply the process settings and execve. The sync socket is
//! close-on-exec: EOF without an error message tells the parent that execve succeeded.

use std::convert::Infallible;
use std::os::fd::BorrowedFd;

use nix::sys::signal::SigSet;
use oci_spec::runtime::{Process, Spec};

use super::sync::{Msg, SyncSocket};
use super::{InitError, restore_sigmask, steps, sys_err};
use crate::namespaces;
use crate::sys::lifecycle::{self, Forked};

/// What the exec'd process needs, prepared by the parent.
#[derive(Debug)]
pub struct ExecConfig<'a> {
    /// The container init's pid (its /proc/PID/ns/* are joined).
    pub init_pid: i32,
    pub process: &'a Process,
    /// The container's config (seccomp profile).
    pub spec: &'a Spec,
    pub console: Option<BorrowedFd<'a>>,
    pub preserve_fds: u32,
    pub sigmask: Option<SigSet>,
}

/// Stage-1 of `exec`: never returns.
pub fn stage1(cfg: &ExecConfig<'_>, sync: &SyncSocket) -> ! {
    restore_sigmask(cfg.sigmask.as_ref());
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let result =
        join(cfg, sync).and_then(|_| lifecycle::fork().map_err(sys_err("fork exec process")));
    match result {
        Ok(Forked::Parent(pid)) => {
            let code = i32::from(sync.send(&Msg::Pid { pid: pid.as_raw() }).is_err());
            lifecycle::exit_now(code)
        }
        Ok(Forked::Child) => {
            let Err(e) = stage2(cfg);
            sync.send_error(e.to_string());
            lifecycle::exit_now(127)
        }
        Err(e) => {
            sync.send_error(e.to_string());
            lifecycle::exit_now(1)
        }
    }
}

fn join(cfg: &ExecConfig<'_>, sync: &SyncSocket) -> Result<(), InitError> {
    sync.expect(Msg::Go)?;
    for ns in namespaces::open_process_namespaces(cfg.init_pid)? {
        ns.enter()?;
    }
    Ok(())
}

fn stage2(cfg: &ExecConfig<'_>) -> Result<Infallible, InitError> {
    let process = cfg.process;
    nix::unistd::setsid().map_err(sys_err("setsid"))?;
    if let Some(sock) = cfg.console {
        let size = process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        crate::console::setup_container_console(sock, size)?;
    }
    crate::process::prepare(process, cfg.spec)?;
    steps::chdir(process)?;
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    let seccomp = cfg.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    if no_new_privs {
        crate::process::set_no_new_privs()?;
    } else if let Some(profile) = seccomp {
        crate::process::seccomp::load(profile)?;
    }
    crate::process::set_identity_and_caps(process)?;
    let program = steps::find_program(process)?;
    let (argv, envp) = steps::exec_args(process)?;
    if let (true, Some(profile)) = (no_new_privs, seccomp) {
        crate::process::seccomp::load(profile)?;
    }
    steps::exec(&program, &argv, &envp, cfg.preserve_fds)
}

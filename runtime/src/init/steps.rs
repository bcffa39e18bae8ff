//! The container init's steps, in order: session, rootfs, hooks, pivot, console, hostname,
//! finalize, process settings, identity, ready, exec fifo, exec.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use super::sync::{Msg, SyncSocket};
use super::{InitConfig, InitError, raw, sys_err};
use crate::hooks::{self, HookKind};
use crate::sys::lifecycle;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs in stage-2 (PID 1 of the container). Returns only on error.
pub fn container_init(cfg: &InitConfig<'_>, sync: &SyncSocket) -> Result<Infallible, InitError> {
    let spec = cfg.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| InitError::Invalid("process missing".into()))?;
    nix::unistd::setsid().map_err(sys_err("setsid"))?;
    if !cfg.no_new_keyring {
        lifecycle::join_session_keyring(&format!("_ses.{}", cfg.id))
            .map_err(sys_err("join session keyring"))?;
    }
    prepare_rootfs(cfg, sync)?;
    if let Some(sock) = cfg.console {
        let size = process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        crate::console::setup_container_console(sock, size)?;
    }
    set_hostname(spec)?;
    crate::rootfs::finalize(spec)?;
    crate::process::prepare(process, spec)?;
    chdir(process)?;
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    if no_new_privs {
        crate::process::set_no_new_privs()?;
    } else if let Some(profile) = seccomp {
        // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: load before dropping caps.
        crate::process::seccomp::load(profile)?;
    }
    crate::process::set_identity_and_caps(process)?;
    let program = find_program(process)?;
    let (argv, envp) = exec_args(process)?;
    sync.send(&Msg::Ready)?;
    let fifo = wait_for_start(cfg)?;
    // Steps that belong to `start`: their failure is reported to it through the fifo.
    let started = (|| {
        if let (true, Some(profile)) = (no_new_privs, seccomp) {
            crate::process::seccomp::load(profile)?;
        }
        run_container_hooks(spec, cfg, HookKind::StartContainer)
    })();
    report_start(&fifo, started.as_ref().err())?;
    started?;
    let err = match exec(&program, &argv, &envp, cfg.preserve_fds) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // `start` has returned and nobody reads the sync socket any more: the container's stderr
    // (its log under a CRI) is the only place the error can go, as with runc. Typical cause: a
    // program whose ELF interpreter or `#!` interpreter is missing from the rootfs.
    let _ = nix::unistd::write(
        std::io::stderr(),
        format!("kina-runtime: {err}\n").as_bytes(),
    );
    Err(err)
}

/// Mounts, then createRuntime/prestart hooks (in the parent, runtime namespace) and
/// createContainer hooks (here: container namespaces, paths still resolve in the runtime's
/// mount namespace — like runc, before pivot_root), then pivot_root.
fn prepare_rootfs(cfg: &InitConfig<'_>, sync: &SyncSocket) -> Result<(), InitError> {
    let spec = cfg.spec;
    let cgroup_ns = crate::spec::has_new_namespace(spec, LinuxNamespaceType::Cgroup);
    crate::rootfs::prepare(spec, cfg.bundle, cgroup_ns)?;
    let parent_hooks = !hooks::hooks_of(spec, HookKind::Prestart).is_empty()
        || !hooks::hooks_of(spec, HookKind::CreateRuntime).is_empty();
    if parent_hooks {
        sync.send(&Msg::Hooks)?;
        sync.expect(Msg::HooksDone)?;
    }
    run_container_hooks(spec, cfg, HookKind::CreateContainer)?;
    crate::rootfs::pivot(cfg.rootfs, cfg.no_pivot)?;
    Ok(())
}

fn run_container_hooks(spec: &Spec, cfg: &InitConfig<'_>, kind: HookKind) -> Result<(), InitError> {
    if hooks::hooks_of(spec, kind).is_empty() {
        return Ok(());
    }
    let annotations = spec.annotations().clone().unwrap_or_default();
    let state = serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION_MAX,
        "id": cfg.id,
        "status": "created",
        "pid": nix::unistd::getpid().as_raw(),
        "bundle": cfg.bundle,
        "annotations": annotations,
    });
    hooks::run(spec, kind, &state)?;
    Ok(())
}

fn set_hostname(spec: &Spec) -> Result<(), InitError> {
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(sys_err(format!("sethostname {h:?}")))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        lifecycle::set_domainname(d).map_err(sys_err(format!("setdomainname {d:?}")))?;
    }
    Ok(())
}

/// chdir to process.cwd (absolute; validated earlier).
pub fn chdir(process: &Process) -> Result<(), InitError> {
    let cwd = process.cwd();
    nix::unistd::chdir(cwd).map_err(sys_err(format!("chdir to process.cwd {}", cwd.display())))
}

/// Blocks until `start` opens the fifo (opened write-only through /proc/self/fd).
fn wait_for_start(cfg: &InitConfig<'_>) -> Result<OwnedFd, InitError> {
    let path = format!("/proc/self/fd/{}", raw(cfg.fifo));
    let fd = loop {
        match nix::fcntl::open(
            path.as_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Err(nix::Error::EINTR) => continue,
            r => break r.map_err(sys_err(format!("open exec fifo {path}")))?,
        }
    };
    Ok(fd)
}

/// Tells `start` the outcome: "0" (about to exec) or "1" followed by the error.
fn report_start(fifo: &OwnedFd, error: Option<&InitError>) -> Result<(), InitError> {
    let msg = match error {
        None => "0".to_string(),
        Some(e) => format!("1{e}"),
    };
    nix::unistd::write(fifo.as_fd(), msg.as_bytes()).map_err(sys_err("write exec fifo"))?;
    Ok(())
}

/// Resolves args[0] with the PATH from the process environment (like execvp, but checked
/// before `create` returns so a missing binary fails `create`).
pub fn find_program(process: &Process) -> Result<PathBuf, InitError> {
    let arg0 = process
        .args()
        .as_deref()
        .and_then(|a| a.first())
        .map(String::as_str)
        .unwrap_or("");
    let executable =
        |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file();
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return if executable(&p) {
            Ok(p)
        } else {
            Err(InitError::Invalid(format!(
                "process.args[0] {arg0}: no such executable"
            )))
        };
    }
    let path = process
        .env()
        .iter()
        .flatten()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_string();
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(arg0))
        .find(|p| executable(p))
        .ok_or_else(|| {
            InitError::Invalid(format!(
                "process.args[0] {arg0:?}: executable file not found in $PATH"
            ))
        })
}

/// argv and envp as C strings.
pub fn exec_args(process: &Process) -> Result<(Vec<CString>, Vec<CString>), InitError> {
    let cstr = |s: &String, field: &str| {
        CString::new(s.as_bytes())
            .map_err(|_| InitError::Invalid(format!("{field} contains a NUL byte")))
    };
    let argv = process
        .args()
        .iter()
        .flatten()
        .map(|a| cstr(a, "process.args"))
        .collect::<Result<_, _>>()?;
    let envp = process
        .env()
        .iter()
        .flatten()
        .map(|e| cstr(e, "process.env"))
        .collect::<Result<_, _>>()?;
    Ok((argv, envp))
}

/// Marks every fd past stdio and the preserved ones close-on-exec, then execve.
pub fn exec(
    program: &Path,
    argv: &[CString],
    envp: &[CString],
    preserve_fds: u32,
) -> Result<Infallible, InitError> {
    lifecycle::cloexec_from(3 + preserve_fds).map_err(sys_err("close_range"))?;
    let prog = CString::new(program.as_os_str().as_encoded_bytes())
        .map_err(|_| InitError::Invalid("program path contains a NUL byte".into()))?;
    let err = nix::unistd::execve(&prog, argv, envp).unwrap_err();
    Err(InitError::Sys {
        op: format!("execve {}", program.display()),
        source: err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(args: &[&str], env: &[&str]) -> Process {
        serde_json::from_value(serde_json::json!({
            "args": args, "env": env, "cwd": "/", "user": {"uid": 0, "gid": 0}
        }))
        .unwrap()
    }

    #[test]
    fn program_lookup_uses_process_path() {
        let p = process(&["sh"], &["PATH=/nonexistent:/bin"]);
        assert_eq!(find_program(&p).unwrap(), PathBuf::from("/bin/sh"));
        let p = process(&["no-such-binary-xyz"], &[]);
        assert!(
            find_program(&p)
                .unwrap_err()
                .to_string()
                .contains("not found")
        );
        let p = process(&["/bin/sh"], &[]);
        assert_eq!(find_program(&p).unwrap(), PathBuf::from("/bin/sh"));
    }
}

//! `exec`: run an additional process in a running container (its namespaces and cgroup).

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use super::create::write_pid_file;
use super::foreground::{Foreground, exit_code};
use super::{ContainerError, Ctx, ErrorKind, Runtime, cgroup, err, io, sys};
use crate::init::exec::{ExecConfig, stage1};
use crate::init::sync::{Msg, SyncError, SyncSocket};
use crate::state::Status;
use crate::sys::lifecycle::{self, Forked};

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub id: String,
    /// `-p process.json` (`-` for stdin).
    pub process: Option<PathBuf>,
    pub args: Vec<String>,
    pub tty: bool,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// `uid[:gid]`.
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub console_socket: Option<PathBuf>,
    pub no_new_privs: bool,
    pub preserve_fds: u32,
}

impl Runtime {
    /// `exec`: returns the process' exit code (0 when detached).
    pub fn exec(&self, opts: &ExecOptions) -> Result<i32, ContainerError> {
        let id = opts.id.as_str();
        let loaded = self.load(id)?;
        if !matches!(loaded.status, Status::Running | Status::Created) {
            return Err(err(
                id,
                ErrorKind::WrongState {
                    action: "exec in",
                    status: loaded.status,
                },
            ));
        }
        let st = loaded.state;
        let process = build_process(opts, st.spec.process().as_ref())
            .map_err(|m| err(id, ErrorKind::Invalid(m)))?;
        crate::spec::validate_process(&process).ctx(id)?;
        let terminal = process.terminal().unwrap_or(false);
        let (console, internal) = match (&opts.console_socket, terminal, opts.detach) {
            (Some(_), false, _) => {
                return Err(err(
                    id,
                    ErrorKind::Invalid("--console-socket needs a terminal (-t)".into()),
                ));
            }
            (Some(p), true, _) => (Some(crate::console::connect(p).ctx(id)?), None),
            (None, true, false) => {
                let (ours, theirs) = UnixStream::pair()
                    .map_err(io("console socketpair"))
                    .ctx(id)?;
                (Some(theirs), Some(ours))
            }
            (None, true, true) => {
                return Err(err(
                    id,
                    ErrorKind::Invalid("-t with -d needs --console-socket".into()),
                ));
            }
            (None, false, _) => (None, None),
        };
        let fg = if opts.detach {
            None
        } else {
            Some(Foreground::begin().map_err(sys("block signals")).ctx(id)?)
        };
        let cg = cgroup(&st).ctx(id)?;
        let (parent, child) = SyncSocket::pair().ctx(id)?;
        let cfg = ExecConfig {
            init_pid: st.pid,
            process: &process,
            spec: &st.spec,
            console: console.as_ref().map(|c| c.as_fd()),
            preserve_fds: opts.preserve_fds,
            sigmask: fg.as_ref().map(|f| f.old_mask),
        };
        let stage1_pid = match lifecycle::fork().map_err(sys("fork")).ctx(id)? {
            Forked::Child => {
                drop(parent);
                stage1(&cfg, &child)
            }
            Forked::Parent(pid) => pid,
        };
        drop(child);
        drop(console);
        let result = (|| {
            cg.apply(stage1_pid.as_raw()).ctx(id)?;
            parent.send(&Msg::Go).ctx(id)?;
            let pid = match parent.recv().ctx(id)? {
                Msg::Pid { pid } => pid,
                other => {
                    return Err(err(
                        id,
                        ErrorKind::Invalid(format!("unexpected message {other:?}")),
                    ));
                }
            };
            Ok(pid)
        })();
        let _ = nix::sys::wait::waitpid(stage1_pid, None);
        let pid = result.inspect_err(|_| {
            let _ = super::signal_pid(stage1_pid.as_raw(), libc::SIGKILL);
        })?;
        // EOF: execve closed the close-on-exec socket. An error message: setup failed.
        match parent.recv() {
            Err(SyncError::Closed) => {}
            Err(e) => {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                return Err(err(id, e.into()));
            }
            Ok(m) => {
                return Err(err(
                    id,
                    ErrorKind::Invalid(format!("unexpected message {m:?}")),
                ));
            }
        }
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, pid).ctx(id)?;
        }
        let pty = match internal {
            Some(sock) => Some(crate::console::recv_fd(sock.as_fd()).ctx(id)?.0),
            None => None,
        };
        match fg {
            None => Ok(0),
            Some(fg) => Ok(exit_code(fg.wait(pid, pty))),
        }
    }
}

/// The exec'd process: `-p` file, or the container's process with args and flags applied
/// (like runc).
fn build_process(opts: &ExecOptions, base: Option<&Process>) -> Result<Process, String> {
    let mut p = match &opts.process {
        Some(path) => {
            let data = if path.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
                    .map_err(|e| format!("read stdin: {e}"))?;
                v
            } else {
                std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?
            };
            let de = &mut serde_json::Deserializer::from_slice(&data);
            serde_path_to_error::deserialize(de)
                .map_err(|e| format!("malformed {}: {}: {}", path.display(), e.path(), e.inner()))?
        }
        None => {
            if opts.args.is_empty() {
                return Err("exec needs a command (args or -p process.json)".into());
            }
            let mut p = base.cloned().unwrap_or_default();
            p.set_args(Some(opts.args.clone()));
            p
        }
    };
    if opts.tty {
        p.set_terminal(Some(true));
    } else if opts.process.is_none() {
        p.set_terminal(Some(false));
    }
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &opts.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &opts.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &opts.user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u.as_str(), None),
        };
        let uid = uid
            .parse()
            .map_err(|_| format!("--user {u}: uid must be numeric"))?;
        p.user_mut().set_uid(uid);
        if let Some(g) = gid {
            p.user_mut().set_gid(
                g.parse()
                    .map_err(|_| format!("--user {u}: gid must be numeric"))?,
            );
        }
    }
    if !opts.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(opts.additional_gids.clone()));
    }
    if opts.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !opts.caps.is_empty() {
        let mut caps = serde_json::to_value(p.capabilities().clone().unwrap_or_else(empty_caps))
            .expect("caps serialize");
        for name in &opts.caps {
            let full = if name.starts_with("CAP_") {
                name.clone()
            } else {
                format!("CAP_{}", name.to_uppercase())
            };
            let _: Capability = serde_json::from_value(serde_json::json!(full))
                .map_err(|_| format!("--cap {name}: unknown capability"))?;
            for set in [
                "bounding",
                "effective",
                "permitted",
                "inheritable",
                "ambient",
            ] {
                let list = caps[set].as_array_mut();
                match list {
                    Some(l) if !l.iter().any(|c| c == &serde_json::json!(full)) => {
                        l.push(serde_json::json!(full))
                    }
                    Some(_) => {}
                    None => caps[set] = serde_json::json!([full]),
                }
            }
        }
        let caps: LinuxCapabilities =
            serde_json::from_value(caps).map_err(|e| format!("--cap: {e}"))?;
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

fn empty_caps() -> LinuxCapabilities {
    serde_json::from_value(serde_json::json!({})).expect("empty capabilities parse")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_container_process() {
        let base: Process = serde_json::from_value(serde_json::json!({
            "args": ["init"], "env": ["PATH=/bin", "A=1"], "cwd": "/", "user": {"uid": 0, "gid": 0}
        }))
        .unwrap();
        let opts = ExecOptions {
            args: vec!["sh".into()],
            env: vec!["A=2".into()],
            user: Some("10:20".into()),
            cwd: Some("/tmp".into()),
            caps: vec!["net_admin".into()],
            ..Default::default()
        };
        let p = build_process(&opts, Some(&base)).unwrap();
        assert_eq!(p.args().as_deref().unwrap(), ["sh"]);
        assert_eq!(p.env().as_deref().unwrap(), ["PATH=/bin", "A=2"]);
        assert_eq!((p.user().uid(), p.user().gid()), (10, 20));
        assert!(
            p.capabilities()
                .as_ref()
                .unwrap()
                .bounding()
                .as_ref()
                .unwrap()
                .contains(&Capability::NetAdmin)
        );
        assert!(build_process(&ExecOptions::default(), Some(&base)).is_err());
    }
}

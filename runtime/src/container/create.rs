//! `create`: claim the id, prepare cgroup/fifo/console, fork the init stages and drive them
//! until the init reports ready. Any failure releases everything acquired so far
//! ([`Cleanup`]): init and stage-1 killed, cgroup removed, state directory (and fifo) removed.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kina_cgroups::CgroupManager;
use nix::fcntl::OFlag;
use nix::sys::signal::SigSet;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources, Spec};

use super::{Ctx, ErrorKind, Runtime, err, io, signal_pid, sys, wait_gone};
use crate::hooks::{self, HookKind};
use crate::init::sync::{Msg, SyncSocket};
use crate::init::{self, InitConfig};
use crate::namespaces;
use crate::state::{self, State, Status};
use crate::sys::lifecycle::{self, Forked};

use super::ContainerError;

/// Options of `create` (and the create half of `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
}

/// What the foreground `run` adds: the signal mask to restore in children and whether to
/// receive the pty master itself (`run -t` without `--console-socket`).
#[derive(Debug)]
pub(crate) struct ForegroundCtx {
    pub sigmask: SigSet,
    pub proxy_tty: bool,
}

/// A created container.
#[derive(Debug)]
pub(crate) struct Created {
    pub state: State,
    /// The pty master when the runtime proxies the terminal itself.
    pub pty_master: Option<OwnedFd>,
}

/// Releases what a failed `create` acquired, in reverse order.
struct Cleanup<'a> {
    rt: &'a Runtime,
    id: &'a str,
    cgroup: Option<Box<dyn CgroupManager>>,
    stage1: Option<Pid>,
    init: Option<(i32, u64)>,
    armed: bool,
}

const KILL: i32 = libc::SIGKILL;

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some((pid, start)) = self.init
            && state::process_alive(pid, start)
        {
            let _ = signal_pid(pid, KILL);
            wait_gone(pid, start, Duration::from_secs(5));
        }
        if let Some(pid) = self.stage1 {
            let _ = signal_pid(pid.as_raw(), KILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        if let Some(cg) = &self.cgroup {
            for pid in cg.pids().unwrap_or_default() {
                let _ = signal_pid(pid, KILL);
            }
            if let Err(e) = cg.destroy() {
                tracing::warn!(id = self.id, "cleanup: remove cgroup: {e}");
            }
        }
        if let Err(e) = self.rt.store.remove(self.id) {
            tracing::warn!(id = self.id, "cleanup: {e}");
        }
    }
}

impl Runtime {
    /// `create`: returns once the init waits on the exec fifo.
    pub fn create(&self, opts: &CreateOptions) -> Result<State, ContainerError> {
        self.create_with(opts, None).map(|c| c.state)
    }

    pub(crate) fn create_with(
        &self,
        opts: &CreateOptions,
        fg: Option<&ForegroundCtx>,
    ) -> Result<Created, ContainerError> {
        let id = opts.id.as_str();
        let t0 = std::time::Instant::now();
        crate::spec::validate_id(id).ctx(id)?;
        let bundle = std::fs::canonicalize(&opts.bundle)
            .map_err(io(format!("bundle {}", opts.bundle.display())))
            .ctx(id)?;
        let mut spec = crate::spec::load(&bundle).ctx(id)?;
        if let Some(profile) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            crate::process::seccomp::compile(profile).ctx(id)?;
        }
        let mut preserve_fds = opts.preserve_fds;
        let listen = init::listen_fds();
        if listen > 0 {
            preserve_fds += listen;
            add_env(
                &mut spec,
                &[format!("LISTEN_FDS={listen}"), "LISTEN_PID=1".into()],
            );
        }
        let terminal = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let proxy_tty = fg.is_some_and(|f| f.proxy_tty) && opts.console_socket.is_none();
        if terminal && opts.console_socket.is_none() && !proxy_tty {
            return Err(err(
                id,
                ErrorKind::Invalid(
                    "process.terminal is set: --console-socket is required when detached".into(),
                ),
            ));
        }
        if !terminal && opts.console_socket.is_some() {
            return Err(err(
                id,
                ErrorKind::Invalid("--console-socket given but process.terminal is false".into()),
            ));
        }
        let rootfs = crate::spec::rootfs_path(&spec, &bundle).ctx(id)?;
        let rootfs = std::fs::canonicalize(&rootfs)
            .map_err(io(format!("root.path {}", rootfs.display())))
            .ctx(id)?;
        let cgroup_path = self.cgroup_path(&spec, id)?;

        // From here on every acquired resource is released on error.
        self.store.create_dir(id).ctx(id)?;
        let mut cleanup = Cleanup {
            rt: self,
            id,
            cgroup: None,
            stage1: None,
            init: None,
            armed: true,
        };
        let mut st = State {
            id: id.to_string(),
            pid: 0,
            pid_start: 0,
            status: Status::Creating,
            bundle: bundle.clone(),
            rootfs: rootfs.clone(),
            created: state::rfc3339(SystemTime::now()),
            owner_uid: nix::unistd::geteuid().as_raw(),
            annotations: spec
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
            cgroup_path: cgroup_path.clone(),
            spec: spec.clone(),
        };
        self.store.save(&st).ctx(id)?;
        let fifo = make_fifo(&self.store.fifo(id)).ctx(id)?;
        let cg = kina_cgroups::manager(&cgroup_path).ctx(id)?;
        let (console, internal_console) = match (&opts.console_socket, proxy_tty && terminal) {
            (Some(p), _) => (Some(crate::console::connect(p).ctx(id)?), None),
            (None, true) => {
                let (ours, theirs) = UnixStream::pair()
                    .map_err(io("console socketpair"))
                    .ctx(id)?;
                (Some(theirs), Some(ours))
            }
            (None, false) => (None, None),
        };
        let (parent, child) = SyncSocket::pair().ctx(id)?;
        let cfg = InitConfig {
            id,
            spec: &spec,
            bundle: &bundle,
            rootfs: &rootfs,
            fifo: fifo.as_fd(),
            console: console.as_ref().map(|c| c.as_fd()),
            no_pivot: opts.no_pivot,
            no_new_keyring: opts.no_new_keyring,
            preserve_fds,
            sigmask: fg.map(|f| f.sigmask),
        };
        let stage1 = match lifecycle::fork().map_err(sys("fork")).ctx(id)? {
            Forked::Child => {
                drop(parent);
                init::stage1(&cfg, &child)
            }
            Forked::Parent(pid) => pid,
        };
        drop(child);
        drop(console);
        cleanup.stage1 = Some(stage1);
        tracing::debug!(id, elapsed = ?t0.elapsed(), "forked stage-1");
        cg.apply(stage1.as_raw()).ctx(id)?;
        cleanup.cgroup = Some(cg);
        let resources = cgroup_resources(&spec);
        cleanup
            .cgroup
            .as_ref()
            .expect("set above")
            .set(&resources)
            .ctx(id)?;
        tracing::debug!(id, elapsed = ?t0.elapsed(), "cgroup applied and set");
        parent.send(&Msg::Go).ctx(id)?;
        loop {
            match parent.recv().ctx(id)? {
                Msg::NeedMaps => {
                    namespaces::write_id_mappings(stage1.as_raw(), &spec).ctx(id)?;
                    parent.send(&Msg::MapsDone).ctx(id)?;
                }
                Msg::Pid { pid } => {
                    tracing::debug!(id, elapsed = ?t0.elapsed(), pid, "init forked");
                    let start = state::proc_stat(pid).map(|(s, _)| s).unwrap_or(0);
                    cleanup.init = Some((pid, start));
                    (st.pid, st.pid_start) = (pid, start);
                    let _ = nix::sys::wait::waitpid(stage1, None);
                    cleanup.stage1 = None;
                }
                Msg::Hooks => {
                    let state = st.oci(Status::Creating);
                    hooks::run(&spec, HookKind::Prestart, &state).ctx(id)?;
                    hooks::run(&spec, HookKind::CreateRuntime, &state).ctx(id)?;
                    parent.send(&Msg::HooksDone).ctx(id)?;
                }
                Msg::Ready if st.pid > 0 => {
                    tracing::debug!(id, elapsed = ?t0.elapsed(), "init ready");
                    break;
                }
                other => {
                    return Err(err(
                        id,
                        ErrorKind::Invalid(format!("unexpected message from init: {other:?}")),
                    ));
                }
            }
        }
        let pty_master = match internal_console {
            Some(sock) => Some(crate::console::recv_fd(sock.as_fd()).ctx(id)?.0),
            None => None,
        };
        st.status = Status::Created;
        self.store.save(&st).ctx(id)?;
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, st.pid).ctx(id)?;
        }
        cleanup.armed = false;
        tracing::debug!(id, elapsed = ?t0.elapsed(), "created");
        Ok(Created {
            state: st,
            pty_master,
        })
    }
}

impl Runtime {
    /// linux.cgroupsPath resolved for this container. With `--systemd-cgroup` the path must
    /// be `slice:prefix:name` (default `system.slice:kina:<id>`, as runc uses `runc`).
    fn cgroup_path(&self, spec: &Spec, id: &str) -> Result<PathBuf, ContainerError> {
        let raw = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
        let raw = raw
            .as_deref()
            .map(|p| p.to_str().unwrap_or("\u{fffd}").to_string());
        let raw = match (self.systemd_cgroup, raw) {
            (true, None) => Some(format!("system.slice:kina:{id}")),
            (true, Some(p)) if p.is_empty() => Some(format!("system.slice:kina:{id}")),
            (true, Some(p)) if p.starts_with('/') || p.matches(':').count() != 2 => {
                return Err(err(
                    id,
                    ErrorKind::Invalid(format!(
                        "linux.cgroupsPath {p:?}: --systemd-cgroup needs the slice:prefix:name form"
                    )),
                ));
            }
            (_, p) => p,
        };
        kina_cgroups::resolve_path(raw.as_deref(), id).ctx(id)
    }
}

/// The container's resources plus, like runc, device-cgroup rules allowing the default
/// devices every container gets and the devices listed in linux.devices.
pub(crate) fn cgroup_resources(spec: &Spec) -> LinuxResources {
    let linux = spec.linux().as_ref();
    let mut r = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let mut rules = r.devices().clone().unwrap_or_default();
    let rule =
        |typ: &str, major: Option<i64>, minor: Option<i64>, access: &str| -> LinuxDeviceCgroup {
            serde_json::from_value(serde_json::json!({
                "allow": true, "type": typ, "major": major, "minor": minor, "access": access
            }))
            .expect("device rule")
        };
    for d in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        let typ = serde_json::to_value(d.typ())
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or("a".into());
        let typ = match typ.as_str() {
            "p" => continue, // fifos are not governed by the device cgroup
            "u" => "c".to_string(),
            _ => typ,
        };
        rules.push(rule(&typ, Some(d.major()), Some(d.minor()), "rwm"));
    }
    for (typ, major, minor) in [
        ("c", None, None),          // mknod of any char device
        ("b", None, None),          // mknod of any block device
        ("c", Some(1), Some(3)),    // /dev/null
        ("c", Some(1), Some(5)),    // /dev/zero
        ("c", Some(1), Some(7)),    // /dev/full
        ("c", Some(1), Some(8)),    // /dev/random
        ("c", Some(1), Some(9)),    // /dev/urandom
        ("c", Some(5), Some(0)),    // /dev/tty
        ("c", Some(5), Some(2)),    // /dev/ptmx
        ("c", Some(136), None),     // /dev/pts/*
        ("c", Some(10), Some(200)), // /dev/net/tun
    ] {
        let access = if major.is_none() { "m" } else { "rwm" };
        rules.push(rule(typ, major, minor, access));
    }
    r.set_devices(Some(rules));
    r
}

fn add_env(spec: &mut Spec, vars: &[String]) {
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(vars.iter().cloned());
        p.set_env(Some(env));
    }
}

/// Creates the exec fifo (0622) and opens it O_PATH for the init.
fn make_fifo(path: &Path) -> Result<OwnedFd, ErrorKind> {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o622))
        .map_err(sys(format!("mkfifo {}", path.display())))?;
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        Mode::from_bits_truncate(0o622),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(sys(format!("chmod {}", path.display())))?;
    nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(sys(format!("open {}", path.display())))
}

/// Writes the pid file atomically (temp file + rename), like runc.
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<(), ErrorKind> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string())
        .map_err(io(format!("write pid file {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("rename pid file to {}", path.display())))
}

//! Running `<runtime> [--runtime-arg]... --root DIR create --bundle B --pid-file P
//! [--console-socket S] ID` with the container's stdio owned by the monitor.
//!
//! Without `--tty` the runtime passes its own stdio through to the container init, so the
//! runtime gets pipes whose read ends (and, with `--stdin`, the stdin write end) stay with the
//! monitor. With `--tty` the runtime sends the pty master over the console socket instead.

use crate::args::Args;
use crate::console::{ConsoleError, ConsoleSocket};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::Pid;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};

/// Errors of creating the container, naming the container and the step.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {id}: {what}: {source}")]
    Io {
        id: String,
        what: String,
        source: io::Error,
    },
    #[error("container {id}: {runtime} create failed ({status}): {output}")]
    Create {
        id: String,
        runtime: PathBuf,
        status: ExitStatus,
        output: String,
    },
    #[error("container {id}: pid file {path}: {problem}")]
    PidFile {
        id: String,
        path: PathBuf,
        problem: String,
    },
    #[error("container {id}: {source}")]
    Console { id: String, source: ConsoleError },
}

/// The container side of the monitor: where its output comes from and its input goes.
#[derive(Debug, Default)]
pub struct ContainerIo {
    /// Read end of the stdout pipe (non-tty).
    pub stdout: Option<OwnedFd>,
    /// Read end of the stderr pipe (non-tty).
    pub stderr: Option<OwnedFd>,
    /// Write end of the stdin pipe (non-tty with `--stdin`).
    pub stdin: Option<OwnedFd>,
    /// The pty master (tty).
    pub master: Option<OwnedFd>,
}

fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL)?;
    fcntl(
        fd.as_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )?;
    Ok(())
}

/// Reads what is available now from a non-blocking fd (at most 8 KiB), for error messages.
fn read_available(fd: OwnedFd) -> String {
    let _ = set_nonblocking(&fd);
    let mut f = std::fs::File::from(fd);
    let mut buf = vec![0u8; 8192];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    String::from_utf8_lossy(&buf[..n]).trim().to_string()
}

/// Creates the container; returns its init pid and its stdio.
pub fn create(
    args: &Args,
    console: Option<&ConsoleSocket>,
) -> Result<(Pid, ContainerIo), RuntimeError> {
    let io_err = |what: &str| {
        let id = args.id.clone();
        let what = what.to_string();
        move |source: nix::Error| RuntimeError::Io {
            id,
            what,
            source: source.into(),
        }
    };
    let mut cmd = Command::new(&args.runtime);
    cmd.args(&args.runtime_args)
        .arg("--root")
        .arg(&args.root)
        .arg("create")
        .arg("--bundle")
        .arg(&args.bundle)
        .arg("--pid-file")
        .arg(&args.pid_file);
    if let Some(c) = console {
        cmd.arg("--console-socket").arg(c.path());
    }
    cmd.arg(&args.id);

    let mut io = ContainerIo::default();
    // Where the runtime's own error output can be read when create fails.
    let diag: OwnedFd;
    if console.is_some() {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_err("pipe"))?;
        let w2 = w.try_clone().map_err(|e| RuntimeError::Io {
            id: args.id.clone(),
            what: "dup".into(),
            source: e,
        })?;
        cmd.stdin(Stdio::null()).stdout(w).stderr(w2);
        diag = r;
    } else {
        let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_err("stdout pipe"))?;
        let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_err("stderr pipe"))?;
        cmd.stdout(out_w).stderr(err_w);
        if args.stdin {
            let (in_r, in_w) =
                nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_err("stdin pipe"))?;
            cmd.stdin(in_r);
            io.stdin = Some(in_w);
        } else {
            cmd.stdin(Stdio::null());
        }
        diag = err_r.try_clone().map_err(|e| RuntimeError::Io {
            id: args.id.clone(),
            what: "dup".into(),
            source: e,
        })?;
        io.stdout = Some(out_r);
        io.stderr = Some(err_r);
    }

    // The runtime creates mount points in the container's rootfs: it runs with the umask the
    // monitor was started with, as under any other shim, not with the monitor's private one.
    // (The monitor is single-threaded here: nothing else creates files meanwhile.)
    let own = nix::sys::stat::umask(crate::sync::inherited_umask());
    let spawned = cmd.spawn();
    nix::sys::stat::umask(own);
    let mut child = spawned.map_err(|e| RuntimeError::Io {
        id: args.id.clone(),
        what: format!("run {}", args.runtime.display()),
        source: e,
    })?;
    // The write ends given to the runtime are closed here with `cmd`.
    drop(cmd);

    let status = match console {
        Some(c) => {
            let (status, master) = wait_for_master(args, &mut child, c)?;
            io.master = master;
            status
        }
        None => child.wait().map_err(|e| RuntimeError::Io {
            id: args.id.clone(),
            what: "wait for the runtime".into(),
            source: e,
        })?,
    };
    if !status.success() {
        let mut output = read_available(diag);
        if let Some(out) = io.stdout.take() {
            let more = read_available(out);
            if !more.is_empty() {
                output = format!("{output}\n{more}").trim().to_string();
            }
        }
        return Err(RuntimeError::Create {
            id: args.id.clone(),
            runtime: args.runtime.clone(),
            status,
            output,
        });
    }
    drop(diag);
    if console.is_some() && io.master.is_none() {
        return Err(RuntimeError::Console {
            id: args.id.clone(),
            source: ConsoleError::NoMaster {
                path: console.map(|c| c.path().to_path_buf()).unwrap_or_default(),
            },
        });
    }
    for fd in [&io.stdout, &io.stderr, &io.stdin, &io.master]
        .into_iter()
        .flatten()
    {
        set_nonblocking(fd).map_err(|source| RuntimeError::Io {
            id: args.id.clone(),
            what: "set non-blocking".into(),
            source,
        })?;
    }
    let pid = read_pid_file(args)?;
    Ok((pid, io))
}

/// Waits for the runtime to exit while accepting the console socket connection.
fn wait_for_master(
    args: &Args,
    child: &mut Child,
    console: &ConsoleSocket,
) -> Result<(ExitStatus, Option<OwnedFd>), RuntimeError> {
    let cerr = |source| RuntimeError::Console {
        id: args.id.clone(),
        source,
    };
    let wait_err = |e| RuntimeError::Io {
        id: args.id.clone(),
        what: "wait for the runtime".into(),
        source: e,
    };
    loop {
        if let Some(master) = console.try_receive().map_err(cerr)? {
            let st = child.wait().map_err(wait_err)?;
            return Ok((st, Some(master)));
        }
        if let Some(st) = child.try_wait().map_err(wait_err)? {
            // The runtime connects before it exits: the connection may still be queued.
            return Ok((st, console.try_receive().map_err(cerr)?));
        }
        let mut fds = [PollFd::new(console.listener().as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(20u16));
    }
}

fn read_pid_file(args: &Args) -> Result<Pid, RuntimeError> {
    let perr = |problem: String| RuntimeError::PidFile {
        id: args.id.clone(),
        path: args.pid_file.clone(),
        problem,
    };
    let text = std::fs::read_to_string(&args.pid_file).map_err(|e| perr(e.to_string()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| perr(format!("not a pid: {:?}", text.trim())))?;
    if pid <= 0 {
        return Err(perr(format!("not a pid: {pid}")));
    }
    Ok(Pid::from_raw(pid))
}

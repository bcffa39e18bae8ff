//! Start-up synchronisation with the caller, and daemonisation.
//!
//! Protocol (what cri-server relies on):
//! 1. The caller runs `cri-monitor ...` and waits for that process to exit.
//! 2. The monitor forks. The child calls `setsid()`, becomes the real monitor, and creates the
//!    container; the foreground process only waits for the child's verdict on a private pipe.
//! 3. The foreground process writes exactly one JSON line to the sync channel — the descriptor
//!    given by `--sync-fd FD` (inherited by the monitor, without CLOEXEC), else its stdout:
//!    - success: `{"pid":<container init pid>,"monitor_pid":<daemon pid>}`, exit status 0;
//!    - failure: `{"error":"<message naming the container and the step>"}`, exit status 1.
//!
//!    If the daemon dies before reporting, the foreground process reports that as the error.
//! 4. Before the verdict, the daemon has pointed its stdin/stdout at /dev/null, closed its copy of
//!    the sync descriptor, and replaced a pipe or socket stderr with /dev/null, so the caller
//!    reads EOF as soon as the foreground process exits and no caller pipe is held by the
//!    long-lived daemon (the caller may die and restart without blocking the monitor).

use crate::sys;
use nix::unistd::{ForkResult, Pid, setsid};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;

use nix::sys::stat::{Mode, umask};

pub use cri_monitor::protocol::SyncMessage;

/// Errors of daemonisation and synchronisation.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("--sync-fd {fd}: {source}")]
    SyncFd { fd: i32, source: io::Error },
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: io::Error,
    },
}

fn sys_err(what: &'static str) -> impl FnOnce(nix::Error) -> SyncError {
    move |e| SyncError::Sys {
        what,
        source: e.into(),
    }
}

/// The daemon's end of the private pipe: it sends the verdict once.
#[derive(Debug)]
pub struct Notifier {
    pipe: Option<File>,
}

impl Notifier {
    /// Sends the verdict to the foreground process (which forwards it to the caller).
    pub fn send(&mut self, msg: &SyncMessage) -> io::Result<()> {
        if let Some(mut f) = self.pipe.take() {
            let mut line = serde_json::to_vec(msg).map_err(io::Error::other)?;
            line.push(b'\n');
            f.write_all(&line)?;
        }
        Ok(())
    }
}

/// The umask cri-monitor was started with, before [`daemonize`] made its own private.
static INHERITED_UMASK: OnceLock<Mode> = OnceLock::new();

/// The caller's umask, for the OCI runtime: mount points and files it creates inside the
/// container's rootfs must not get the monitor's 027 (non-root users could not traverse
/// /run/secrets to their service account token).
pub fn inherited_umask() -> Mode {
    INHERITED_UMASK
        .get()
        .copied()
        .unwrap_or(Mode::from_bits_truncate(0o022))
}

/// Forks. In the foreground process this never returns (it forwards the verdict and exits);
/// in the daemon it returns the notifier after `setsid()` and the stdio redirections.
pub fn daemonize(sync_fd: Option<i32>) -> Result<Notifier, SyncError> {
    let sync: Option<OwnedFd> = sync_fd
        .map(|fd| sys::take_inherited_fd(fd).map_err(|source| SyncError::SyncFd { fd, source }))
        .transpose()?;
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys_err("pipe2"))?;
    match sys::fork().map_err(|source| SyncError::Sys {
        what: "fork",
        source,
    })? {
        ForkResult::Parent { .. } => {
            drop(wr);
            let code = forward_verdict(rd, sync);
            std::process::exit(code);
        }
        ForkResult::Child => {
            drop(rd);
            drop(sync);
            setsid().map_err(sys_err("setsid"))?;
            // Sockets and files the daemon creates: no write access for group/other (anyone who
            // can connect to the attach socket can type into the container).
            let inherited = umask(Mode::from_bits_truncate(0o027));
            let _ = INHERITED_UMASK.set(inherited);
            detach_stdio()?;
            Ok(Notifier {
                pipe: Some(File::from(wr)),
            })
        }
    }
}

/// Foreground process: read the daemon's verdict and hand it to the caller.
fn forward_verdict(rd: OwnedFd, sync: Option<OwnedFd>) -> i32 {
    let mut line = String::new();
    let msg = match BufReader::new(File::from(rd)).read_line(&mut line) {
        Ok(n) if n > 0 => {
            serde_json::from_str::<SyncMessage>(line.trim_end()).unwrap_or_else(|e| {
                SyncMessage::Failed {
                    error: format!("monitor sent a malformed verdict {line:?}: {e}"),
                }
            })
        }
        Ok(_) => SyncMessage::Failed {
            error: "monitor exited before the container was created".into(),
        },
        Err(e) => SyncMessage::Failed {
            error: format!("reading the monitor's verdict: {e}"),
        },
    };
    let mut out = serde_json::to_vec(&msg).unwrap_or_default();
    out.push(b'\n');
    let written = match sync {
        Some(fd) => File::from(fd).write_all(&out),
        None => io::stdout().lock().write_all(&out),
    };
    match (&msg, written) {
        (SyncMessage::Started { .. }, Ok(())) => 0,
        _ => 1,
    }
}

/// Points stdin/stdout at /dev/null, and stderr too when it is a pipe or socket (which the caller
/// may be reading until EOF). A regular file or terminal stderr is kept for diagnostics.
fn detach_stdio() -> Result<(), SyncError> {
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|source| SyncError::Sys {
            what: "open /dev/null",
            source,
        })?;
    nix::unistd::dup2_stdin(null.as_fd()).map_err(sys_err("dup2 stdin"))?;
    nix::unistd::dup2_stdout(null.as_fd()).map_err(sys_err("dup2 stdout"))?;
    let stderr_is_stream = nix::sys::stat::fstat(io::stderr().as_fd())
        .map(|st| {
            let ft = nix::sys::stat::SFlag::from_bits_truncate(st.st_mode)
                & nix::sys::stat::SFlag::S_IFMT;
            ft == nix::sys::stat::SFlag::S_IFIFO || ft == nix::sys::stat::SFlag::S_IFSOCK
        })
        .unwrap_or(true);
    if stderr_is_stream {
        nix::unistd::dup2_stderr(null.as_fd()).map_err(sys_err("dup2 stderr"))?;
    }
    Ok(())
}

/// This process's pid as an i32.
pub fn my_pid() -> i32 {
    Pid::this().as_raw()
}

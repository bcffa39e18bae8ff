//! Signals, child reaping and the exit file.
//!
//! The monitor is a child subreaper: the runtime's `create` process forks the container init and
//! exits, so the init is re-parented to the monitor, which reaps it (and any other orphan) on
//! SIGCHLD. Signals are consumed through a signalfd inside the poll loop:
//! - SIGCHLD: reap; the container init's status ends the monitor;
//! - SIGUSR1: reopen the log file (log rotation);
//! - SIGTERM, SIGINT, SIGHUP: noted and otherwise ignored — the container is stopped through the
//!   runtime's `kill`, and the monitor exits after the container has exited.
//!
//! The exit file is written atomically (temporary file + rename) as JSON:
//! `{"exit_code":N,"signal":S,"exited_at":"RFC3339Nano","oom_killed":B}`; `signal` is present
//! only when the init was killed by a signal (then `exit_code` is 128+S), `oom_killed` only when
//! the memory cgroup's OOM-kill counter could be read.

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Errors of signal setup and the exit file.
#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    #[error("{what}: {source}")]
    Sys { what: &'static str, source: Errno },
    #[error("write exit file {path}: {source}")]
    ExitFile { path: PathBuf, source: io::Error },
}

/// What the signalfd delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Child,
    Reopen,
    Terminate(Signal),
}

/// The monitor's signals, blocked and readable through a non-blocking signalfd.
#[derive(Debug)]
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Becomes a child subreaper and routes the monitor's signals to a signalfd.
    /// Must run before the runtime is spawned so no SIGCHLD is missed. (Children spawned with
    /// `std::process::Command` start with an empty signal mask again.)
    pub fn install() -> Result<Self, ReaperError> {
        nix::sys::prctl::set_child_subreaper(true).map_err(|source| ReaperError::Sys {
            what: "prctl(PR_SET_CHILD_SUBREAPER)",
            source,
        })?;
        let mut set = SigSet::empty();
        for s in [
            Signal::SIGCHLD,
            Signal::SIGUSR1,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGPIPE,
        ] {
            set.add(s);
        }
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(|source| {
            ReaperError::Sys {
                what: "sigprocmask",
                source,
            }
        })?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|source| ReaperError::Sys {
                what: "signalfd",
                source,
            })?;
        Ok(Self { fd })
    }

    pub fn fd(&self) -> &SignalFd {
        &self.fd
    }

    /// Reads every pending signal.
    pub fn drain(&self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(Some(info)) = self.fd.read_signal() {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match sig {
                Signal::SIGCHLD => out.push(Event::Child),
                Signal::SIGUSR1 => out.push(Event::Reopen),
                Signal::SIGPIPE => {}
                s => out.push(Event::Terminate(s)),
            }
        }
        out
    }
}

pub use cri_monitor::protocol::{Exit, ExitRecord};

/// The pid and ending of a reaped child, if it has ended.
fn exit_from_wait(st: WaitStatus) -> Option<(Pid, Exit)> {
    match st {
        WaitStatus::Exited(pid, code) => Some((pid, Exit::Code(code))),
        WaitStatus::Signaled(pid, sig, _) => Some((pid, Exit::Signal(sig as i32))),
        _ => None,
    }
}

/// Reaps every exited child without blocking; returns the status of `target` if it was among
/// them. Other children (orphans re-parented to the subreaper) are simply reaped.
pub fn reap(target: Pid) -> Option<Exit> {
    let mut found = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return found,
            Ok(st) => {
                if let Some((pid, exit)) = exit_from_wait(st)
                    && pid == target
                {
                    found = Some(exit);
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => return found,
        }
    }
}

/// Writes the exit file atomically: a reader sees either no file or the whole record.
pub fn write_exit_file(record: &ExitRecord, path: &Path) -> Result<(), ReaperError> {
    let err = |source| ReaperError::ExitFile {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let body = serde_json::to_vec(record).map_err(|e| err(io::Error::other(e)))?;
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(&body).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("exit");
        write_exit_file(&ExitRecord::new(Exit::Code(1), "a".into(), None), &p).unwrap();
        let r: ExitRecord = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(r.exit_code, 1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let rec = ExitRecord::new(Exit::Code(1), "a".into(), None);
        let e = write_exit_file(&rec, Path::new("/nonexistent-dir/exit")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir/exit"));
    }

    #[test]
    fn reap_returns_the_target_status_and_reaps_others() {
        // Only this test spawns children in this test binary... others may run in parallel,
        // so wait for our own children explicitly first.
        let mut a = std::process::Command::new("sh")
            .args(["-c", "exit 5"])
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(a.id() as i32);
        // Wait until it is a zombie, then reap it via reap().
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            if stat
                .rsplit_once(')')
                .unwrap()
                .1
                .trim_start()
                .starts_with('Z')
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(reap(pid), Some(Exit::Code(5)));
        assert!(a.try_wait().is_err(), "already reaped by reap()");
    }
}

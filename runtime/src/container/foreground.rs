//! Foreground `run`/`exec`: become a child subreaper, block signals, then forward every signal
//! to the container process and reap it, relaying the pty when the runtime owns it.

use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::console::Proxy;

/// Exit status as a shell reports it: the code, or 128 + signal number.
pub fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, c) => c,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 255,
    }
}

/// Signals blocked (and forwarded) while in the foreground.
#[derive(Debug)]
pub(crate) struct Foreground {
    /// The mask before blocking (restored in children and on drop).
    pub old_mask: SigSet,
    signals: SignalFd,
}

impl Foreground {
    /// Must run before forking the container process: subreaper + blocked signals.
    pub fn begin() -> nix::Result<Self> {
        nix::sys::prctl::set_child_subreaper(true)?;
        let mut all = SigSet::all();
        for s in [
            Signal::SIGKILL,
            Signal::SIGSTOP,
            Signal::SIGSEGV,
            Signal::SIGBUS,
            Signal::SIGILL,
            Signal::SIGFPE,
        ] {
            all.remove(s);
        }
        let mut old_mask = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut old_mask))?;
        let signals = SignalFd::with_flags(&all, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(Self { old_mask, signals })
    }

    /// Forwards signals to `pid` and reaps children until `pid` exits; returns its status.
    pub fn wait(&self, pid: i32, pty: Option<OwnedFd>) -> WaitStatus {
        let mut proxy = pty.map(Proxy::new);
        let target = Pid::from_raw(pid);
        loop {
            if let Some(st) = reap(target) {
                if let Some(p) = proxy.as_mut() {
                    p.drain();
                }
                return st;
            }
            let (sig_ready, master_ready, stdin_ready) = {
                let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
                if let Some(p) = &proxy {
                    for fd in p.poll_fds() {
                        fds.push(PollFd::new(fd, PollFlags::POLLIN));
                    }
                }
                if poll(&mut fds, PollTimeout::NONE).is_err() {
                    continue;
                }
                let ready = |i: usize| {
                    fds.get(i)
                        .and_then(|f| f.revents())
                        .is_some_and(|r| !r.is_empty())
                };
                (ready(0), ready(1), ready(2))
            };
            if sig_ready {
                while let Ok(Some(info)) = self.signals.read_signal() {
                    match info.ssi_signo as i32 {
                        libc::SIGCHLD => {}
                        libc::SIGWINCH => {
                            if let Some(p) = &proxy {
                                p.resize();
                            }
                        }
                        s => {
                            let _ = super::signal_pid(pid, s);
                        }
                    }
                }
            }
            if let Some(p) = proxy.as_mut()
                && (master_ready || stdin_ready)
                && !p.pump(master_ready, stdin_ready)
            {
                // pty hung up: the process is exiting; keep waiting for SIGCHLD only.
                proxy = None;
            }
        }
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old_mask), None);
    }
}

/// Reaps every exited child; returns the status of `target` if it exited.
fn reap(target: Pid) -> Option<WaitStatus> {
    let mut found = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return found,
            Ok(st) => {
                if st.pid() == Some(target)
                    && matches!(st, WaitStatus::Exited(..) | WaitStatus::Signaled(..))
                {
                    found = Some(st);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let p = Pid::from_raw(1);
        assert_eq!(exit_code(WaitStatus::Exited(p, 3)), 3);
        assert_eq!(
            exit_code(WaitStatus::Signaled(p, Signal::SIGKILL, false)),
            137
        );
    }
}

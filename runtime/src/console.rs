//! Console: pseudo-terminal for `-t`, pty master sent over `--console-socket` (SCM_RIGHTS) as runc does.
//!
//! The container process opens the pty inside the container (after pivot_root, so the slave
//! lives in the container's devpts), makes the slave its stdio and controlling terminal, and
//! sends the master with its name ("/dev/pts/N") over the console socket — the protocol of
//! runc's `recvtty`. For `run -t` without a socket the runtime passes its own socketpair and
//! proxies the master to its stdio ([`Proxy`]).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use nix::sys::termios::{self, SetArg, Termios};

use crate::sys::lifecycle;

/// Errors setting up or relaying the console.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("connect to console socket {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("console {op}: {source}")]
    Sys {
        op: &'static str,
        source: nix::Error,
    },
    #[error("console socket: no file descriptor received")]
    NoFd,
}

fn sys(op: &'static str) -> impl FnOnce(nix::Error) -> ConsoleError {
    move |source| ConsoleError::Sys { op, source }
}

/// Connects to a `--console-socket` (done by the runtime before forking).
pub fn connect(path: &Path) -> Result<UnixStream, ConsoleError> {
    UnixStream::connect(path).map_err(|source| ConsoleError::Connect {
        path: path.into(),
        source,
    })
}

/// In the container process: creates a pty, sends the master over `socket`, and makes the
/// slave stdin/stdout/stderr and the controlling terminal (the caller has called setsid).
pub fn setup_container_console(
    socket: BorrowedFd<'_>,
    size: Option<(u16, u16)>,
) -> Result<(), ConsoleError> {
    let master =
        posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).map_err(sys("openpt"))?;
    grantpt(&master).map_err(sys("grantpt"))?;
    unlockpt(&master).map_err(sys("unlockpt"))?;
    let name = ptsname_r(&master).map_err(sys("ptsname"))?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("open pty slave"))?;
    if let Some((rows, cols)) = size {
        lifecycle::set_winsize(slave.as_fd(), rows, cols).map_err(sys("TIOCSWINSZ"))?;
    }
    send_fd(socket, master.as_fd(), name.as_bytes())?;
    drop(master);
    nix::unistd::dup2_stdin(&slave).map_err(sys("dup2 stdin"))?;
    nix::unistd::dup2_stdout(&slave).map_err(sys("dup2 stdout"))?;
    nix::unistd::dup2_stderr(&slave).map_err(sys("dup2 stderr"))?;
    lifecycle::set_controlling_tty(std::io::stdin().as_fd()).map_err(sys("TIOCSCTTY"))?;
    Ok(())
}

/// Sends `fd` with `name` as the payload (runc's utils.SendFd).
pub fn send_fd(
    socket: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    name: &[u8],
) -> Result<(), ConsoleError> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name)];
    sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(sys("sendmsg"))?;
    Ok(())
}

/// Receives one fd sent with [`send_fd`] (what `recvtty` and our tests do).
pub fn recv_fd(socket: BorrowedFd<'_>) -> Result<(OwnedFd, String), ConsoleError> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(sys("recvmsg"))?;
    let mut fd = None;
    for c in msg.cmsgs().map_err(sys("cmsgs"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for raw in fds {
                let owned = lifecycle::adopt_received_fd(raw);
                fd.get_or_insert(owned);
            }
        }
    }
    let n = msg.bytes;
    let name = String::from_utf8_lossy(&buf[..n]).into_owned();
    fd.map(|f| (f, name)).ok_or(ConsoleError::NoFd)
}

/// Relays a pty master to this process' stdin/stdout (for `run -t`/`exec -t` without a
/// console socket). Puts a terminal stdin into raw mode and restores it on drop.
#[derive(Debug)]
pub struct Proxy {
    pub master: OwnedFd,
    saved: Option<Termios>,
    stdin_open: bool,
    stdin: std::io::Stdin,
}

impl Proxy {
    pub fn new(master: OwnedFd) -> Self {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        }
        let proxy = Self {
            master,
            saved,
            stdin_open: true,
            stdin,
        };
        proxy.resize();
        proxy
    }

    /// Copies our terminal's window size to the pty (on start and SIGWINCH).
    pub fn resize(&self) {
        if let Some((rows, cols)) = lifecycle::get_winsize(std::io::stdin().as_fd()) {
            let _ = lifecycle::set_winsize(self.master.as_fd(), rows, cols);
        }
    }

    /// Fds to poll: the master, and stdin while it is open.
    pub fn poll_fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut v = vec![self.master.as_fd()];
        if self.stdin_open {
            v.push(self.stdin.as_fd());
        }
        v
    }

    /// Moves available data in both directions. Returns false once the master hung up.
    pub fn pump(&mut self, master_ready: bool, stdin_ready: bool) -> bool {
        let mut buf = [0u8; 8192];
        if stdin_ready && self.stdin_open {
            match nix::unistd::read(std::io::stdin().as_fd(), &mut buf) {
                Ok(0) | Err(_) => self.stdin_open = false,
                Ok(n) => write_all(self.master.as_fd(), &buf[..n]),
            }
        }
        if master_ready {
            match nix::unistd::read(self.master.as_fd(), &mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => write_all(std::io::stdout().as_fd(), &buf[..n]),
            }
        }
        true
    }

    /// Copies whatever the master still holds (after the process exited).
    pub fn drain(&mut self) {
        let _ = nix::fcntl::fcntl(
            &self.master,
            nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
        );
        while self.pump(true, false) {}
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => continue,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_passing_roundtrip() {
        let (a, b) = UnixStream::pair().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        send_fd(a.as_fd(), f.as_fd(), b"/dev/pts/9").unwrap();
        let (fd, name) = recv_fd(b.as_fd()).unwrap();
        assert_eq!(name, "/dev/pts/9");
        assert!(fd.as_raw_fd() > 2);
    }
}

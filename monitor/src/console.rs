//! The console socket of `--tty` containers.
//!
//! The runtime is started with `--console-socket <socket-dir>/console.sock`; it creates the
//! container's pty, connects to this unix socket and sends the pty master as `SCM_RIGHTS`. The
//! monitor then reads the container's output from the master and writes attach input to it.
//! The socket is removed as soon as the master has arrived (or the listener is dropped).

use crate::sys;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// Errors of the console socket, naming its path.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console socket {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    #[error("console socket {path}: the runtime sent no pty master")]
    NoMaster { path: PathBuf },
}

/// A listening console socket.
#[derive(Debug)]
pub struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// Binds `path` (a stale socket from an earlier monitor is replaced).
    pub fn bind(path: &Path) -> Result<Self, ConsoleError> {
        let err = |what, source| ConsoleError::Io {
            path: path.to_path_buf(),
            what,
            source,
        };
        crate::attach::check_socket_path(path).map_err(|e| err("path", e))?;
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err("remove stale socket", e)),
        }
        let listener = UnixListener::bind(path).map_err(|e| err("bind", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| err("set non-blocking", e))?;
        Ok(Self {
            path: path.to_path_buf(),
            listener,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }

    /// Accepts a pending connection and receives the pty master; `Ok(None)` if nobody is
    /// connecting yet.
    pub fn try_receive(&self) -> Result<Option<OwnedFd>, ConsoleError> {
        let err = |what, source| ConsoleError::Io {
            path: self.path.clone(),
            what,
            source,
        };
        let conn = match self.listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(err("accept", e)),
        };
        conn.set_nonblocking(false)
            .map_err(|e| err("set blocking", e))?;
        receive_fd(conn.as_fd())
            .map_err(|e| err("recvmsg", e))?
            .map(Some)
            .ok_or_else(|| ConsoleError::NoMaster {
                path: self.path.clone(),
            })
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Receives one descriptor sent with SCM_RIGHTS (extra descriptors are closed).
pub fn receive_fd(sock: impl AsFd) -> io::Result<Option<OwnedFd>> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        sock.as_fd().as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut got = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                let owned = sys::take_received_fd(fd);
                if got.is_none() {
                    got = Some(owned);
                }
            }
        }
    }
    Ok(got)
}

/// Sets the pty's window size (ctl fifo resize requests).
pub fn resize(master: impl AsFd, rows: u16, cols: u16) -> io::Result<()> {
    sys::set_winsize(master, rows, cols)
}

//! The attach socket: `<socket-dir>/attach`, a unix `SOCK_SEQPACKET` socket (as in conmon);
//! its constants live in `cri_monitor::protocol`.
//!
//! - Monitor → client: every packet is one byte naming the stream ([`STDOUT`] = 2,
//!   [`STDERR`] = 3; a tty's output is stdout) followed by output bytes. All connected clients get
//!   all output produced while they are connected.
//! - Client → monitor: every packet is raw input for the container's stdin (only with
//!   `--stdin`; otherwise it is discarded). A client that closes its connection only detaches;
//!   the container's stdin stays open for the next attach — unless `--stdin-once` is given:
//!   then, once a client that sent input disconnects, the container's stdin is closed after the
//!   queued input (a pipe: the container reads EOF; a tty: a Ctrl-D is sent).
//! - A client that does not keep up (its socket buffer is full) is disconnected rather than
//!   stalling the log; after the container exits and its output is drained, all clients are
//!   disconnected (they read EOF).

use crate::log::Stream;
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, Backlog, MsgFlags, SockFlag, SockType, UnixAddr, accept4, bind, listen, send,
    socket,
};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use cri_monitor::protocol::{ATTACH_STDERR as STDERR, ATTACH_STDOUT as STDOUT};
/// Largest payload of one output packet.
const MAX_PACKET: usize = 32 * 1024;

/// Errors of the attach socket, naming its path.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("attach socket {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
}

/// Unix socket paths are limited to 107 bytes (sun_path).
pub fn check_socket_path(path: &Path) -> io::Result<()> {
    if path.as_os_str().len() >= 108 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "socket path is {} bytes, longer than the 107 a unix socket allows",
                path.as_os_str().len()
            ),
        ));
    }
    Ok(())
}

/// What reading from a client gave.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientRead {
    Data(usize),
    Nothing,
    Closed,
}

/// The listening attach socket and its connected clients.
#[derive(Debug)]
pub struct AttachServer {
    path: PathBuf,
    listener: OwnedFd,
    /// Connected clients; a client that failed is marked `None` and pruned by [`Self::prune`],
    /// so indices stay stable within one poll round.
    clients: Vec<Option<OwnedFd>>,
    packet: Vec<u8>,
}

impl AttachServer {
    /// Binds and listens on `path` (a stale socket is replaced).
    pub fn bind(path: &Path) -> Result<Self, AttachError> {
        let err = |what, source| AttachError::Io {
            path: path.to_path_buf(),
            what,
            source,
        };
        check_socket_path(path).map_err(|e| err("path", e))?;
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err("remove stale socket", e)),
        }
        let listener = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|e| err("socket", e.into()))?;
        let addr = UnixAddr::new(path).map_err(|e| err("address", e.into()))?;
        bind(listener.as_raw_fd(), &addr).map_err(|e| err("bind", e.into()))?;
        let backlog = Backlog::new(16).map_err(|e| err("listen", e.into()))?;
        listen(&listener, backlog).map_err(|e| err("listen", e.into()))?;
        Ok(Self {
            path: path.to_path_buf(),
            listener,
            clients: Vec::new(),
            packet: Vec::new(),
        })
    }

    pub fn listener(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Accepts every pending connection.
    pub fn accept_all(&mut self) {
        loop {
            match accept4(
                &self.listener,
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            ) {
                Ok(fd) => self.clients.push(Some(fd)),
                Err(Errno::EINTR) | Err(Errno::ECONNABORTED) => {}
                Err(_) => return,
            }
        }
    }

    /// The connected clients, by index.
    pub fn clients(&self) -> impl Iterator<Item = (usize, BorrowedFd<'_>)> {
        self.clients
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.as_ref()?.as_fd())))
    }

    /// Reads one packet of client input into `buf`.
    pub fn read_client(&mut self, idx: usize, buf: &mut [u8]) -> ClientRead {
        let Some(Some(c)) = self.clients.get(idx) else {
            return ClientRead::Closed;
        };
        match nix::unistd::read(c, buf) {
            Ok(0) => ClientRead::Closed,
            Ok(n) => ClientRead::Data(n),
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => ClientRead::Nothing,
            Err(_) => ClientRead::Closed,
        }
    }

    /// Disconnects the client at `idx` (it is pruned later).
    pub fn disconnect(&mut self, idx: usize) {
        if let Some(c) = self.clients.get_mut(idx) {
            *c = None;
        }
    }

    /// Forgets disconnected clients; call between poll rounds only (indices change).
    pub fn prune(&mut self) {
        self.clients.retain(Option::is_some);
    }

    /// Sends output to every client; clients that fail or cannot keep up are disconnected.
    pub fn broadcast(&mut self, stream: Stream, data: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        let tag = match stream {
            Stream::Stdout => STDOUT,
            Stream::Stderr => STDERR,
        };
        for chunk in data.chunks(MAX_PACKET) {
            self.packet.clear();
            self.packet.push(tag);
            self.packet.extend_from_slice(chunk);
            for slot in self.clients.iter_mut() {
                let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
                if let Some(c) = slot
                    && send(c.as_raw_fd(), &self.packet, flags).is_err()
                {
                    *slot = None;
                }
            }
        }
        if self.packet.capacity() > MAX_PACKET + 1 {
            self.packet = Vec::new();
        }
    }

    /// Disconnects everybody (the container is gone).
    pub fn close_clients(&mut self) {
        self.clients.clear();
    }
}

impl Drop for AttachServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The container's stdin as the monitor writes it: a pipe's write end, or the pty master.
/// Writes are non-blocking and queued, so a container that does not read its stdin never stalls
/// the monitor; while the queue is over [`StdinSink::HIGH_WATER`], client input is not read.
#[derive(Debug)]
pub struct StdinSink {
    fd: OwnedFd,
    pending: Vec<u8>,
}

impl StdinSink {
    pub const HIGH_WATER: usize = 64 * 1024;

    pub fn new(fd: OwnedFd) -> Self {
        Self {
            fd,
            pending: Vec::new(),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn accepts_input(&self) -> bool {
        self.pending.len() < Self::HIGH_WATER
    }

    pub fn queue(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
    }

    /// Writes as much queued input as the container takes now. An error means the container's
    /// stdin is gone (its reader exited); the queue is dropped.
    pub fn flush(&mut self) -> io::Result<()> {
        while !self.pending.is_empty() {
            match nix::unistd::write(&self.fd, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => {}
                Err(e) => {
                    self.pending = Vec::new();
                    return Err(e.into());
                }
            }
        }
        if self.pending.is_empty() && self.pending.capacity() > Self::HIGH_WATER {
            self.pending = Vec::new();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{connect, recv};

    fn client(path: &Path) -> OwnedFd {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        connect(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
        fd
    }

    #[test]
    fn broadcasts_tagged_packets_and_drops_clients_that_do_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attach");
        let mut srv = AttachServer::bind(&path).unwrap();
        let reader = client(&path);
        let stalled = client(&path);
        srv.accept_all();
        assert_eq!(srv.clients().count(), 2);

        srv.broadcast(Stream::Stderr, b"oops");
        let mut buf = [0u8; 64];
        let n = recv(reader.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
        assert_eq!(&buf[..n], b"\x03oops");

        // Far more than a socket buffer holds: the server never blocks, the client that does not
        // read is disconnected (the reader is too, since it does not drain in this test).
        for _ in 0..256 {
            srv.broadcast(Stream::Stdout, &[b'x'; 16 * 1024]);
        }
        srv.prune();
        assert_eq!(srv.clients().count(), 0);
        drop(stalled);
        drop(srv);
        assert!(!path.exists(), "socket removed on drop");
    }

    #[test]
    fn rejects_socket_paths_longer_than_sun_path() {
        let long = Path::new("/tmp").join("x".repeat(120));
        let e = AttachServer::bind(&long).unwrap_err().to_string();
        assert!(e.contains("107"), "{e}");
    }
}

//! The parent ⇄ child synchronisation channel: a SOCK_SEQPACKET socketpair carrying one JSON
//! message per packet. EOF means the peer exited (for `exec`, a close-on-exec socket closing
//! without an error message means execve succeeded).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, recv, send, socketpair};
use serde::{Deserialize, Serialize};

/// One message on the sync socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Msg {
    /// parent → stage-1: the cgroup is joined, go on.
    Go,
    /// stage-1 → parent: a user namespace was created, write its id maps.
    NeedMaps,
    /// parent → stage-1: maps written.
    MapsDone,
    /// stage-1 → parent: pid (in the parent's pid namespace) of the container process.
    Pid { pid: i32 },
    /// init → parent: namespaces and mounts exist, run prestart/createRuntime hooks.
    Hooks,
    /// parent → init: hooks done.
    HooksDone,
    /// init → parent: set up, now blocking on the exec fifo.
    Ready,
    /// child → parent: setup failed.
    Error { message: String },
}

/// Errors on the sync channel.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync socket {op}: {source}")]
    Io {
        op: &'static str,
        source: nix::Error,
    },
    #[error("child exited before sending a message")]
    Closed,
    #[error("unexpected sync message {got:?} (wanted {wanted})")]
    Unexpected { got: Msg, wanted: &'static str },
    #[error("container setup failed: {0}")]
    Child(String),
    #[error("malformed sync message: {0}")]
    Malformed(serde_json::Error),
}

/// One end of the sync socketpair.
#[derive(Debug)]
pub struct SyncSocket(OwnedFd);

impl SyncSocket {
    /// A connected pair (close-on-exec): (parent end, child end).
    pub fn pair() -> Result<(SyncSocket, SyncSocket), SyncError> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|source| SyncError::Io {
            op: "socketpair",
            source,
        })?;
        Ok((SyncSocket(a), SyncSocket(b)))
    }

    pub fn send(&self, msg: &Msg) -> Result<(), SyncError> {
        let data = serde_json::to_vec(msg).expect("message serializes");
        loop {
            match send(self.0.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL) {
                Err(nix::Error::EINTR) => continue,
                Err(source) => return Err(SyncError::Io { op: "send", source }),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// Next message; `Ok(None)` on EOF.
    pub fn recv_opt(&self) -> Result<Option<Msg>, SyncError> {
        let mut buf = vec![0u8; 65536];
        let n = loop {
            match recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::Error::EINTR) => continue,
                Err(source) => return Err(SyncError::Io { op: "recv", source }),
                Ok(n) => break n,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(SyncError::Malformed)
    }

    /// Next message; EOF is [`SyncError::Closed`] and an `Error` message is [`SyncError::Child`].
    pub fn recv(&self) -> Result<Msg, SyncError> {
        match self.recv_opt()? {
            None => Err(SyncError::Closed),
            Some(Msg::Error { message }) => Err(SyncError::Child(message)),
            Some(m) => Ok(m),
        }
    }

    /// Receives and checks the message kind.
    pub fn expect(&self, wanted: Msg) -> Result<(), SyncError> {
        let got = self.recv()?;
        if got == wanted {
            Ok(())
        } else {
            Err(SyncError::Unexpected {
                got,
                wanted: variant_name(&wanted),
            })
        }
    }

    /// Reports an error to the parent (best effort: the parent may be gone).
    pub fn send_error(&self, message: String) {
        let _ = self.send(&Msg::Error { message });
    }
}

fn variant_name(m: &Msg) -> &'static str {
    match m {
        Msg::Go => "go",
        Msg::NeedMaps => "need_maps",
        Msg::MapsDone => "maps_done",
        Msg::Pid { .. } => "pid",
        Msg::Hooks => "hooks",
        Msg::HooksDone => "hooks_done",
        Msg::Ready => "ready",
        Msg::Error { .. } => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_eof() {
        let (a, b) = SyncSocket::pair().unwrap();
        a.send(&Msg::Pid { pid: 42 }).unwrap();
        assert_eq!(b.recv().unwrap(), Msg::Pid { pid: 42 });
        a.send_error("boom".into());
        assert!(matches!(b.recv(), Err(SyncError::Child(m)) if m == "boom"));
        a.send(&Msg::Ready).unwrap();
        assert!(matches!(
            b.expect(Msg::Go),
            Err(SyncError::Unexpected { .. })
        ));
        drop(a);
        assert!(matches!(b.recv(), Err(SyncError::Closed)));
    }
}

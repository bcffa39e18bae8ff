//! `start`: release the init blocked on the exec fifo, then run poststart hooks.

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;
use std::os::fd::AsFd;

use super::{ContainerError, Ctx, ErrorKind, Runtime, err, sys};
use crate::hooks::{self, HookKind};
use crate::state::{self, State, Status};

impl Runtime {
    /// `start`: the container must be `created`.
    pub fn start(&self, id: &str) -> Result<State, ContainerError> {
        let loaded = self.load(id)?;
        if loaded.status != Status::Created {
            return Err(err(
                id,
                ErrorKind::WrongState {
                    action: "start",
                    status: loaded.status,
                },
            ));
        }
        let mut st = loaded.state;
        self.release_init(&st)?;
        st.status = Status::Running;
        self.store.save(&st).ctx(id)?;
        // Spec: a failing poststart hook is logged; the container keeps running.
        if let Err(e) = hooks::run(&st.spec, HookKind::Poststart, &st.oci(Status::Running)) {
            tracing::warn!(id, "{e}");
        }
        Ok(st)
    }

    /// Opens the fifo for reading (which unblocks the init's open for writing) and waits for
    /// its byte, watching that the init is still alive.
    pub(crate) fn release_init(&self, st: &State) -> Result<(), ContainerError> {
        let id = st.id.as_str();
        let path = self.store.fifo(id);
        let fifo = nix::fcntl::open(
            &path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys(format!("open {}", path.display())))
        .ctx(id)?;
        loop {
            let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(100u16)) {
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    return Err(err(
                        id,
                        ErrorKind::Sys {
                            op: "poll exec fifo".into(),
                            source: e,
                        },
                    ));
                }
                Ok(0) => {
                    if !state::process_alive(st.pid, st.pid_start) {
                        return Err(err(
                            id,
                            ErrorKind::Invalid("container init exited before start".into()),
                        ));
                    }
                }
                Ok(_) => break,
            }
        }
        let mut buf = [0u8; 4096];
        let n = nix::unistd::read(fifo.as_fd(), &mut buf)
            .map_err(sys("read exec fifo"))
            .ctx(id)?;
        match buf[..n].split_first() {
            Some((b'0', _)) => {}
            Some((_, msg)) => {
                let _ = std::fs::remove_file(&path);
                return Err(err(
                    id,
                    ErrorKind::Invalid(format!("start: {}", String::from_utf8_lossy(msg))),
                ));
            }
            None => {
                return Err(err(
                    id,
                    ErrorKind::Invalid("container init exited before start".into()),
                ));
            }
        }
        std::fs::remove_file(&path)
            .map_err(super::io(format!("remove {}", path.display())))
            .ctx(id)?;
        Ok(())
    }
}

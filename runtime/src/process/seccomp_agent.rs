//! Handing a SCMP_ACT_NOTIFY listener fd to the seccomp agent at `linux.seccomp.listenerPath`:
//! connect to the agent's unix socket and send the OCI `containerProcessState` JSON with the
//! fd attached (SCM_RIGHTS), as the runtime spec describes. The init process cannot do this
//! itself (after pivot_root the host socket is out of reach): it passes the fd returned by
//! [`super::seccomp::load_with_listener`] to the runtime, which calls [`send_to_agent`].

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, connect, sendmsg, socket,
};
use serde_json::json;

use super::ProcessError;

/// The OCI `containerProcessState` document sent along with the listener fd.
pub fn process_state(
    pid: i32,
    metadata: Option<&str>,
    state: &serde_json::Value,
) -> serde_json::Value {
    json!({
        "ociVersion": "1.2.0",
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata.unwrap_or(""),
        "state": state,
    })
}

/// Sends `listener` and the process state to the agent listening at `listener_path`.
pub fn send_to_agent(
    listener_path: &Path,
    listener: BorrowedFd<'_>,
    pid: i32,
    metadata: Option<&str>,
    state: &serde_json::Value,
) -> Result<(), ProcessError> {
    let err = |op: &'static str| {
        move |e| ProcessError::Sys {
            op,
            what: listener_path.display().to_string(),
            source: e,
        }
    };
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(err("socket"))?;
    let addr = UnixAddr::new(listener_path).map_err(err("seccomp listenerPath"))?;
    connect(sock.as_raw_fd(), &addr).map_err(err("connect to seccomp agent"))?;
    let body = serde_json::to_vec(&process_state(pid, metadata, state)).unwrap_or_default();
    let fds = [listener.as_raw_fd()];
    let sent = sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(&body)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(err("send to seccomp agent"))?;
    if sent != body.len() {
        return Err(ProcessError::Invalid {
            field: "linux.seccomp.listenerPath".into(),
            reason: format!(
                "short write to the seccomp agent ({sent} of {} bytes)",
                body.len()
            ),
        });
    }
    Ok(())
}

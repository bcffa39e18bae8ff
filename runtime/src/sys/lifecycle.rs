//! Syscalls for the container lifecycle: fork/clone, setns, subreaper, pdeath signal, pty, SCM_RIGHTS.
//!
//! Only the calls that nix does not wrap safely live here; each `unsafe` block says why it is sound.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::{ForkResult, Pid};

/// Where execution continues after [`fork`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the parent, with the child's pid.
    Parent(Pid),
    /// In the child.
    Child,
}

/// fork(2). The runtime is single-threaded (it never starts threads), so the child may keep
/// running arbitrary Rust code: no lock can be held by a thread that does not exist in the child.
pub fn fork() -> Result<Forked, Errno> {
    // SAFETY: kina-runtime's CLI is single-threaded by design (no thread is ever spawned before a
    // fork; tracing writes synchronously), so the child does not inherit locks held by other
    // threads and may run normal Rust code until it execs or exits.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        ForkResult::Child => Ok(Forked::Child),
    }
}

/// _exit(2): leave a forked child without running atexit handlers or flushing the parent's
/// buffered stdio a second time.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and takes a plain integer; it touches no Rust-managed memory.
    unsafe { libc::_exit(code) }
}

/// ioctl(TIOCSCTTY): make `fd` (a pty slave) the controlling terminal of this session.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal); the fd is a valid borrowed fd.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(rc).map(drop)
}

/// ioctl(TIOCSWINSZ): set a terminal's window size.
pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<(), Errno> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `struct winsize` through the pointer, which points to a live
    // local of exactly that type.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    Errno::result(rc).map(drop)
}

/// ioctl(TIOCGWINSZ): a terminal's window size as (rows, cols), if `fd` is a terminal.
pub fn get_winsize(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a `struct winsize` through the pointer, which points to a live,
    // writable local of exactly that type.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (rc == 0).then_some((ws.ws_row, ws.ws_col))
}

/// close_range(first, ~0, CLOSE_RANGE_CLOEXEC): mark every fd >= `first` close-on-exec, so only
/// stdio and the preserved fds reach the container process (works without /proc).
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range only changes fd flags in this process' table; no memory is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(rc).map(drop)
}

/// Takes ownership of a descriptor the kernel just installed in our table (SCM_RIGHTS).
pub fn adopt_received_fd(raw: RawFd) -> OwnedFd {
    // SAFETY: the fd was delivered by recvmsg(SCM_RIGHTS) a moment ago; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): give the container its own session keyring
/// (runc does this unless --no-new-keyring). ENOSYS (no keyring support) is not an error.
pub fn join_session_keyring(name: &str) -> Result<(), Errno> {
    let name = std::ffi::CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING takes a NUL-terminated name that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            libc::KEYCTL_JOIN_SESSION_KEYRING,
            name.as_ptr(),
        )
    };
    match Errno::result(rc) {
        Err(Errno::ENOSYS) | Ok(_) => Ok(()),
        Err(e) => Err(e),
    }
}

/// kill(2) with a raw signal number (nix's `Signal` has no real-time signals such as
/// SIGRTMIN+3, the systemd stop signal).
pub fn kill_raw(pid: i32, signo: i32) -> Result<(), Errno> {
    // SAFETY: kill takes two integers and touches no memory.
    let rc = unsafe { libc::kill(pid, signo) };
    Errno::result(rc).map(drop)
}

/// SIGRTMIN as the C library defines it (glibc reserves the first two real-time signals).
pub fn sigrtmin() -> i32 {
    libc::SIGRTMIN()
}

/// SIGRTMAX.
pub fn sigrtmax() -> i32 {
    libc::SIGRTMAX()
}

/// setdomainname(2) (nix has no wrapper).
pub fn set_domainname(name: &str) -> Result<(), Errno> {
    // SAFETY: the pointer and length describe the bytes of a live &str; the kernel copies them.
    let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_child_exits_with_code() {
        match fork().unwrap() {
            Forked::Child => exit_now(7),
            Forked::Parent(pid) => {
                let st = nix::sys::wait::waitpid(pid, None).unwrap();
                assert_eq!(st, nix::sys::wait::WaitStatus::Exited(pid, 7));
            }
        }
    }

    #[test]
    fn winsize_of_non_tty_is_none() {
        let f = std::fs::File::open("/dev/null").unwrap();
        use std::os::fd::AsFd;
        assert_eq!(get_winsize(f.as_fd()), None);
    }
}

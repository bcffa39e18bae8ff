//! The only place with `unsafe` in cri-monitor: the few syscalls nix has no safe wrapper for.
//!
//! Each block states why it is sound. Everything else uses nix's safe wrappers.

use nix::fcntl::{FcntlArg, fcntl};
use nix::unistd::ForkResult;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Number of threads of this process (from /proc/self/task).
fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// `fork(2)`; refused unless the process is single-threaded.
pub fn fork() -> io::Result<ForkResult> {
    let n = thread_count()?;
    if n != 1 {
        return Err(io::Error::other(format!(
            "refusing to fork a multi-threaded process ({n} threads)"
        )));
    }
    // SAFETY: the process has exactly one thread (checked above), so no lock can be held by
    // another thread at the time of the fork and the child may run arbitrary code.
    unsafe { nix::unistd::fork() }.map_err(io::Error::from)
}

/// Takes ownership of a file descriptor the caller handed us by number (e.g. `--sync-fd 3`).
///
/// Fails if the descriptor is not open. The standard descriptors are refused: they are not ours
/// to close.
pub fn take_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd <= 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is a standard stream"),
        ));
    }
    // SAFETY: `fd` is only borrowed for the duration of the fcntl call, which merely checks it is
    // open; BorrowedFd does not close it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    fcntl(borrowed, FcntlArg::F_GETFD).map_err(|e| io::Error::other(format!("fd {fd}: {e}")))?;
    // SAFETY: the descriptor is open (checked above) and, by the command-line contract, was
    // handed to this process for it to own; nothing else in the process refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Takes ownership of a descriptor just received through `SCM_RIGHTS`.
pub fn take_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed this descriptor into our table by recvmsg(2) a moment ago;
    // nothing else refers to it, so this OwnedFd becomes its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Sets a terminal's window size (`TIOCSWINSZ`).
pub fn set_winsize(fd: impl AsFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `struct winsize` through the pointer, which points to a valid,
    // initialised local that outlives the call; the fd is a live borrowed descriptor.
    let rc = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The local time zone's offset from UTC, in seconds, at the given Unix time.
pub fn local_utc_offset(unix_secs: i64) -> i32 {
    let t: libc::time_t = unix_secs;
    // SAFETY: an all-zero `struct tm` is a valid value (integers and a nullable pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers point to valid locals that outlive the call; localtime_r is the
    // thread-safe variant and writes only into `tm`.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return 0;
    }
    i32::try_from(tm.tm_gmtoff).unwrap_or(0)
}

/// Closes every descriptor above 2 except those in `keep`: the caller may have leaked pipes into
/// the monitor (no CLOEXEC), and a long-lived daemon holding them would keep the caller's reads
/// from seeing EOF.
pub fn close_inherited_fds(keep: &[RawFd]) -> io::Result<()> {
    // Collect first: the directory handle itself is an fd that goes away with the iterator.
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd <= 2 || keep.contains(&fd) {
            continue;
        }
        // SAFETY: called first thing in main, before this process opened anything: no Rust
        // object owns these inherited descriptors, so closing them cannot invalidate an owner.
        // The read_dir handle is already closed (EBADF for it is harmless).
        unsafe { libc::close(fd) };
    }
    Ok(())
}

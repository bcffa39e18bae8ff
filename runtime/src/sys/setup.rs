//! Syscalls for setting up the container environment: mounts, pivot_root, capabilities, seccomp, personality, ioprio.
//!
//! Only the calls that nix does not wrap live here (capget/capset, capability bounding and
//! ambient prctls, ioprio_set, personality, mount_setattr, loading a BPF seccomp program).
//! Every function is a thin, typed wrapper returning `nix::Result`; the policy (what to set,
//! what to do on failure) lives in `rootfs` and `process`.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets split in two 32-bit words.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapUserHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapUserData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The effective, permitted and inheritable capability sets of a thread, as bitmasks
/// (bit n = capability number n).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
}

fn join(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | (u64::from(hi) << 32)
}

/// capget(2) for the calling thread.
pub fn capget() -> nix::Result<CapSets> {
    let mut header = CapUserHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapUserData::default(); 2];
    // SAFETY: header and data are valid, properly sized (version 3 needs two data structs)
    // and live for the duration of the call; the kernel writes only into `data`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapUserHeader,
            data.as_mut_ptr(),
        )
    };
    Errno::result(rc)?;
    Ok(CapSets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

/// capset(2) for the calling thread.
pub fn capset(sets: CapSets) -> nix::Result<()> {
    let mut header = CapUserHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let (el, eh) = split(sets.effective);
    let (pl, ph) = split(sets.permitted);
    let (il, ih) = split(sets.inheritable);
    let data = [
        CapUserData {
            effective: el,
            permitted: pl,
            inheritable: il,
        },
        CapUserData {
            effective: eh,
            permitted: ph,
            inheritable: ih,
        },
    ];
    // SAFETY: header and data are valid for the call; the kernel only reads `data`
    // (and may write the preferred version into `header`, which we own mutably).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapUserHeader,
            data.as_ptr(),
        )
    };
    Errno::result(rc).map(drop)
}

fn prctl(option: libc::c_int, a2: libc::c_ulong, a3: libc::c_ulong) -> nix::Result<libc::c_int> {
    // SAFETY: the prctl options used in this module take integer arguments only; no
    // pointers are passed, so no memory can be touched by the kernel.
    let rc = unsafe { libc::prctl(option, a2, a3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    Errno::result(rc)
}

/// PR_CAPBSET_READ: whether capability `cap` is in the bounding set.
pub fn cap_bound_read(cap: u32) -> nix::Result<bool> {
    prctl(libc::PR_CAPBSET_READ, cap.into(), 0).map(|v| v == 1)
}

/// PR_CAPBSET_DROP: remove capability `cap` from the bounding set (needs CAP_SETPCAP).
pub fn cap_bound_drop(cap: u32) -> nix::Result<()> {
    prctl(libc::PR_CAPBSET_DROP, cap.into(), 0).map(drop)
}

const PR_CAP_AMBIENT: libc::c_int = 47;
const PR_CAP_AMBIENT_RAISE: libc::c_ulong = 2;
const PR_CAP_AMBIENT_CLEAR_ALL: libc::c_ulong = 4;

/// PR_CAP_AMBIENT_CLEAR_ALL.
pub fn ambient_clear_all() -> nix::Result<()> {
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0).map(drop)
}

/// PR_CAP_AMBIENT_RAISE for capability `cap` (must be permitted and inheritable).
pub fn ambient_raise(cap: u32) -> nix::Result<()> {
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap.into()).map(drop)
}

/// `IOPRIO_WHO_PROCESS` for ioprio_set(2).
const IOPRIO_WHO_PROCESS: libc::c_int = 1;

/// ioprio_set(IOPRIO_WHO_PROCESS, 0 = calling thread, ioprio).
pub fn ioprio_set_self(ioprio: libc::c_int) -> nix::Result<()> {
    // SAFETY: ioprio_set takes three integers; no memory is passed.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, ioprio) };
    Errno::result(rc).map(drop)
}

/// personality(2): set the execution domain; returns the previous persona.
pub fn set_personality(persona: libc::c_ulong) -> nix::Result<libc::c_int> {
    // SAFETY: personality takes one integer and touches no memory of ours.
    let rc = unsafe { libc::personality(persona) };
    Errno::result(rc)
}

/// MOUNT_ATTR_IDMAP: make the mount idmapped with `userns_fd`'s mappings.
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// mount_setattr(2) turning the (detached) mount at `dirfd` into an idmapped mount using the
/// mappings of the user namespace `userns`.
pub fn mount_setattr_idmap(
    dirfd: BorrowedFd<'_>,
    recursive: bool,
    userns: BorrowedFd<'_>,
) -> nix::Result<()> {
    mount_setattr_full(
        dirfd,
        recursive,
        MOUNT_ATTR_IDMAP,
        0,
        userns.as_raw_fd() as u64,
    )
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC [| AT_RECURSIVE]): a detached
/// copy of the mount (tree) at `path`.
pub fn open_tree_clone(path: &std::ffi::CStr, recursive: bool) -> nix::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    let fd = Errno::result(fd)?;
    // SAFETY: open_tree returned a fresh fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// move_mount(from, "", to, "", F_EMPTY_PATH | T_EMPTY_PATH): attach the detached mount `from`
/// exactly on the inode `to` (an O_PATH fd).
pub fn move_mount_onto(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> nix::Result<()> {
    let empty = c"";
    // SAFETY: `empty` is a valid NUL-terminated string; both fds are borrowed and open.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(rc).map(drop)
}

/// A user namespace with the given `uid_map`/`gid_map` contents, returned as an fd of
/// /proc/PID/ns/user. A short-lived child creates the namespace; it only makes raw,
/// async-signal-safe syscalls, so this is sound even in a multi-threaded caller.
pub fn userns_with_mappings(uid_map: &str, gid_map: &str) -> nix::Result<OwnedFd> {
    use nix::unistd::{ForkResult, pipe2};
    let (ready_r, ready_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (done_r, done_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: the child only calls unshare, write, read and _exit (async-signal-safe) on fds
    // it inherited; it never returns into Rust code or touches the allocator or locks.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => {
            // SAFETY: raw syscalls on valid fds and a stack buffer; _exit never returns.
            unsafe {
                // Close our copies of the parent's ends, or EOF on `done_r` would never come.
                libc::close(done_w.as_raw_fd());
                libc::close(ready_r.as_raw_fd());
                let ok: u8 = if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                    1
                } else {
                    0
                };
                libc::write(
                    ready_w.as_raw_fd(),
                    &ok as *const u8 as *const libc::c_void,
                    1,
                );
                let mut b = 0u8;
                libc::read(
                    done_r.as_raw_fd(),
                    &mut b as *mut u8 as *mut libc::c_void,
                    1,
                );
                libc::_exit(0);
            }
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(done_r);
            let result = (|| {
                let mut b = [0u8; 1];
                let n = nix::unistd::read(&ready_r, &mut b)?;
                if n != 1 || b[0] != 1 {
                    return Err(Errno::EPERM);
                }
                let proc = format!("/proc/{child}");
                let write = |file: &str, data: &str| {
                    std::fs::write(format!("{proc}/{file}"), data)
                        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
                };
                write("uid_map", uid_map)?;
                write("gid_map", gid_map)?;
                nix::fcntl::open(
                    format!("{proc}/ns/user").as_str(),
                    nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
            })();
            drop(done_w);
            let _ = nix::sys::wait::waitpid(child, None);
            result
        }
    }
}

/// `struct mount_attr` for mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `AT_RECURSIVE` for mount_setattr(2).
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// mount_setattr(2) on the mount at `dirfd` (path ""), recursively when `recursive`.
pub fn mount_setattr(
    dirfd: BorrowedFd<'_>,
    recursive: bool,
    attr_set: u64,
    attr_clr: u64,
) -> nix::Result<()> {
    mount_setattr_full(dirfd, recursive, attr_set, attr_clr, 0)
}

fn mount_setattr_full(
    dirfd: BorrowedFd<'_>,
    recursive: bool,
    attr_set: u64,
    attr_clr: u64,
    userns_fd: u64,
) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation: 0,
        userns_fd,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let empty = c"";
    // SAFETY: `empty` is a valid NUL-terminated string, `attr` is a properly laid out
    // `struct mount_attr` whose size we pass; the fd is borrowed and stays open.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map(drop)
}

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
/// SECCOMP_FILTER_FLAG_NEW_LISTENER: seccomp(2) returns a notification fd.
pub const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog) with a BPF program given as raw bytes
/// (the output of libseccomp's export_bpf: an array of `struct sock_filter`).
/// Returns the notification fd when `flags` has SECCOMP_FILTER_FLAG_NEW_LISTENER.
pub fn seccomp_set_filter(flags: libc::c_ulong, bpf: &[u8]) -> nix::Result<Option<OwnedFd>> {
    let insn = std::mem::size_of::<libc::sock_filter>();
    if bpf.is_empty() || !bpf.len().is_multiple_of(insn) || bpf.len() / insn > usize::from(u16::MAX)
    {
        return Err(Errno::EINVAL);
    }
    // Copy into properly aligned storage: the byte buffer has alignment 1.
    let filters: Vec<libc::sock_filter> = bpf
        .chunks_exact(insn)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let prog = libc::sock_fprog {
        len: filters.len() as u16,
        filter: filters.as_ptr() as *mut libc::sock_filter,
    };
    let tsync = flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0;
    let listener = flags & SECCOMP_FILTER_FLAG_NEW_LISTENER != 0;
    // With both TSYNC and NEW_LISTENER the kernel can only report a thread that failed to
    // synchronize as ESRCH (the return value is the listener fd).
    let flags = if tsync && listener {
        flags | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
    } else {
        flags
    };
    // SAFETY: `prog` points to `filters`, a live array of `len` instructions; the kernel
    // copies the program and does not write to it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    let rc = Errno::result(rc)?;
    if tsync && !listener && rc > 0 {
        // TSYNC failure: the kernel returns the id of the thread it could not synchronize.
        return Err(Errno::ESRCH);
    }
    if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER the kernel returns a fresh fd that nobody else owns.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) }))
    } else {
        Ok(None)
    }
}

/// The fields of `struct sched_attr` (sched_setattr(2)) that OCI can set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedAttr {
    /// SCHED_* policy.
    pub policy: u32,
    /// SCHED_FLAG_* bits.
    pub flags: u64,
    /// Nice value (SCHED_OTHER/BATCH).
    pub nice: i32,
    /// Static priority (SCHED_FIFO/RR).
    pub priority: u32,
    /// SCHED_DEADLINE runtime (ns).
    pub runtime: u64,
    /// SCHED_DEADLINE deadline (ns).
    pub deadline: u64,
    /// SCHED_DEADLINE period (ns).
    pub period: u64,
}

#[repr(C)]
struct RawSchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
    sched_util_min: u32,
    sched_util_max: u32,
}

/// sched_setattr(0 = calling thread, attr, 0).
pub fn sched_setattr_self(a: &SchedAttr) -> nix::Result<()> {
    let raw = RawSchedAttr {
        size: std::mem::size_of::<RawSchedAttr>() as u32,
        sched_policy: a.policy,
        sched_flags: a.flags,
        sched_nice: a.nice,
        sched_priority: a.priority,
        sched_runtime: a.runtime,
        sched_deadline: a.deadline,
        sched_period: a.period,
        sched_util_min: 0,
        sched_util_max: 1024,
    };
    // SAFETY: `raw` is a properly laid out `struct sched_attr` (SCHED_ATTR_SIZE_VER1) whose
    // size field is set; the kernel only reads it.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw as *const RawSchedAttr, 0) };
    Errno::result(rc).map(drop)
}

/// set_mempolicy(mode, nodemask, maxnode) for the calling thread; `nodes` is a bitmask in
/// 64-bit words (empty for MPOL_DEFAULT/MPOL_LOCAL).
pub fn set_mempolicy(mode: libc::c_int, nodes: &[u64]) -> nix::Result<()> {
    let (ptr, maxnode) = if nodes.is_empty() {
        (std::ptr::null(), 0usize)
    } else {
        // maxnode counts bits; the kernel ignores the last one (historical off-by-one).
        (nodes.as_ptr(), nodes.len() * 64 + 1)
    };
    // SAFETY: `ptr` is null with maxnode 0, or points to `nodes`, which holds
    // `(maxnode - 1) / 64` words; the kernel only reads it.
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    Errno::result(rc).map(drop)
}

/// memfd_create(name, MFD_CLOEXEC): an anonymous file, e.g. to receive libseccomp's BPF.
pub fn memfd(name: &std::ffi::CStr) -> nix::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    let fd = Errno::result(fd)?;
    // SAFETY: memfd_create returned a fresh fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capget_reads_own_sets() {
        let sets = capget().expect("capget");
        assert_eq!(
            sets.effective & !sets.permitted,
            0,
            "E must be a subset of P"
        );
    }

    #[test]
    fn bounding_read_matches_proc_status() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
        let bnd = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
        for cap in 0..40u32 {
            let present = cap_bound_read(cap).unwrap_or(false);
            assert_eq!(present, bnd & (1 << cap) != 0, "cap {cap}");
        }
    }

    #[test]
    fn seccomp_rejects_malformed_program() {
        assert_eq!(
            seccomp_set_filter(0, &[1, 2, 3]).unwrap_err(),
            Errno::EINVAL
        );
    }
}

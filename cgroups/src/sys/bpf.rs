//! bpf(2) wrappers for cgroup device programs: load a `BPF_PROG_TYPE_CGROUP_DEVICE` program,
//! attach/detach it to a cgroup v2 directory, and query which programs are attached.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Allow several programs on one cgroup (all must allow an access).
pub(crate) const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

/// The kernel may write output fields past the part of `union bpf_attr` we describe (newer
/// kernels grow the union); keep zeroed slack behind every attribute block.
#[repr(C)]
struct Attr<T> {
    inner: T,
    slack: [u64; 32],
}

impl<T> Attr<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            slack: [0; 32],
        }
    }
}

#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdById {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Issues bpf(cmd, attr, sizeof(T)); returns the non-negative result.
fn bpf<T>(cmd: libc::c_long, attr: &mut Attr<T>) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, exclusively borrowed, #[repr(C)] block laid out like the
    // kernel's `union bpf_attr` member for `cmd`, followed by zeroed slack for fields the kernel
    // may write beyond it. Any pointers inside it (instructions, license, log buffer, id array)
    // are set by the callers below to buffers that outlive this call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut Attr<T> as *mut libc::c_void,
            size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(ret).map_err(|_| io::Error::other("bpf returned an invalid fd"))?;
    // SAFETY: the kernel just returned `fd` as a new file descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Loads a cgroup device program from encoded instructions. On failure the error is returned
/// with the verifier's log (obtained by loading again with logging on).
pub(crate) fn load_device_prog(
    insns: &[u8],
    license: &str,
) -> Result<OwnedFd, (io::Error, String)> {
    let license = std::ffi::CString::new(license)
        .map_err(|_| (io::Error::from(io::ErrorKind::InvalidInput), String::new()))?;
    let insn_cnt = u32::try_from(insns.len() / 8)
        .map_err(|_| (io::Error::from(io::ErrorKind::InvalidInput), String::new()))?;
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"kina_device");
    let base = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    let mut attr = Attr::new(base);
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => owned_fd(fd).map_err(|e| (e, String::new())),
        Err(first) => {
            let mut log = vec![0u8; 64 * 1024];
            attr.inner.log_level = 1;
            attr.inner.log_size = log.len() as u32;
            attr.inner.log_buf = log.as_mut_ptr() as u64;
            let retry = bpf(BPF_PROG_LOAD, &mut attr);
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).into_owned();
            match retry {
                // Loading with a log succeeded (should not happen): still report the failure.
                Ok(fd) => {
                    drop(owned_fd(fd));
                    Err((first, text))
                }
                Err(e) => Err((e, text)),
            }
        }
    }
}

/// Attaches `prog` to the cgroup directory `cgroup` as its device program.
pub(crate) fn attach_device_prog(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    flags: u32,
) -> io::Result<()> {
    let mut attr = Attr::new(ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        ..Default::default()
    });
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// Detaches `prog` from the cgroup directory `cgroup`.
pub(crate) fn detach_device_prog(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = Attr::new(ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    });
    bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}

/// The ids of the device programs attached directly to `cgroup`.
pub(crate) fn query_device_progs(cgroup: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = Attr::new(ProgQuery {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    });
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate((attr.inner.prog_cnt as usize).min(64));
    Ok(ids)
}

/// Opens a program by id.
pub(crate) fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = Attr::new(GetFdById {
        prog_id: id,
        ..Default::default()
    });
    owned_fd(bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?)
}

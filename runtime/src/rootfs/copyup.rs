//! The "tmpcopyup" mount option: a tmpfs mounted over an image directory starts with a copy of
//! that directory's contents (ownership, modes, symlinks and device nodes preserved).
//!
//! The directory is opened before the tmpfs covers it; its entries are then read through that
//! fd (lookups relative to a covered directory still see its own children) and recreated
//! through an fd of the new tmpfs, never by path, so nothing in the image can redirect the copy.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat, readlinkat};
use nix::mount::MsFlags;
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmod, fchmodat, fstatat, mkdirat, mknodat};
use nix::unistd::{Gid, Uid, fchown, fchownat, symlinkat};

use super::RootfsError;
use super::mounts::sys_mount;
use super::paths::proc_fd_path;

/// Mounts a tmpfs on the directory `fd` (host path `host_path`) and copies the directory's
/// previous contents into it.
pub fn mount_tmpfs_copyup(
    fd: &OwnedFd,
    host_path: &Path,
    flags: MsFlags,
    data: &str,
    dest: &Path,
) -> Result<(), RootfsError> {
    let err = |op: &'static str| {
        move |e: Errno| RootfsError::Sys {
            op,
            path: host_path.to_path_buf(),
            source: e,
        }
    };
    let old = open(
        &proc_fd_path(fd),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("open for tmpcopyup"))?;
    // Mount writable first; apply MS_RDONLY with a remount after the copy.
    let rw = flags & !MsFlags::MS_RDONLY;
    sys_mount(
        Some(Path::new("tmpfs")),
        &proc_fd_path(fd),
        Some("tmpfs"),
        rw,
        Some(data),
        dest,
    )?;
    let new = open(
        host_path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("open new tmpfs"))?;
    copy_dir(&old, &new, host_path)?;
    let st = nix::sys::stat::fstat(old.as_fd()).map_err(err("stat"))?;
    fchown(
        new.as_fd(),
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )
    .map_err(err("chown"))?;
    if !data.split(',').any(|o| o.starts_with("mode=")) {
        fchmod(new.as_fd(), Mode::from_bits_truncate(st.st_mode & 0o7777)).map_err(err("chmod"))?;
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let top = proc_fd_path(&new);
        sys_mount(
            None,
            &top,
            None,
            flags | MsFlags::MS_REMOUNT,
            Some(data),
            dest,
        )?;
    }
    Ok(())
}

/// Recursively copies the entries of directory `src` into directory `dst`.
fn copy_dir(src: &OwnedFd, dst: &OwnedFd, shown: &Path) -> Result<(), RootfsError> {
    let sys = |op: &'static str, name: &std::ffi::CStr, e: Errno| RootfsError::Sys {
        op,
        path: shown.join(name.to_string_lossy().as_ref()),
        source: e,
    };
    let dup = nix::unistd::dup(src.as_fd()).map_err(|e| RootfsError::Sys {
        op: "dup",
        path: shown.to_path_buf(),
        source: e,
    })?;
    let mut dir = Dir::from_fd(dup).map_err(|e| RootfsError::Sys {
        op: "opendir",
        path: shown.to_path_buf(),
        source: e,
    })?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let entry = entry.map_err(|e| RootfsError::Sys {
            op: "readdir",
            path: shown.to_path_buf(),
            source: e,
        })?;
        let name = entry.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    for name in names {
        let n = name.as_c_str();
        let st =
            fstatat(src.as_fd(), n, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| sys("stat", n, e))?;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        let owner = (
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
        );
        let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
        match kind {
            SFlag::S_IFDIR => {
                mkdirat(dst.as_fd(), n, mode).map_err(|e| sys("mkdir", n, e))?;
                let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
                let s = openat(src.as_fd(), n, flags | OFlag::O_CLOEXEC, Mode::empty())
                    .map_err(|e| sys("open", n, e))?;
                let d = openat(dst.as_fd(), n, flags | OFlag::O_CLOEXEC, Mode::empty())
                    .map_err(|e| sys("open", n, e))?;
                copy_dir(&s, &d, &shown.join(n.to_string_lossy().as_ref()))?;
            }
            SFlag::S_IFREG => {
                let s = openat(
                    src.as_fd(),
                    n,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| sys("open", n, e))?;
                let d = openat(
                    dst.as_fd(),
                    n,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
                    mode,
                )
                .map_err(|e| sys("create", n, e))?;
                let (mut s, mut d) = (File::from(s), File::from(d));
                std::io::copy(&mut s, &mut d).map_err(|e| RootfsError::Io {
                    op: "copy",
                    path: shown.join(n.to_string_lossy().as_ref()),
                    source: e,
                })?;
            }
            SFlag::S_IFLNK => {
                let target = readlinkat(src.as_fd(), n).map_err(|e| sys("readlink", n, e))?;
                symlinkat(target.as_os_str(), dst.as_fd(), n).map_err(|e| sys("symlink", n, e))?;
            }
            _ => {
                mknodat(dst.as_fd(), n, kind, mode, st.st_rdev).map_err(|e| sys("mknod", n, e))?;
            }
        }
        fchownat(
            dst.as_fd(),
            n,
            owner.0,
            owner.1,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| sys("chown", n, e))?;
        if kind != SFlag::S_IFLNK {
            // chown clears setuid/setgid bits: restore the exact mode.
            fchmodat(dst.as_fd(), n, mode, FchmodatFlags::FollowSymlink)
                .map_err(|e| sys("chmod", n, e))?;
        }
    }
    Ok(())
}

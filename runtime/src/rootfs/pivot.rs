//! Switching the root: pivot_root(".", ".") with the old root detached (runc's technique, no
//! temporary directory needed), or MS_MOVE + chroot when pivot_root is not possible (the
//! current root is ramfs/tmpfs, e.g. an initramfs) or was disabled (`--no-pivot`).

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, MsFlags, umount2};
use nix::sys::stat::Mode;
use nix::sys::statfs::{FsType, TMPFS_MAGIC, statfs};
use nix::unistd::{chdir, chroot, fchdir, pivot_root};

use super::RootfsError;
use super::mountinfo;
use super::mounts::sys_mount;

fn sys<'a>(op: &'static str, path: &'a Path) -> impl Fn(Errno) -> RootfsError + 'a {
    move |e| RootfsError::Sys {
        op,
        path: path.to_path_buf(),
        source: e,
    }
}

/// RAMFS_MAGIC (statfs(2)); nix does not export it.
const RAMFS_MAGIC: FsType = FsType(0x8584_58f6 as libc::__fsword_t);

/// True when the current root cannot be pivoted away from (ramfs/tmpfs root).
pub fn root_needs_move() -> bool {
    statfs("/").is_ok_and(|s| {
        let t = s.filesystem_type();
        t == RAMFS_MAGIC || t == TMPFS_MAGIC
    })
}

/// Makes `rootfs` the root of the calling process's mount namespace.
pub fn switch_root(rootfs: &Path, no_pivot: bool) -> Result<(), RootfsError> {
    if no_pivot || root_needs_move() {
        return move_root(rootfs);
    }
    match pivot(rootfs) {
        Err(RootfsError::Sys {
            source: Errno::EINVAL,
            ..
        }) => {
            tracing::debug!(rootfs = %rootfs.display(), "pivot_root refused (EINVAL); falling back to MS_MOVE + chroot");
            move_root(rootfs)
        }
        other => other,
    }
}

fn pivot(rootfs: &Path) -> Result<(), RootfsError> {
    let dir = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let old_root = open("/", dir, Mode::empty()).map_err(sys("open", Path::new("/")))?;
    let new_root = open(rootfs, dir, Mode::empty()).map_err(sys("open", rootfs))?;
    fchdir(&new_root).map_err(sys("chdir", rootfs))?;
    pivot_root(".", ".").map_err(sys("pivot_root", rootfs))?;
    // The old root is now stacked under the new one at "/"; step onto it to detach it.
    fchdir(&old_root).map_err(sys("chdir", Path::new("(old root)")))?;
    // Make sure unmounting the old root does not propagate to the host.
    sys_mount(
        None,
        Path::new("."),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
        Path::new("(old root)"),
    )?;
    umount2(".", MntFlags::MNT_DETACH).map_err(sys("umount old root", Path::new("/")))?;
    chdir("/").map_err(sys("chdir", Path::new("/")))?;
    Ok(())
}

/// MS_MOVE the rootfs onto "/" and chroot into it. Mounts outside the rootfs are detached
/// first (best effort), so the container cannot reach them through the old mount tree.
fn move_root(rootfs: &Path) -> Result<(), RootfsError> {
    detach_outside(rootfs);
    chdir(rootfs).map_err(sys("chdir", rootfs))?;
    sys_mount(
        Some(Path::new(".")),
        Path::new("/"),
        None,
        MsFlags::MS_MOVE,
        None,
        rootfs,
    )?;
    chroot(".").map_err(sys("chroot", rootfs))?;
    chdir("/").map_err(sys("chdir", Path::new("/")))?;
    Ok(())
}

/// Detaches every mount that is neither the rootfs, inside it, nor one of its ancestors.
fn detach_outside(rootfs: &Path) {
    let Ok(mounts) = mountinfo::read_self() else {
        return;
    };
    let mut victims: Vec<PathBuf> = mounts
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| !p.starts_with(rootfs) && !rootfs.starts_with(p))
        .collect();
    // Deepest first, so parents are not busy.
    victims.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    victims.dedup();
    for p in victims {
        if let Err(e) = umount2(&p, MntFlags::MNT_DETACH) {
            tracing::debug!(mount = %p.display(), error = %e, "could not detach mount outside the rootfs");
        }
    }
}

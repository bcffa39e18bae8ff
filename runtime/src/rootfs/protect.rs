//! maskedPaths and readonlyPaths, applied after the root switch: a masked file gets /dev/null
//! bound over it, a masked directory an empty read-only tmpfs; a readonly path is bound onto
//! itself and remounted read-only (keeping flags the kernel locked). Missing paths are skipped.

use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use super::RootfsError;
use super::mounts::{remount_bind_adding, sys_mount};

/// runc's default maskedPaths (what `runc spec` writes).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// runc's default readonlyPaths.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn not_found(e: &RootfsError) -> bool {
    matches!(
        e,
        RootfsError::Mount {
            errno: Errno::ENOENT,
            ..
        }
    )
}

/// Makes `path` (a path in the current root) read-only.
pub fn readonly_path(path: &Path) -> Result<(), RootfsError> {
    let rec = MsFlags::MS_BIND | MsFlags::MS_REC;
    match sys_mount(Some(path), path, None, rec, None, path) {
        Ok(()) => {}
        Err(e) if not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    }
    let fd = open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| {
        RootfsError::Sys {
            op: "open",
            path: path.to_path_buf(),
            source: e,
        }
    })?;
    remount_bind_adding(&fd, MsFlags::MS_RDONLY, path)
}

/// Hides `path` (a path in the current root) from the container.
pub fn mask_path(path: &Path) -> Result<(), RootfsError> {
    match sys_mount(
        Some(Path::new("/dev/null")),
        path,
        None,
        MsFlags::MS_BIND,
        None,
        path,
    ) {
        Ok(()) => Ok(()),
        Err(e) if not_found(&e) => Ok(()),
        Err(RootfsError::Mount {
            errno: Errno::ENOTDIR,
            ..
        }) => sys_mount(
            Some(Path::new("tmpfs")),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None,
            path,
        ),
        Err(e) => Err(e),
    }
}

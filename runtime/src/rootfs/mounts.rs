//! Performing the spec's mounts, in order, inside the rootfs: bind/rbind (with the remount a
//! read-only bind needs), tmpfs (with tmpcopyup), proc, sysfs, mqueue, devpts and any other
//! filesystem, then per-mount propagation and recursive mount_setattr attributes.
//! Every destination is resolved with [`paths::open_in_root`] and mounted through
//! `/proc/self/fd/N`, so a symlink in the image can never redirect a mount onto the host.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::{FsFlags, fstatvfs};
use oci_spec::runtime::{LinuxIdMapping, Mount};

use super::cgroup;
use super::options::{self, MountOptions};
use super::paths::{self, Target, proc_fd_path};
use super::{RootfsError, copyup, idmap};
use crate::sys::setup;

/// Context shared by all mounts of one container.
#[derive(Debug, Clone)]
pub struct MountContext<'a> {
    /// Host path of the rootfs (already bind-mounted onto itself).
    pub rootfs: &'a Path,
    /// Bundle directory: relative bind sources are resolved against it.
    pub bundle: &'a Path,
    /// The container has its own cgroup namespace.
    pub cgroup_ns: bool,
    /// The container's user namespace mappings (uid, gid), used by "idmap" mounts that do
    /// not carry their own.
    pub userns_maps: Option<(&'a [LinuxIdMapping], &'a [LinuxIdMapping])>,
}

/// mount(2) with the target path and operation in the error.
pub(crate) fn sys_mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    shown: &Path,
) -> Result<(), RootfsError> {
    let data = data.filter(|d| !d.is_empty());
    mount(source, target, fstype, flags, data).map_err(|e| RootfsError::Mount {
        target: shown.to_path_buf(),
        fstype: fstype.unwrap_or("").to_string(),
        source_path: source.map(Path::to_path_buf).unwrap_or_default(),
        flags: format!("{flags:?}"),
        data: data.unwrap_or("").to_string(),
        errno: e,
    })
}

/// The flags of the mount holding `fd` that a remount must keep: in a user namespace the
/// kernel refuses to drop nosuid/nodev/noexec/ro/atime flags it locked on the mount.
pub(crate) fn locked_flags(fd: &OwnedFd) -> MsFlags {
    let Ok(st) = fstatvfs(fd.as_fd()) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (st, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(st) {
            out |= ms;
        }
    }
    out
}

/// Remounts the bind mount at `fd` with `flags` (plus MS_BIND|MS_REMOUNT); on EPERM retries
/// keeping the flags the kernel locked, like runc.
pub(crate) fn remount_bind(fd: &OwnedFd, flags: MsFlags, shown: &Path) -> Result<(), RootfsError> {
    let target = proc_fd_path(fd);
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags;
    match sys_mount(None, &target, None, base, None, shown) {
        Err(RootfsError::Mount {
            errno: Errno::EPERM,
            ..
        }) => {
            let mut keep = locked_flags(fd);
            // Keep the requested atime mode rather than the current one.
            if flags
                .intersects(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME)
            {
                keep.remove(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME);
            }
            sys_mount(None, &target, None, base | keep, None, shown)
        }
        other => other,
    }
}

/// Remounts the bind mount at `fd` adding `add` (e.g. MS_RDONLY) to the flags it already
/// has, so making something read-only never drops nosuid/nodev/noexec.
pub(crate) fn remount_bind_adding(
    fd: &OwnedFd,
    add: MsFlags,
    shown: &Path,
) -> Result<(), RootfsError> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | add | locked_flags(fd);
    sys_mount(None, &proc_fd_path(fd), None, flags, None, shown)
}

/// Performs one spec mount. `index` is its position in `mounts`, for error messages.
pub fn mount_entry(ctx: &MountContext<'_>, m: &Mount, index: usize) -> Result<(), RootfsError> {
    let dest = m.destination();
    if !dest.is_absolute() {
        tracing::warn!(mount = index, destination = %dest.display(),
            "mount destination is not absolute; treating it as relative to the container root");
    }
    let raw_opts = m.options().clone().unwrap_or_default();
    let mut opts = options::parse(&raw_opts).map_err(|o| RootfsError::InvalidMount {
        index,
        destination: dest.to_path_buf(),
        reason: format!("unsupported option {:?}", o.0),
    })?;
    let typ = m.typ().as_deref().unwrap_or("");
    if typ == "bind" {
        opts.flags |= MsFlags::MS_BIND;
    }
    if !opts.is_bind() {
        idmap::requested(m, &opts, ctx.userns_maps).map_err(|reason| {
            RootfsError::InvalidMount {
                index,
                destination: dest.to_path_buf(),
                reason,
            }
        })?;
    }
    let top = if (typ == "cgroup" || typ == "cgroup2") && !opts.is_bind() {
        cgroup::mount_cgroup(ctx, m, &opts, typ == "cgroup2")?;
        open_existing(ctx.rootfs, dest)?
    } else if opts.is_bind() {
        bind_mount(ctx, m, &opts, index)?
    } else {
        fs_mount(ctx, m, typ, &opts, index)?
    };
    apply_after(&top, &opts, dest)
}

/// Propagation changes and recursive attributes, applied to the mount now at the destination.
fn apply_after(top: &OwnedFd, opts: &MountOptions, dest: &Path) -> Result<(), RootfsError> {
    let target = proc_fd_path(top);
    for p in &opts.propagation {
        sys_mount(None, &target, None, *p, None, dest)?;
    }
    if opts.rec_attr_set != 0 || opts.rec_attr_clr != 0 {
        setup::mount_setattr(top.as_fd(), true, opts.rec_attr_set, opts.rec_attr_clr).map_err(
            |e| RootfsError::Sys {
                op: "mount_setattr",
                path: dest.to_path_buf(),
                source: e,
            },
        )?;
    }
    Ok(())
}

/// Opens what is now mounted at `dest` (the top of the mount stack).
pub(crate) fn open_existing(rootfs: &Path, dest: &Path) -> Result<OwnedFd, RootfsError> {
    Ok(paths::open_in_root(rootfs, dest, Target::Existing)?.0)
}

/// Host path of a bind source: relative sources are relative to the bundle.
pub(crate) fn bind_source(bundle: &Path, source: &Path) -> PathBuf {
    if source.is_absolute() {
        source.to_path_buf()
    } else {
        bundle.join(source)
    }
}

fn bind_mount(
    ctx: &MountContext<'_>,
    m: &Mount,
    opts: &MountOptions,
    index: usize,
) -> Result<OwnedFd, RootfsError> {
    let dest = m.destination();
    let source = m
        .source()
        .as_deref()
        .ok_or_else(|| RootfsError::InvalidMount {
            index,
            destination: dest.to_path_buf(),
            reason: "bind mount without a source".into(),
        })?;
    let source = bind_source(ctx.bundle, source);
    let meta = std::fs::metadata(&source).map_err(|e| RootfsError::Io {
        op: "stat bind source",
        path: source.clone(),
        source: e,
    })?;
    let kind = if meta.is_dir() {
        Target::Dir
    } else {
        Target::File
    };
    let map =
        idmap::requested(m, opts, ctx.userns_maps).map_err(|reason| RootfsError::InvalidMount {
            index,
            destination: dest.to_path_buf(),
            reason,
        })?;
    let (fd, _) = paths::open_in_root(ctx.rootfs, dest, kind)?;
    let rec = opts.flags.contains(MsFlags::MS_REC);
    if let Some(map) = map {
        idmap::bind(&source, &fd, rec, &map, dest)?;
    } else {
        let flags = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
        sys_mount(Some(&source), &proc_fd_path(&fd), None, flags, None, dest)?;
    }
    drop(fd);
    let top = open_existing(ctx.rootfs, dest)?;
    let re = opts.remount_flags();
    let nosym = if opts.nosymfollow {
        MsFlags::from_bits_retain(options::MS_NOSYMFOLLOW as libc::c_ulong)
    } else {
        MsFlags::empty()
    };
    if !re.is_empty() || opts.nosymfollow {
        remount_bind(&top, re | nosym, dest)?;
    }
    Ok(top)
}

fn fs_mount(
    ctx: &MountContext<'_>,
    m: &Mount,
    typ: &str,
    opts: &MountOptions,
    index: usize,
) -> Result<OwnedFd, RootfsError> {
    let dest = m.destination();
    if (typ == "proc" || typ == "sysfs")
        && paths::secure_join(ctx.rootfs, dest)? != paths::lexical_join(ctx.rootfs, dest)
    {
        // Mounting procfs/sysfs elsewhere than where the image claims would leave the real
        // /proc paths unmasked (CVE-2019-16884-style): refuse, like runc.
        return Err(RootfsError::InvalidMount {
            index,
            destination: dest.to_path_buf(),
            reason: format!("{typ} must be mounted on a real directory, not through a symlink"),
        });
    }
    let (fd, host_path) = paths::open_in_root(ctx.rootfs, dest, Target::Dir)?;
    let source = m
        .source()
        .clone()
        .unwrap_or_else(|| PathBuf::from(if typ.is_empty() { "none" } else { typ }));
    let fstype = (!typ.is_empty()).then_some(typ);
    let flags = opts.mount_flags() & !MsFlags::MS_REMOUNT;
    let data = Some(opts.data.as_str());
    if opts.tmpcopyup && typ == "tmpfs" {
        copyup::mount_tmpfs_copyup(&fd, &host_path, flags, &opts.data, dest)?;
        return open_existing(ctx.rootfs, dest);
    }
    let target = proc_fd_path(&fd);
    match sys_mount(Some(&source), &target, fstype, flags, data, dest) {
        Ok(()) => {}
        // Without a private IPC namespace (or in a user namespace) mqueue cannot be mounted:
        // bind the host's /dev/mqueue instead, like runc.
        Err(RootfsError::Mount {
            errno: Errno::EPERM | Errno::EBUSY,
            ..
        }) if typ == "mqueue" => {
            tracing::debug!(destination = %dest.display(), "mqueue mount refused; bind-mounting /dev/mqueue");
            let rec = MsFlags::MS_BIND | MsFlags::MS_REC;
            sys_mount(
                Some(Path::new("/dev/mqueue")),
                &target,
                None,
                rec,
                None,
                dest,
            )?;
        }
        // sysfs cannot be mounted in a user namespace without a network namespace: rbind /sys.
        Err(RootfsError::Mount {
            errno: Errno::EPERM,
            ..
        }) if typ == "sysfs" => {
            tracing::debug!(destination = %dest.display(), "sysfs mount refused; bind-mounting /sys");
            let rec = MsFlags::MS_BIND | MsFlags::MS_REC;
            sys_mount(Some(Path::new("/sys")), &target, None, rec, None, dest)?;
            drop(fd);
            let top = open_existing(ctx.rootfs, dest)?;
            remount_bind(&top, opts.remount_flags(), dest)?;
            return Ok(top);
        }
        Err(e) => return Err(e),
    }
    drop(fd);
    open_existing(ctx.rootfs, dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_bind_source_is_bundle_relative() {
        let b = Path::new("/run/bundle");
        assert_eq!(
            bind_source(b, Path::new("data")),
            PathBuf::from("/run/bundle/data")
        );
        assert_eq!(bind_source(b, Path::new("/etc")), PathBuf::from("/etc"));
    }

    fn mount(json: serde_json::Value) -> Mount {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn proc_through_symlink_and_bad_idmap_are_refused_before_mounting() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink("/elsewhere", root.path().join("proc")).unwrap();
        let ctx = MountContext {
            rootfs: root.path(),
            bundle: root.path(),
            cgroup_ns: false,
            userns_maps: None,
        };
        let m =
            mount(serde_json::json!({"destination": "/proc", "type": "proc", "source": "proc"}));
        let e = mount_entry(&ctx, &m, 3).unwrap_err().to_string();
        assert!(e.contains("mounts[3]") && e.contains("symlink"), "{e}");
        // idmap on a non-bind mount, or without any mappings, is refused before mounting.
        let m = mount(
            serde_json::json!({"destination": "/x", "type": "tmpfs", "source": "tmpfs",
            "options": ["idmap"]}),
        );
        let e = mount_entry(&ctx, &m, 0).unwrap_err().to_string();
        assert!(e.contains("only supported for bind mounts"), "{e}");
        let m = mount(
            serde_json::json!({"destination": "/x", "type": "bind", "source": "/tmp",
            "options": ["idmap"]}),
        );
        let e = mount_entry(&ctx, &m, 0).unwrap_err().to_string();
        assert!(e.contains("needs uidMappings"), "{e}");
        assert!(!root.path().join("x").exists());
    }
}

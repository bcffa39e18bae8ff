//! The `cgroup` mount: cgroup2 on a unified host; on a v1 (or hybrid) host a tmpfs at the
//! destination with one mount per hierarchy found in `/proc/self/mountinfo` — a fresh cgroup
//! mount when the container has its own cgroup namespace, otherwise a bind of the container's
//! own cgroup directory — plus symlinks for co-mounted controllers (`cpu -> cpu,cpuacct`).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};
use nix::unistd::symlinkat;
use oci_spec::runtime::Mount;

use super::RootfsError;
use super::mountinfo::{self, MountInfo};
use super::mounts::{MountContext, open_existing, remount_bind, sys_mount};
use super::options::MountOptions;
use super::paths::{self, Target, proc_fd_path};

/// Where the host's cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// True when the host runs the cgroup v2 unified hierarchy at /sys/fs/cgroup.
pub fn host_is_unified() -> bool {
    statfs(CGROUP_ROOT).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// One line of /proc/self/cgroup: controllers (empty for v2) and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnCgroup {
    /// Controllers of the hierarchy ("cpu", "cpuacct", "name=systemd"); empty for cgroup2.
    pub controllers: Vec<String>,
    /// Path of this process's cgroup in that hierarchy.
    pub path: PathBuf,
}

/// Parses /proc/self/cgroup text.
pub fn parse_proc_cgroup(text: &str) -> Vec<OwnCgroup> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctrl = it.next()?;
            let path = it.next()?;
            Some(OwnCgroup {
                controllers: ctrl
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path: PathBuf::from(path),
            })
        })
        .collect()
}

/// A v1 (or hybrid cgroup2) hierarchy to reproduce inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Directory name under the cgroup mount ("cpu,cpuacct", "systemd", "unified").
    pub name: String,
    /// "cgroup" or "cgroup2".
    pub fs_type: String,
    /// Mount data for a fresh mount ("cpu,cpuacct", "xattr,name=systemd"; empty for cgroup2).
    pub data: String,
    /// Host path to bind from when the container shares the host cgroup namespace.
    pub bind_source: PathBuf,
}

/// Derives the hierarchies from mountinfo and this process's cgroup membership.
pub fn hierarchies(mounts: &[MountInfo], own: &[OwnCgroup]) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for m in mounts {
        if m.fs_type != "cgroup" && m.fs_type != "cgroup2" {
            continue;
        }
        if !m.mount_point.starts_with(CGROUP_ROOT) || m.mount_point == Path::new(CGROUP_ROOT) {
            continue;
        }
        let Some(name) = m.mount_point.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if out.iter().any(|h| h.name == name) {
            continue;
        }
        let opts: Vec<&str> = m
            .super_options
            .split(',')
            .filter(|o| *o != "rw" && *o != "ro" && !o.is_empty())
            .collect();
        let v2 = m.fs_type == "cgroup2";
        let mine = own.iter().find(|c| {
            if v2 {
                c.controllers.is_empty()
            } else {
                c.controllers.iter().any(|ctl| opts.contains(&ctl.as_str()))
            }
        });
        let bind_source = match mine.and_then(|c| c.path.strip_prefix(&m.root).ok()) {
            Some(rel) => m.mount_point.join(rel),
            None => m.mount_point.clone(),
        };
        out.push(Hierarchy {
            name: name.to_string(),
            fs_type: m.fs_type.clone(),
            data: if v2 { String::new() } else { opts.join(",") },
            bind_source,
        });
    }
    out
}

/// Mounts the spec's cgroup mount (`opts` parsed from its options).
pub fn mount_cgroup(
    ctx: &MountContext<'_>,
    m: &Mount,
    opts: &MountOptions,
    _typed_v2: bool,
) -> Result<(), RootfsError> {
    let dest = m.destination();
    let flags = opts.mount_flags() & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if host_is_unified() {
        let (fd, _) = paths::open_in_root(ctx.rootfs, dest, Target::Dir)?;
        let target = proc_fd_path(&fd);
        return match sys_mount(
            Some(Path::new("cgroup2")),
            &target,
            Some("cgroup2"),
            flags,
            Some(&opts.data),
            dest,
        ) {
            Err(RootfsError::Mount {
                errno: Errno::EPERM | Errno::EBUSY,
                ..
            }) => {
                // In a user namespace without a cgroup namespace cgroup2 cannot be mounted:
                // bind the container's own cgroup instead.
                let own = read_own()?;
                let path = own
                    .iter()
                    .find(|c| c.controllers.is_empty())
                    .map(|c| c.path.clone())
                    .unwrap_or_else(|| PathBuf::from("/"));
                let rel = path.strip_prefix("/").unwrap_or(&path);
                let src = Path::new(CGROUP_ROOT).join(rel);
                tracing::debug!(source = %src.display(), "cgroup2 mount refused; bind-mounting the container's cgroup");
                let rec = MsFlags::MS_BIND | MsFlags::MS_REC;
                sys_mount(Some(&src), &target, None, rec, None, dest)?;
                drop(fd);
                let top = open_existing(ctx.rootfs, dest)?;
                remount_bind(&top, flags, dest)
            }
            other => other,
        };
    }
    mount_v1(ctx, dest, flags)
}

fn read_own() -> Result<Vec<OwnCgroup>, RootfsError> {
    let p = Path::new("/proc/self/cgroup");
    let text = std::fs::read_to_string(p).map_err(|e| RootfsError::Io {
        op: "read",
        path: p.to_path_buf(),
        source: e,
    })?;
    Ok(parse_proc_cgroup(&text))
}

fn mount_v1(ctx: &MountContext<'_>, dest: &Path, flags: MsFlags) -> Result<(), RootfsError> {
    let hier = hierarchies(&mountinfo::read_self()?, &read_own()?);
    mount_hierarchies(ctx, dest, flags, &hier)
}

/// The v1 layout at `dest`: a tmpfs, one mount per hierarchy (fresh with a cgroup namespace,
/// a bind of `bind_source` otherwise), symlinks for co-mounted controllers, then the tmpfs
/// remounted read-only when `flags` has MS_RDONLY.
pub fn mount_hierarchies(
    ctx: &MountContext<'_>,
    dest: &Path,
    flags: MsFlags,
    hier: &[Hierarchy],
) -> Result<(), RootfsError> {
    let (fd, _) = paths::open_in_root(ctx.rootfs, dest, Target::Dir)?;
    let tmpfs_flags = flags & !MsFlags::MS_RDONLY;
    sys_mount(
        Some(Path::new("tmpfs")),
        &proc_fd_path(&fd),
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
        dest,
    )?;
    drop(fd);
    let tmpfs = open_existing(ctx.rootfs, dest)?;
    for h in hier {
        let sub = dest.join(&h.name);
        let (fd, _) = paths::open_in_root(ctx.rootfs, &sub, Target::Dir)?;
        let target = proc_fd_path(&fd);
        if ctx.cgroup_ns {
            let source = Path::new(&h.fs_type);
            sys_mount(
                Some(source),
                &target,
                Some(&h.fs_type),
                flags,
                Some(&h.data),
                &sub,
            )?;
        } else {
            let rec = MsFlags::MS_BIND | MsFlags::MS_REC;
            sys_mount(Some(&h.bind_source), &target, None, rec, None, &sub)?;
            drop(fd);
            let top = open_existing(ctx.rootfs, &sub)?;
            if !flags.is_empty() {
                remount_bind(&top, flags, &sub)?;
            }
        }
        if h.name.contains(',') {
            for part in h.name.split(',') {
                match symlinkat(h.name.as_str(), tmpfs.as_fd(), part) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(RootfsError::Sys {
                            op: "symlink",
                            path: dest.join(part),
                            source: e,
                        });
                    }
                }
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        sys_mount(
            None,
            &proc_fd_path(&tmpfs),
            None,
            flags | MsFlags::MS_REMOUNT,
            Some("mode=755"),
            dest,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /kina /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    const OWN: &str = "\
12:name=systemd:/kina/c1
4:memory:/kina/c1
2:cpu,cpuacct:/kina/c1
0::/kina/c1
";

    #[test]
    fn hierarchies_from_mountinfo() {
        let h = hierarchies(&mountinfo::parse(HYBRID), &parse_proc_cgroup(OWN));
        let names: Vec<_> = h.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["cpu,cpuacct", "memory", "systemd", "unified"]);
        assert_eq!(h[0].data, "cpu,cpuacct");
        assert_eq!(
            h[0].bind_source,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/kina/c1")
        );
        // The memory hierarchy's mount root is /kina, so the bind source is relative to it.
        assert_eq!(h[1].bind_source, PathBuf::from("/sys/fs/cgroup/memory/c1"));
        assert_eq!(h[2].data, "xattr,name=systemd");
        assert_eq!(h[3].fs_type, "cgroup2");
        assert_eq!(h[3].data, "");
        assert_eq!(
            h[3].bind_source,
            PathBuf::from("/sys/fs/cgroup/unified/kina/c1")
        );
    }

    #[test]
    fn proc_cgroup_parsing() {
        let c = parse_proc_cgroup(OWN);
        assert_eq!(c[0].controllers, ["name=systemd"]);
        assert!(c[3].controllers.is_empty());
        assert_eq!(c[3].path, PathBuf::from("/kina/c1"));
    }
}

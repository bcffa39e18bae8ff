//! Device nodes inside the container: the default set every container gets (null, zero, full,
//! random, urandom, tty) and `linux.devices` — created with mknod, or, where mknod is not
//! permitted (a user namespace), as a bind mount of the host's node onto an empty file.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::mount::MsFlags;
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmodat, fstatat, makedev, mknodat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, unlinkat};
use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
};

use super::RootfsError;
use super::mounts::sys_mount;
use super::paths::{self, Target, proc_fd_path};

/// A device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Container path ("/dev/null").
    pub path: PathBuf,
    /// S_IFCHR, S_IFBLK or S_IFIFO.
    pub kind: SFlag,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// The devices every container gets when /dev is not bind-mounted from the host
/// (runc's default set): (path, major, minor), character devices, mode 0666, root-owned.
pub const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Device cgroup rules every container needs on top of its spec's `linux.resources.devices`
/// (runc adds the same): mknod of anything, plus rwm on the default devices, /dev/pts/* and
/// /dev/ptmx. Without them a deny-all spec makes /dev/null unusable.
pub fn default_device_cgroup_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .access(access.to_string());
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().expect("static device rule")
    };
    let mut rules = vec![
        rule(LinuxDeviceType::C, None, None, "m"),
        rule(LinuxDeviceType::B, None, None, "m"),
    ];
    for (_, major, minor) in DEFAULT_DEVICES {
        rules.push(rule(
            LinuxDeviceType::C,
            Some(*major as i64),
            Some(*minor as i64),
            "rwm",
        ));
    }
    rules.push(rule(LinuxDeviceType::C, Some(136), None, "rwm"));
    rules.push(rule(LinuxDeviceType::C, Some(5), Some(2), "rwm"));
    rules
}

/// The default devices as [`DeviceNode`]s.
pub fn default_devices() -> Vec<DeviceNode> {
    DEFAULT_DEVICES
        .iter()
        .map(|(p, major, minor)| DeviceNode {
            path: PathBuf::from(p),
            kind: SFlag::S_IFCHR,
            major: *major,
            minor: *minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect()
}

/// Validates a `linux.devices` entry and converts it.
pub fn from_spec(d: &LinuxDevice) -> Result<DeviceNode, RootfsError> {
    let bad = |reason: String| RootfsError::Device {
        path: d.path().to_path_buf(),
        reason,
    };
    if !d.path().is_absolute() {
        return Err(bad("path must be absolute".into()));
    }
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => return Err(bad("type \"a\" is not a device node type".into())),
    };
    let num = |v: i64, what: &str| {
        u64::try_from(v).map_err(|_| bad(format!("{what} number {v} is negative")))
    };
    let (major, minor) = if kind == SFlag::S_IFIFO {
        (0, 0)
    } else {
        (num(d.major(), "major")?, num(d.minor(), "minor")?)
    };
    let mode = d.file_mode().map(|m| m & 0o7777).unwrap_or(0o666);
    Ok(DeviceNode {
        path: d.path().to_path_buf(),
        kind,
        major,
        minor,
        mode,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Creates `node` inside `rootfs`. When mknod is refused with EPERM (no CAP_MKNOD, or a user
/// namespace) the host's node at the same path is bind-mounted instead.
pub fn create(rootfs: &Path, node: &DeviceNode) -> Result<(), RootfsError> {
    let parent = node.path.parent().unwrap_or(Path::new("/"));
    let Some(name) = node.path.file_name() else {
        return Err(RootfsError::Device {
            path: node.path.clone(),
            reason: "path has no file name".into(),
        });
    };
    let (dir, host_dir) = paths::open_in_root(rootfs, parent, Target::Dir)?;
    let dir = nix::fcntl::open(
        &proc_fd_path(&dir),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys("open", &host_dir, e))?;
    let host_path = host_dir.join(name);
    let dev = makedev(node.major, node.minor);
    // Replace whatever is there unless it already is the right node.
    if let Ok(st) = fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        let same = (st.st_mode & libc::S_IFMT) == node.kind.bits() && st.st_rdev == dev;
        if same {
            return finish(&dir, name, node, &host_path);
        }
        let flag = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            UnlinkatFlags::RemoveDir
        } else {
            UnlinkatFlags::NoRemoveDir
        };
        unlinkat(dir.as_fd(), name, flag).map_err(|e| sys("unlink", &host_path, e))?;
    }
    match mknodat(
        dir.as_fd(),
        name,
        node.kind,
        Mode::from_bits_truncate(node.mode),
        dev,
    ) {
        Ok(()) => finish(&dir, name, node, &host_path),
        Err(Errno::EPERM) => {
            tracing::debug!(device = %node.path.display(), "mknod not permitted; bind-mounting the host device");
            let (fd, _) = paths::open_in_root(rootfs, &node.path, Target::File)?;
            let shown = node.path.as_path();
            sys_mount(
                Some(&node.path),
                &proc_fd_path(&fd),
                None,
                MsFlags::MS_BIND,
                None,
                shown,
            )
        }
        Err(e) => Err(sys("mknod", &host_path, e)),
    }
}

fn finish(
    dir: &std::os::fd::OwnedFd,
    name: &std::ffi::OsStr,
    node: &DeviceNode,
    host_path: &Path,
) -> Result<(), RootfsError> {
    fchownat(
        dir.as_fd(),
        name,
        Some(Uid::from_raw(node.uid)),
        Some(Gid::from_raw(node.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| sys("chown", host_path, e))?;
    // mknod applied the umask: set the exact mode.
    fchmodat(
        dir.as_fd(),
        name,
        Mode::from_bits_truncate(node.mode),
        FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| sys("chmod", host_path, e))
}

fn sys(op: &'static str, path: &Path, e: Errno) -> RootfsError {
    RootfsError::Sys {
        op,
        path: path.to_path_buf(),
        source: e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceBuilder;

    #[test]
    fn spec_device_conversion() {
        let d = LinuxDeviceBuilder::default()
            .path("/dev/fuse")
            .typ(LinuxDeviceType::C)
            .major(10)
            .minor(229)
            .file_mode(0o20660u32)
            .uid(5u32)
            .build()
            .unwrap();
        let n = from_spec(&d).unwrap();
        assert_eq!(
            (n.major, n.minor, n.mode, n.uid, n.gid),
            (10, 229, 0o660, 5, 0)
        );
        assert_eq!(n.kind, SFlag::S_IFCHR);
    }

    #[test]
    fn default_cgroup_rules_cover_default_devices() {
        let rules = default_device_cgroup_rules();
        assert_eq!(rules.len(), 2 + DEFAULT_DEVICES.len() + 2);
        let null = rules
            .iter()
            .find(|r| r.major() == Some(1) && r.minor() == Some(3))
            .unwrap();
        assert!(null.allow() && null.access().as_deref() == Some("rwm"));
        assert!(rules.iter().all(|r| r.allow()));
    }

    #[test]
    fn invalid_devices_are_refused() {
        let all = LinuxDeviceBuilder::default()
            .path("/dev/x")
            .typ(LinuxDeviceType::A)
            .build()
            .unwrap();
        assert!(from_spec(&all).unwrap_err().to_string().contains("/dev/x"));
        let neg = LinuxDeviceBuilder::default()
            .path("/dev/x")
            .typ(LinuxDeviceType::B)
            .major(-1)
            .build()
            .unwrap();
        assert!(
            from_spec(&neg)
                .unwrap_err()
                .to_string()
                .contains("negative")
        );
        let rel = LinuxDeviceBuilder::default()
            .path("dev/x")
            .typ(LinuxDeviceType::C)
            .build()
            .unwrap();
        assert!(from_spec(&rel).is_err());
    }
}

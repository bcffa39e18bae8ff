//! Populating the container's /dev when it is not bind-mounted from the host: default device
//! nodes plus `linux.devices`, the /dev/fd and stdio symlinks, /dev/ptmx -> pts/ptmx,
//! /dev/core when the host has /proc/kcore, and /dev/shm.

use std::os::fd::AsFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;
use nix::unistd::{UnlinkatFlags, symlinkat, unlinkat};
use oci_spec::runtime::Spec;

use super::RootfsError;
use super::devices::{self, DeviceNode};
use super::paths::{self, Target};

/// The symlinks every /dev gets: (name in /dev, target).
pub const DEV_SYMLINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// True unless the spec bind-mounts /dev from somewhere (then /dev is left alone, like runc).
pub fn needs_setup(spec: &Spec) -> bool {
    !spec.mounts().iter().flatten().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    })
}

/// The devices to create: the defaults, overridden by `linux.devices` with the same path.
pub fn device_list(spec: &Spec) -> Result<Vec<DeviceNode>, RootfsError> {
    let mut list = devices::default_devices();
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        let node = devices::from_spec(d)?;
        list.retain(|n| n.path != node.path);
        list.push(node);
    }
    Ok(list)
}

/// Creates devices, symlinks, ptmx and shm under `rootfs`/dev.
pub fn setup(rootfs: &Path, spec: &Spec) -> Result<(), RootfsError> {
    let (dev, host_dev) = paths::open_in_root(rootfs, Path::new("/dev"), Target::Dir)?;
    let dev = nix::fcntl::open(
        &paths::proc_fd_path(&dev),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RootfsError::Sys {
        op: "open",
        path: host_dev.clone(),
        source: e,
    })?;
    for node in device_list(spec)? {
        devices::create(rootfs, &node)?;
    }
    let mut links: Vec<(&str, &str)> = DEV_SYMLINKS.to_vec();
    if Path::new("/proc/kcore").exists() {
        links.push(("core", "/proc/kcore"));
    }
    for (name, target) in links {
        match symlinkat(target, dev.as_fd(), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(RootfsError::Sys {
                    op: "symlink",
                    path: host_dev.join(name),
                    source: e,
                });
            }
        }
    }
    // /dev/ptmx must point at the container's devpts instance.
    if fstatat(dev.as_fd(), "ptmx", AtFlags::AT_SYMLINK_NOFOLLOW).is_ok() {
        unlinkat(dev.as_fd(), "ptmx", UnlinkatFlags::NoRemoveDir).map_err(|e| {
            RootfsError::Sys {
                op: "unlink",
                path: host_dev.join("ptmx"),
                source: e,
            }
        })?;
    }
    symlinkat("pts/ptmx", dev.as_fd(), "ptmx").map_err(|e| RootfsError::Sys {
        op: "symlink",
        path: host_dev.join("ptmx"),
        source: e,
    })?;
    paths::open_in_root(rootfs, Path::new("/dev/shm"), Target::Dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBuilder, LinuxDeviceBuilder, LinuxDeviceType, MountBuilder, SpecBuilder,
    };

    #[test]
    fn dev_bind_disables_setup() {
        let mut spec = Spec::default();
        assert!(needs_setup(&spec));
        let m = MountBuilder::default()
            .destination("/dev")
            .typ("none")
            .source("/dev")
            .options(vec!["rbind".to_string()])
            .build()
            .unwrap();
        spec.set_mounts(Some(vec![m]));
        assert!(!needs_setup(&spec));
    }

    #[test]
    fn spec_devices_override_defaults() {
        let null = LinuxDeviceBuilder::default()
            .path("/dev/null")
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .file_mode(0o600u32)
            .build()
            .unwrap();
        let spec = SpecBuilder::default()
            .linux(LinuxBuilder::default().devices(vec![null]).build().unwrap())
            .build()
            .unwrap();
        let list = device_list(&spec).unwrap();
        assert_eq!(list.len(), devices::DEFAULT_DEVICES.len());
        let n = list
            .iter()
            .find(|n| n.path == Path::new("/dev/null"))
            .unwrap();
        assert_eq!(n.mode, 0o600);
    }
}

//! Root filesystem: mounts in order with propagation, /dev, pivot_root or chroot, masked and readonly paths, sysctls.
//!
//! The init process calls, in order and inside its new mount namespace:
//! [`prepare`] (root propagation, rootfs bind, every spec mount, /dev, devices),
//! [`pivot`] (switch root), then [`finalize`] (rootfs propagation, sysctls, readonly and
//! masked paths, read-only root).

pub mod cgroup;
mod copyup;
pub mod dev;
pub mod devices;
pub mod idmap;
pub mod mountinfo;
pub mod mounts;
pub mod options;
pub mod paths;
pub mod pivot;
pub mod protect;
pub mod sysctl;

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use oci_spec::runtime::Spec;

pub use devices::{DEFAULT_DEVICES, default_device_cgroup_rules};
pub use protect::{DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS};

use mounts::{MountContext, sys_mount};
use paths::Target;

/// Errors of the rootfs stage; each names the path, mount or field involved.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The spec has no `root` section.
    #[error("spec has no root.path")]
    NoRoot,
    /// A syscall on a path failed.
    #[error("{op} {path}: {source}")]
    Sys {
        /// Operation ("mkdir", "pivot_root", …).
        op: &'static str,
        /// Path involved.
        path: PathBuf,
        /// errno.
        source: Errno,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// Operation.
        op: &'static str,
        /// Path involved.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
    /// mount(2) failed.
    #[error(
        "mount {fstype:?} from {source_path:?} on {target} (flags {flags}, data {data:?}): {errno}"
    )]
    Mount {
        /// Container path of the target.
        target: PathBuf,
        /// Filesystem type ("" for bind/remount/propagation).
        fstype: String,
        /// Source.
        source_path: PathBuf,
        /// Flags, formatted.
        flags: String,
        /// Data string.
        data: String,
        /// errno.
        errno: Errno,
    },
    /// A spec mount is invalid.
    #[error("mounts[{index}] ({destination}): {reason}")]
    InvalidMount {
        /// Index in `mounts`.
        index: usize,
        /// Destination.
        destination: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Setting up one spec mount failed (wraps the underlying error with its position).
    #[error("mounts[{index}] ({destination}): {source}")]
    AtMount {
        /// Index in `mounts`.
        index: usize,
        /// Destination.
        destination: PathBuf,
        /// What failed.
        #[source]
        source: Box<RootfsError>,
    },
    /// A path would resolve outside the rootfs.
    #[error("path {path} escapes the container rootfs {root}: {reason}")]
    Escape {
        /// The container path.
        path: PathBuf,
        /// The rootfs.
        root: PathBuf,
        /// Why.
        reason: String,
    },
    /// A mount target exists but is not a directory (or has a non-directory parent).
    #[error("{path} {reason}")]
    NotDirectory {
        /// Host path.
        path: PathBuf,
        /// Description.
        reason: String,
    },
    /// A `linux.devices` entry is invalid.
    #[error("linux.devices {path}: {reason}")]
    Device {
        /// Device path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A sysctl is invalid or could not be set.
    #[error("linux.sysctl {key:?}: {reason}")]
    Sysctl {
        /// The sysctl name.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// linux.rootfsPropagation has an unknown value.
    #[error(
        "linux.rootfsPropagation {0:?} is not one of shared, slave, private, unbindable (optionally with an r prefix)"
    )]
    Propagation(String),
}

impl RootfsError {
    /// The innermost error (through [`RootfsError::AtMount`] wrappers).
    pub fn root_cause(&self) -> &RootfsError {
        match self {
            RootfsError::AtMount { source, .. } => source.root_cause(),
            other => other,
        }
    }

    fn at_mount(self, index: usize, destination: &Path) -> RootfsError {
        match self {
            e @ (RootfsError::InvalidMount { .. } | RootfsError::AtMount { .. }) => e,
            e => RootfsError::AtMount {
                index,
                destination: destination.to_path_buf(),
                source: Box::new(e),
            },
        }
    }
}

/// The host path of the container's rootfs: `root.path`, relative to the bundle when not
/// absolute, with symlinks resolved (the mount table only knows real paths).
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf, RootfsError> {
    let root = spec.root().as_ref().ok_or(RootfsError::NoRoot)?;
    let p = if root.path().is_absolute() {
        root.path().to_path_buf()
    } else {
        bundle.join(root.path())
    };
    std::fs::canonicalize(&p).map_err(|e| RootfsError::Io {
        op: "resolve root.path",
        path: p,
        source: e,
    })
}

fn rootfs_propagation(spec: &Spec) -> Result<Option<MsFlags>, RootfsError> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        None | Some("") => Ok(None),
        Some(v) => options::parse_propagation(v)
            .map(Some)
            .ok_or_else(|| RootfsError::Propagation(v.to_string())),
    }
}

/// Sets up the rootfs (see the module docs). Runs in the container's new mount namespace.
pub fn prepare(spec: &Spec, bundle: &Path, cgroup_ns: bool) -> Result<(), RootfsError> {
    let rootfs = rootfs_path(spec, bundle)?;
    if let Some(label) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.mount_label().as_deref())
        && !label.is_empty()
    {
        tracing::warn!(
            label,
            "linux.mountLabel is not applied (SELinux mount contexts are not supported)"
        );
    }
    // Never let our mounts propagate back to the host. A shared root propagation is applied
    // after the root switch (see finalize), to the container's own root only.
    let prop = rootfs_propagation(spec)?;
    let initial = match prop {
        Some(p) if !p.contains(MsFlags::MS_SHARED) => p,
        _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    let root = Path::new("/");
    sys_mount(None, root, None, initial, None, root)?;
    make_parent_private(&rootfs)?;
    sys_mount(
        Some(&rootfs),
        &rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
        &rootfs,
    )?;
    let userns_maps = spec.linux().as_ref().and_then(|l| {
        match (l.uid_mappings().as_deref(), l.gid_mappings().as_deref()) {
            (Some(u), Some(g)) => Some((u, g)),
            _ => None,
        }
    });
    let ctx = MountContext {
        rootfs: &rootfs,
        bundle,
        cgroup_ns,
        userns_maps,
    };
    let mut dev_readonly = false;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        // /dev is populated after the mounts: mount it writable, remount read-only after.
        let is_dev = m.destination() == Path::new("/dev");
        let ro = m.options().iter().flatten().any(|o| o == "ro");
        if is_dev && ro {
            let mut rw = m.clone();
            let opts = m.options().iter().flatten().filter(|o| *o != "ro").cloned();
            rw.set_options(Some(opts.collect()));
            mounts::mount_entry(&ctx, &rw, i).map_err(|e| e.at_mount(i, m.destination()))?;
            dev_readonly = true;
        } else {
            mounts::mount_entry(&ctx, m, i).map_err(|e| e.at_mount(i, m.destination()))?;
        }
    }
    if dev::needs_setup(spec) {
        dev::setup(&rootfs, spec)?;
    }
    if dev_readonly {
        let fd = mounts::open_existing(&rootfs, Path::new("/dev"))?;
        mounts::remount_bind_adding(&fd, MsFlags::MS_RDONLY, Path::new("/dev"))?;
    }
    // Like runc: the working directory exists before the process starts.
    if let Some(cwd) = spec.process().as_ref().map(|p| p.cwd())
        && cwd.is_absolute()
        && cwd != Path::new("/")
    {
        paths::open_in_root(&rootfs, cwd, Target::Dir)?;
    }
    Ok(())
}

/// pivot_root into the rootfs requires the mount holding it not to be shared; the same goes
/// for our bind mount not propagating into other namespaces.
fn make_parent_private(rootfs: &Path) -> Result<(), RootfsError> {
    let parent = rootfs.parent().unwrap_or(Path::new("/"));
    let mounts = mountinfo::read_self()?;
    if let Some(m) = mountinfo::mount_of(&mounts, parent)
        && m.is_shared()
    {
        let mp = m.mount_point.clone();
        sys_mount(None, &mp, None, MsFlags::MS_PRIVATE, None, &mp)?;
    }
    Ok(())
}

/// Switches the root to `rootfs` (as returned by [`rootfs_path`]).
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<(), RootfsError> {
    // The mount table only knows real paths: resolve symlinks in the given path.
    let rootfs = std::fs::canonicalize(rootfs).map_err(|e| RootfsError::Io {
        op: "resolve rootfs",
        path: rootfs.to_path_buf(),
        source: e,
    })?;
    pivot::switch_root(&rootfs, no_pivot)
}

/// After the root switch: rootfs propagation, sysctls, readonlyPaths, maskedPaths, read-only root.
pub fn finalize(spec: &Spec) -> Result<(), RootfsError> {
    let root = Path::new("/");
    if let Some(p) = rootfs_propagation(spec)?
        && p.contains(MsFlags::MS_SHARED)
    {
        sys_mount(None, root, None, p, None, root)?;
    }
    sysctl::apply(spec)?;
    if let Some(linux) = spec.linux() {
        for p in linux.readonly_paths().iter().flatten() {
            protect::readonly_path(Path::new(p))?;
        }
        for p in linux.masked_paths().iter().flatten() {
            protect::mask_path(Path::new(p))?;
        }
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        let fd = nix::fcntl::open(
            root,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| RootfsError::Sys {
            op: "open",
            path: root.to_path_buf(),
            source: e,
        })?;
        mounts::remount_bind_adding(&fd, MsFlags::MS_RDONLY, root)?;
    }
    Ok(())
}

//! Cgroup management for kina-runtime and cri-server: cgroups v1 (including the hybrid layout
//! with a controller-less cgroup2 mount) and the unified v2 hierarchy, detected at run time.
//!
//! Entry points: [`detect`] and [`hierarchies`] describe the host, [`resolve_path`] turns
//! `linux.cgroupsPath` into a cgroup path, and [`manager`] returns the [`CgroupManager`] for the
//! detected layout, which creates the cgroup, moves processes into it, applies
//! `linux.resources`, freezes/thaws, lists processes, reads [`Stats`] and removes it.
//!
//! ```no_run
//! use kina_cgroups::CgroupManager;
//! # fn main() -> Result<(), kina_cgroups::CgroupError> {
//! let path = kina_cgroups::resolve_path(Some("/kina/ctr1"), "ctr1")?;
//! let cg = kina_cgroups::manager(&path)?;
//! cg.apply(4242)?; // the container's init
//! cg.set(&oci_spec::runtime::LinuxResources::default())?;
//! let usage = cg.stats()?.memory.working_set;
//! # let _ = usage;
//! cg.destroy()?; // after its processes are gone
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_code)]

pub mod convert;
pub mod devices;
mod error;
mod fs;
pub mod mountinfo;
pub mod path;
pub mod stats;
mod sys;
pub mod v1;
pub mod v2;

use std::path::{Path, PathBuf};

pub use error::CgroupError;
pub use mountinfo::{Hierarchy, Layout, detect, hierarchies};
pub use path::resolve_path;
pub use stats::{
    BlkioDeviceStats, BlkioStats, CpuStats, HugetlbStats, MemoryStats, PidsStats, Stats,
    ThrottlingStats,
};

/// Freezer state of a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    /// Running normally.
    Thawed,
    /// Freeze requested, not all tasks stopped yet.
    Freezing,
    /// All tasks stopped.
    Frozen,
}

/// Operations on one container's cgroup, whatever the cgroup version.
pub trait CgroupManager: Send + Sync + std::fmt::Debug {
    /// The cgroup path relative to each hierarchy's root (e.g. `/kina/abc`).
    fn path(&self) -> &Path;
    /// Creates the cgroup in every hierarchy and moves `pid` into it.
    fn apply(&self, pid: i32) -> Result<(), CgroupError>;
    /// Applies `linux.resources` (also used for `update`).
    fn set(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<(), CgroupError>;
    /// Freezes every task, returning once the cgroup is frozen.
    fn freeze(&self) -> Result<(), CgroupError>;
    /// Thaws the cgroup.
    fn thaw(&self) -> Result<(), CgroupError>;
    /// The freezer state.
    fn state(&self) -> Result<FreezerState, CgroupError>;
    /// Every process in the cgroup and its descendants.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    /// Resource usage.
    fn stats(&self) -> Result<Stats, CgroupError>;
    /// Whether the cgroup exists (in any hierarchy).
    fn exists(&self) -> bool;
    /// Removes the cgroup and its descendants in every hierarchy (leaf first, retrying briefly
    /// while exiting tasks release it). Missing directories are not an error.
    fn destroy(&self) -> Result<(), CgroupError>;
}

/// The manager for cgroup `cgroups_path` (as returned by [`resolve_path`]) on this host's layout.
pub fn manager(cgroups_path: &Path) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let hs = hierarchies()?;
    match mountinfo::layout_of(&hs) {
        Some(Layout::V2) => Ok(Box::new(v2::V2Manager::from_hierarchies(
            &hs,
            cgroups_path,
        )?)),
        Some(Layout::V1 | Layout::Hybrid) => {
            Ok(Box::new(v1::V1Manager::from_hierarchies(&hs, cgroups_path)))
        }
        None => Err(CgroupError::NoCgroupMount {
            path: PathBuf::from("/proc/self/mountinfo"),
        }),
    }
}

/// The manager for the cgroup(s) process `pid` is in (e.g. to put an exec'd process into a
/// running container's cgroups). On v1 each hierarchy uses the pid's own path in it.
pub fn manager_for_pid(pid: i32) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let hs = hierarchies()?;
    let file = PathBuf::from(format!("/proc/{pid}/cgroup"));
    let text = fs::read_path(&file)?;
    let memberships = parse_proc_cgroup(&text, &file)?;
    match mountinfo::layout_of(&hs) {
        Some(Layout::V2) => {
            let path = memberships
                .iter()
                .find(|(id, _, _)| *id == 0)
                .map(|(_, _, p)| p.clone())
                .ok_or_else(|| CgroupError::Parse {
                    path: file.clone(),
                    content: text.clone(),
                    reason: "no `0::` entry for the unified hierarchy".into(),
                })?;
            let rel = hs
                .iter()
                .find(|h| h.version == 2)
                .map_or_else(|| path.clone(), |h| h.relative(&path));
            Ok(Box::new(v2::V2Manager::from_hierarchies(&hs, &rel)?))
        }
        Some(Layout::V1 | Layout::Hybrid) => {
            Ok(Box::new(v1::V1Manager::from_memberships(&hs, &memberships)))
        }
        None => Err(CgroupError::NoCgroupMount {
            path: PathBuf::from("/proc/self/mountinfo"),
        }),
    }
}

/// Parses /proc/PID/cgroup: (hierarchy id, controllers, path) per line.
pub(crate) fn parse_proc_cgroup(
    text: &str,
    file: &Path,
) -> Result<Vec<(u32, Vec<String>, PathBuf)>, CgroupError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            return Err(CgroupError::Parse {
                path: file.to_path_buf(),
                content: line.to_string(),
                reason: "expected id:controllers:path".into(),
            });
        };
        let id = id.parse().map_err(|_| CgroupError::Parse {
            path: file.to_path_buf(),
            content: line.to_string(),
            reason: "hierarchy id is not a number".into(),
        })?;
        let ctrls = ctrls
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        out.push((id, ctrls, PathBuf::from(path)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_parsing() {
        let text = "9:name=systemd:/\n4:memory:/process_api/x\n1:cpu,cpuacct:/a\n0::/\n";
        let m = parse_proc_cgroup(text, Path::new("/proc/1/cgroup")).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(
            m[1],
            (
                4,
                vec!["memory".to_string()],
                PathBuf::from("/process_api/x")
            )
        );
        assert_eq!(m[2].1, vec!["cpu", "cpuacct"]);
        assert_eq!(m[3], (0, vec![], PathBuf::from("/")));
        assert!(parse_proc_cgroup("garbage\n", Path::new("f")).is_err());
    }
}

//! The cgroup v2 (unified) manager: one directory, controllers enabled down the tree through
//! `cgroup.subtree_control`, devices restricted by an eBPF program, freezing via cgroup.freeze.

mod devices;
#[cfg(test)]
mod fixture_tests;
mod resources;
mod stats;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) use stats::read_hugetlb;

use crate::error::CgroupError;
use crate::mountinfo::{Hierarchy, join_cgroup};
use crate::{CgroupManager, FreezerState, Stats, fs};

pub use devices::{apply_device_filter, attached_device_programs};

/// How long freeze waits for `frozen 1`.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

/// Manager of one cgroup in the unified hierarchy.
#[derive(Debug, Clone)]
pub struct V2Manager {
    path: PathBuf,
    mount: PathBuf,
    dir: PathBuf,
}

impl V2Manager {
    /// The manager for `path` below the cgroup2 mount of this mount namespace.
    pub fn new(path: &Path) -> Result<Self, CgroupError> {
        Self::from_hierarchies(&crate::hierarchies()?, path)
    }

    /// The manager for `path` below the (first) cgroup2 mount in `hs`.
    pub fn from_hierarchies(hs: &[Hierarchy], path: &Path) -> Result<Self, CgroupError> {
        let h = hs
            .iter()
            .find(|h| h.version == 2)
            .ok_or_else(|| CgroupError::NoCgroupMount {
                path: PathBuf::from("/proc/self/mountinfo"),
            })?;
        Ok(Self::with_mount(&h.mount_point, path))
    }

    /// The manager for `path` below an explicit cgroup2 mount point (e.g. the `unified` mount of
    /// a hybrid host).
    pub fn with_mount(mount: &Path, path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            mount: mount.to_path_buf(),
            dir: join_cgroup(mount, path),
        }
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the cgroup directory with every available controller enabled for it.
    pub fn create(&self) -> Result<(), CgroupError> {
        fs::create_dir_all(&self.dir)?;
        let available = fs::read_opt(&self.mount, "cgroup.controllers")?.unwrap_or_default();
        let ctrls: Vec<String> = available.split_whitespace().map(str::to_string).collect();
        enable_controllers(&self.mount, &self.dir, &ctrls)
    }
}

/// Enables `controllers` in `cgroup.subtree_control` of every ancestor of `dir` from `mount`
/// down, so they are available in `dir`. A level that refuses (EBUSY: it has processes; or
/// the controller is not available there) is retried controller by controller and what still
/// fails is logged, not fatal: the write of a resource file will then name the problem.
pub(crate) fn enable_controllers(
    mount: &Path,
    dir: &Path,
    controllers: &[String],
) -> Result<(), CgroupError> {
    if controllers.is_empty() {
        return Ok(());
    }
    let Ok(rel) = dir.strip_prefix(mount) else {
        return Err(CgroupError::InvalidPath {
            path: dir.display().to_string(),
            reason: format!("not below the cgroup2 mount {}", mount.display()),
        });
    };
    let mut cur = mount.to_path_buf();
    for comp in rel.components() {
        let enabled = fs::read_opt(&cur, "cgroup.subtree_control")?.unwrap_or_default();
        let available = fs::read_opt(&cur, "cgroup.controllers")?.unwrap_or_default();
        let missing: Vec<&String> = controllers
            .iter()
            .filter(|c| {
                available.split_whitespace().any(|a| a == *c)
                    && !enabled.split_whitespace().any(|e| e == *c)
            })
            .collect();
        if !missing.is_empty() {
            let all = missing
                .iter()
                .map(|c| format!("+{c}"))
                .collect::<Vec<_>>()
                .join(" ");
            if fs::write(&cur, "cgroup.subtree_control", &all).is_err() {
                for c in missing {
                    if let Err(e) = fs::write(&cur, "cgroup.subtree_control", format!("+{c}")) {
                        tracing::debug!(error = %e, "controller not enabled");
                    }
                }
            }
        }
        cur.push(comp);
    }
    Ok(())
}

/// Writes the `unified` map: each key is a file in `dir`. Keys naming other directories are
/// rejected.
pub(crate) fn write_unified(
    dir: &Path,
    unified: &HashMap<String, String>,
) -> Result<(), CgroupError> {
    let mut keys: Vec<&String> = unified.keys().collect();
    keys.sort();
    for key in keys {
        if key.is_empty() || key.contains('/') || key == "." || key == ".." || key.contains('\0') {
            return Err(CgroupError::invalid(
                format!("unified[{key:?}]"),
                "keys must be plain cgroup file names",
            ));
        }
        let value = &unified[key];
        fs::write(dir, key, value).map_err(|e| {
            if e.errno() == Some(libc::ENOENT) {
                let ctrl = key.split('.').next().unwrap_or(key);
                CgroupError::invalid(
                    format!("unified[{key:?}]"),
                    format!("{e}: no such file (is the {ctrl} controller enabled?)"),
                )
            } else {
                e
            }
        })?;
    }
    Ok(())
}

impl CgroupManager for V2Manager {
    fn path(&self) -> &Path {
        &self.path
    }

    fn apply(&self, pid: i32) -> Result<(), CgroupError> {
        if pid <= 0 {
            return Err(CgroupError::invalid(
                "pid",
                format!("{pid} is not a process id"),
            ));
        }
        self.create()?;
        fs::write(&self.dir, "cgroup.procs", pid.to_string())?;
        tracing::debug!(pid, dir = %self.dir.display(), "joined cgroup v2");
        Ok(())
    }

    fn set(&self, r: &oci_spec::runtime::LinuxResources) -> Result<(), CgroupError> {
        resources::set(self, r)
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        fs::write(&self.dir, "cgroup.freeze", "1")?;
        let start = Instant::now();
        let mut delay = Duration::from_micros(100);
        loop {
            if self.state()? == FreezerState::Frozen {
                return Ok(());
            }
            if start.elapsed() > FREEZE_TIMEOUT {
                let _ = fs::write(&self.dir, "cgroup.freeze", "0");
                return Err(CgroupError::Timeout {
                    what: "cgroup.events frozen 1".into(),
                    path: self.dir.clone(),
                    waited_ms: start.elapsed().as_millis() as u64,
                });
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(10));
        }
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        fs::write(&self.dir, "cgroup.freeze", "0")
    }

    fn state(&self) -> Result<FreezerState, CgroupError> {
        let want = fs::read(&self.dir, "cgroup.freeze")?;
        if want.trim() == "0" {
            return Ok(FreezerState::Thawed);
        }
        let events = fs::read_flat_keyed(&self.dir, "cgroup.events")?;
        Ok(if events.get("frozen") == Some(&1) {
            FreezerState::Frozen
        } else {
            FreezerState::Freezing
        })
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut out = Vec::new();
        fs::pids_recursive(&self.dir, &mut out)?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        stats::read(&self.dir)
    }

    fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        if self.dir == self.mount {
            return Err(CgroupError::InvalidPath {
                path: self.dir.display().to_string(),
                reason: "refusing to remove the cgroup2 root".into(),
            });
        }
        fs::remove_tree(&self.dir, Instant::now() + fs::REMOVE_RETRY)
    }
}

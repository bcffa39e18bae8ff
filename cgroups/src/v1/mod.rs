//! The cgroup v1 manager (also used on hybrid hosts): one directory per mounted hierarchy,
//! resources written through the v1 controllers; in hybrid mode processes also join the
//! cgroup2 tree so tools and systemd in containers see a consistent view.

mod resources;

pub(crate) use resources::validate_page_size;
mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::CgroupError;
use crate::mountinfo::{Hierarchy, join_cgroup};
use crate::{CgroupManager, FreezerState, Stats, fs};

/// How long [`V1Manager::freeze`] waits for FROZEN before giving up.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

/// Manager of one cgroup across the v1 hierarchies.
#[derive(Debug, Clone)]
pub struct V1Manager {
    path: PathBuf,
    /// Controller name (`cpu`, `memory`, `name=systemd`, ...) → the cgroup's directory.
    dirs: BTreeMap<String, PathBuf>,
    /// The cgroup2 directory joined in hybrid mode.
    unified: Option<PathBuf>,
    /// The cgroup2 mount point in hybrid mode (for enabling its controllers).
    unified_mount: Option<PathBuf>,
    /// Mount points of all hierarchies: never removed by destroy.
    roots: Vec<PathBuf>,
}

impl V1Manager {
    /// The manager for `path` in the hierarchies of this mount namespace.
    pub fn new(path: &Path) -> Result<Self, CgroupError> {
        Ok(Self::from_hierarchies(&crate::hierarchies()?, path))
    }

    /// The manager for `path` in the given hierarchies (v1 ones, plus a cgroup2 one if hybrid).
    pub fn from_hierarchies(hs: &[Hierarchy], path: &Path) -> Self {
        let mut dirs = BTreeMap::new();
        let mut unified = None;
        let mut unified_mount = None;
        let mut roots = Vec::new();
        for h in hs {
            roots.push(h.mount_point.clone());
            if h.version == 1 {
                for c in &h.controllers {
                    dirs.entry(c.clone()).or_insert_with(|| h.dir(path));
                }
            } else if unified.is_none() {
                unified = Some(h.dir(path));
                unified_mount = Some(h.mount_point.clone());
            }
        }
        Self {
            path: path.to_path_buf(),
            dirs,
            unified,
            unified_mount,
            roots,
        }
    }

    /// The manager for the cgroups listed in a /proc/PID/cgroup file: each hierarchy uses the
    /// process's own path in it.
    pub(crate) fn from_memberships(
        hs: &[Hierarchy],
        members: &[(u32, Vec<String>, PathBuf)],
    ) -> Self {
        let mut m = Self::from_hierarchies(hs, Path::new("/"));
        let mut primary = None;
        for (id, ctrls, path) in members {
            if *id == 0 {
                if let Some(mount) = &m.unified_mount {
                    let rel = hs
                        .iter()
                        .find(|h| h.version == 2)
                        .map_or_else(|| path.clone(), |h| h.relative(path));
                    m.unified = Some(join_cgroup(mount, &rel));
                }
                continue;
            }
            let Some(h) = hs
                .iter()
                .find(|h| h.version == 1 && &h.controllers == ctrls)
            else {
                continue;
            };
            for c in ctrls {
                m.dirs.insert(c.clone(), h.dir(&h.relative(path)));
            }
            if primary.is_none() || ctrls.iter().any(|c| c == "freezer") {
                primary = Some(h.relative(path));
            }
        }
        if let Some(p) = primary {
            m.path = p;
        }
        m
    }

    /// The cgroup's directory in the hierarchy of `controller`, if that controller is mounted.
    pub fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs.get(controller).map(PathBuf::as_path)
    }

    /// The cgroup2 directory processes join in hybrid mode.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    pub(crate) fn unified_mount(&self) -> Option<&Path> {
        self.unified_mount.as_deref()
    }

    pub(crate) fn require(&self, controller: &str, needed_for: &str) -> Result<&Path, CgroupError> {
        self.dir(controller)
            .ok_or_else(|| CgroupError::ControllerMissing {
                controller: controller.to_string(),
                needed_for: needed_for.to_string(),
            })
    }

    /// Distinct v1 directories (co-mounted controllers share one).
    fn unique_dirs(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for d in self.dirs.values() {
            if !out.contains(&d.as_path()) {
                out.push(d);
            }
        }
        out
    }

    /// Creates the cgroup directories (initialising cpuset from the parents) without moving a
    /// process.
    pub fn create(&self) -> Result<(), CgroupError> {
        for dir in self.unique_dirs() {
            fs::create_dir_all(dir)?;
        }
        if let Some(cpuset) = self.dir("cpuset") {
            init_cpuset(cpuset)?;
        }
        if let Some(u) = &self.unified
            && let Err(e) = fs::create_dir_all(u)
        {
            tracing::warn!(error = %e, "cannot create the cgroup2 directory of the hybrid layout");
        }
        Ok(())
    }
}

/// Copies cpuset.cpus/mems from the parent into each level from the hierarchy root down to
/// `dir` where they are empty (a v1 cpuset cgroup with empty cpus/mems refuses tasks).
fn init_cpuset(dir: &Path) -> Result<(), CgroupError> {
    let mut chain = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if !d.join("cpuset.cpus").exists() {
            break; // above the hierarchy root
        }
        chain.push(d.to_path_buf());
        cur = d.parent();
    }
    chain.reverse();
    for pair in chain.windows(2) {
        let (parent, child) = (&pair[0], &pair[1]);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if fs::read(child, file)?.trim().is_empty() {
                let v = fs::read(parent, file)?;
                fs::write(child, file, v.trim())?;
            }
        }
    }
    Ok(())
}

impl CgroupManager for V1Manager {
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
        let value = pid.to_string();
        for dir in self.unique_dirs() {
            fs::write(dir, "cgroup.procs", &value)?;
        }
        if let Some(u) = &self.unified
            && let Err(e) = fs::write(u, "cgroup.procs", &value)
        {
            tracing::warn!(error = %e, "cannot join the cgroup2 hierarchy of the hybrid layout");
        }
        tracing::debug!(pid, path = %self.path.display(), "joined cgroup v1");
        Ok(())
    }

    fn set(&self, r: &oci_spec::runtime::LinuxResources) -> Result<(), CgroupError> {
        resources::set(self, r)
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        let dir = self.require("freezer", "pause")?;
        let start = Instant::now();
        let mut delay = Duration::from_micros(100);
        let mut attempt = 0u32;
        loop {
            // Re-writing FROZEN retries tasks that were in an uninterruptible state.
            if attempt.is_multiple_of(10) {
                fs::write(dir, "freezer.state", "FROZEN")?;
            }
            attempt += 1;
            match fs::read(dir, "freezer.state")?.trim() {
                "FROZEN" => return Ok(()),
                _ if start.elapsed() > FREEZE_TIMEOUT => {
                    // Do not leave the container half frozen.
                    let _ = fs::write(dir, "freezer.state", "THAWED");
                    return Err(CgroupError::Timeout {
                        what: "freezer.state FROZEN".into(),
                        path: dir.to_path_buf(),
                        waited_ms: start.elapsed().as_millis() as u64,
                    });
                }
                _ => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(10));
                }
            }
        }
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        let dir = self.require("freezer", "resume")?;
        fs::write(dir, "freezer.state", "THAWED")
    }

    fn state(&self) -> Result<FreezerState, CgroupError> {
        let dir = self.require("freezer", "freezer state")?;
        let path = dir.join("freezer.state");
        let s = fs::read_path(&path)?;
        match s.trim() {
            "THAWED" => Ok(FreezerState::Thawed),
            "FREEZING" => Ok(FreezerState::Freezing),
            "FROZEN" => Ok(FreezerState::Frozen),
            other => Err(CgroupError::Parse {
                path,
                content: other.to_string(),
                reason: "expected THAWED, FREEZING or FROZEN".into(),
            }),
        }
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = ["pids", "freezer", "memory", "cpu", "devices"]
            .iter()
            .find_map(|c| self.dir(c))
            .or_else(|| self.unique_dirs().first().copied())
            .ok_or_else(|| CgroupError::ControllerMissing {
                controller: "any v1 controller".into(),
                needed_for: "listing processes".into(),
            })?;
        let mut out = Vec::new();
        fs::pids_recursive(dir, &mut out)?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        stats::read(self)
    }

    fn exists(&self) -> bool {
        self.unique_dirs().iter().any(|d| d.is_dir())
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        let dirs = self
            .unique_dirs()
            .into_iter()
            .chain(self.unified.as_deref());
        for dir in dirs {
            if self.roots.iter().any(|r| r == dir) {
                return Err(CgroupError::InvalidPath {
                    path: dir.display().to_string(),
                    reason: "refusing to remove a cgroup hierarchy root".into(),
                });
            }
        }
        let deadline = Instant::now() + fs::REMOVE_RETRY;
        let dirs = self
            .unique_dirs()
            .into_iter()
            .chain(self.unified.as_deref());
        for dir in dirs {
            if let Err(e) = fs::remove_tree(dir, deadline) {
                tracing::warn!(error = %e, "cgroup removal failed");
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

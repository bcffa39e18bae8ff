//! OOM-kill detection through the container's memory cgroup.
//!
//! While the container runs, the monitor looks up its memory cgroup from `/proc/<pid>/cgroup`
//! and the mount points in `/proc/self/mountinfo` (cgroup v1 `memory` controller or the cgroup v2
//! unified hierarchy, detected at run time), and remembers the `oom_kill` counter
//! (v1: `memory.oom_control`, v2: `memory.events`). When the init has exited, a grown counter
//! means the kernel's OOM killer struck in the container: the exit file says `oom_killed:true`.
//! If no counter can be found (no memory controller), `oom_killed` is left out and the caller
//! decides.

use std::path::{Path, PathBuf};

/// The container's OOM-kill counter and its value at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomWatch {
    counter: PathBuf,
    baseline: u64,
}

impl OomWatch {
    /// Finds the memory cgroup of `pid`; `None` when there is none to watch.
    pub fn for_pid(pid: i32) -> Option<Self> {
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let counter = counter_path(&cgroup, &mountinfo)?;
        let baseline = read_oom_kill(&counter)?;
        Some(Self { counter, baseline })
    }

    /// Whether the counter grew since start; `None` if it can no longer be read.
    pub fn oom_killed(&self) -> Option<bool> {
        read_oom_kill(&self.counter).map(|n| n > self.baseline)
    }

    pub fn counter(&self) -> &Path {
        &self.counter
    }
}

/// Reads the `oom_kill N` line of memory.events / memory.oom_control.
fn read_oom_kill(path: &Path) -> Option<u64> {
    parse_oom_kill(&std::fs::read_to_string(path).ok()?)
}

fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == "oom_kill").then(|| v.trim().parse().ok())?
    })
}

/// Where the OOM-kill counter of the process described by `cgroup` (/proc/PID/cgroup) lives.
/// Prefers the v1 memory controller; falls back to v2 if its hierarchy has the memory controller.
fn counter_path(cgroup: &str, mountinfo: &str) -> Option<PathBuf> {
    let mut v2_path = None;
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            let mnt = mount_for(mountinfo, |fstype, opts| {
                fstype == "cgroup" && opts.split(',').any(|o| o == "memory")
            })?;
            return Some(join_cgroup(&mnt, path).join("memory.oom_control"));
        }
        if controllers.is_empty() {
            v2_path = Some(path.to_string());
        }
    }
    let path = v2_path?;
    let mnt = mount_for(mountinfo, |fstype, _| fstype == "cgroup2")?;
    let dir = join_cgroup(&mnt, &path);
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers")).ok();
    let has_memory = controllers.is_some_and(|c| c.split_whitespace().any(|c| c == "memory"));
    (has_memory || dir.join("memory.events").exists()).then(|| dir.join("memory.events"))
}

/// A mount point (and its root within the hierarchy) of the first mount matching `pred`.
fn mount_for(mountinfo: &str, pred: impl Fn(&str, &str) -> bool) -> Option<(PathBuf, String)> {
    mountinfo.lines().find_map(|line| {
        // id parent major:minor root mountpoint opts [optional...] - fstype source superopts
        let (pre, post) = line.split_once(" - ")?;
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let (root, mountpoint) = (pre.get(3)?, pre.get(4)?);
        let (fstype, superopts) = (post.first()?, post.get(2).copied().unwrap_or(""));
        pred(fstype, superopts).then(|| (PathBuf::from(mountpoint), root.to_string()))
    })
}

/// Maps a cgroup path to a directory under a mount whose root is `root` within the hierarchy.
fn join_cgroup((mountpoint, root): &(PathBuf, String), path: &str) -> PathBuf {
    let rel = path
        .strip_prefix(root.as_str())
        .filter(|_| root != "/")
        .unwrap_or(path);
    mountpoint.join(rel.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO_V1: &str = "\
25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 25 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
35 25 0:31 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory
36 25 0:32 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids";

    #[test]
    fn finds_the_v1_memory_counter_on_a_hybrid_host() {
        let cg = "12:pids:/c1\n9:memory:/kina/c1\n0::/c1\n";
        assert_eq!(
            counter_path(cg, MOUNTINFO_V1),
            Some(PathBuf::from(
                "/sys/fs/cgroup/memory/kina/c1/memory.oom_control"
            ))
        );
    }

    #[test]
    fn parses_the_counter_line() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(parse_oom_kill(v1), Some(2));
        let v2 = "low 0\nhigh 0\nmax 1\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill(v2), Some(1));
        assert_eq!(parse_oom_kill("under_oom 0\n"), None);
    }

    #[test]
    fn strips_a_bind_mounted_root() {
        let mi = "35 25 0:31 /kina /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory";
        let m = mount_for(mi, |t, _| t == "cgroup").unwrap();
        assert_eq!(
            join_cgroup(&m, "/kina/c1"),
            PathBuf::from("/sys/fs/cgroup/memory/c1")
        );
    }

    #[test]
    fn watches_this_process_when_a_memory_controller_exists() {
        // On this host (hybrid v1) the memory controller is mounted; on a pure-v2 host the
        // unified hierarchy is used. Either way the counter must be readable for ourselves.
        let me = std::process::id() as i32;
        if let Some(w) = OomWatch::for_pid(me) {
            assert_eq!(w.oom_killed(), Some(false), "{}", w.counter().display());
        } else {
            let cg = std::fs::read_to_string("/proc/self/cgroup").unwrap();
            assert!(
                !cg.contains("memory"),
                "memory cgroup present but not found: {cg}"
            );
        }
    }
}

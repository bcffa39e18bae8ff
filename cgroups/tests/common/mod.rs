//! Shared fixtures for the integration tests: a uniquely named cgroup whose guard kills the
//! test's children and removes the cgroup in every hierarchy, also when a test fails.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kina_cgroups::{CgroupManager, Hierarchy, Layout};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique top-level cgroup `/kina-test-<pid>-<n>-<name>` holding the test's cgroup `.../ctr`.
pub struct TestCgroup {
    /// The top-level cgroup removed on drop.
    pub root: PathBuf,
    /// The container-like cgroup below it.
    pub path: PathBuf,
    /// Manager of `path`.
    pub mgr: Box<dyn CgroupManager>,
    children: Vec<Child>,
    extra: Vec<Box<dyn CgroupManager>>,
}

/// A child process started by [`TestCgroup::spawn`], waiting on stdin before running its script.
pub struct Proc {
    pub pid: i32,
    idx: usize,
}

impl TestCgroup {
    pub fn new(name: &str) -> Self {
        let root = PathBuf::from(format!("/kina-test-{}", unique(name)));
        let path = root.join("ctr");
        Self::at(root, path)
    }

    /// A guard for cgroup `path`, removing the top-level cgroup `root` (an ancestor) on drop.
    pub fn at(root: PathBuf, path: PathBuf) -> Self {
        assert!(path.starts_with(&root) && root != Path::new("/"));
        let mgr = kina_cgroups::manager(&path).expect("manager");
        Self {
            root,
            path,
            mgr,
            children: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// Registers another manager whose cgroup must also be removed on drop.
    pub fn also_remove(&mut self, m: Box<dyn CgroupManager>) {
        self.extra.push(m);
    }

    /// Spawns `sh -c 'read go; <script>'` with piped stdin/stdout/stderr.
    pub fn spawn(&mut self, script: &str) -> Proc {
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("read go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn /bin/sh");
        let pid = child.id() as i32;
        self.children.push(child);
        Proc {
            pid,
            idx: self.children.len() - 1,
        }
    }

    /// Lets the child's script run.
    pub fn go(&mut self, p: &Proc) {
        let stdin: &mut ChildStdin = self.children[p.idx].stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits (bounded) for the child to exit and returns stdout+stderr.
    pub fn output(&mut self, p: &Proc) -> String {
        let child = &mut self.children[p.idx];
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "child {} did not exit", p.pid);
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // A frozen task cannot die: thaw first.
        let _ = self.mgr.thaw();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.mgr.destroy();
        for m in &self.extra {
            let _ = m.destroy();
        }
        if let Ok(top) = kina_cgroups::manager(&self.root)
            && let Err(e) = top.destroy()
        {
            eprintln!("cleanup of {} failed: {e}", self.root.display());
        }
        // Every test also checks that nothing leaked (unless it is already failing).
        let left = existing_dirs(&self.root);
        if !std::thread::panicking() {
            assert!(left.is_empty(), "cgroup directories leaked: {left:?}");
        }
    }
}

/// A name unique to this test process and call.
pub fn unique(name: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{}-{n}-{name}", std::process::id())
}

pub fn layout() -> Layout {
    kina_cgroups::detect().unwrap()
}

pub fn hierarchies() -> Vec<Hierarchy> {
    kina_cgroups::hierarchies().unwrap()
}

/// The directory of cgroup `path` in the hierarchy with `controller` (v1) or the cgroup2 one.
pub fn dir_of(controller: &str, path: &Path) -> PathBuf {
    let hs = hierarchies();
    let h = match layout() {
        Layout::V2 => hs.iter().find(|h| h.version == 2),
        _ => hs.iter().find(|h| h.version == 1 && h.has(controller)),
    }
    .unwrap_or_else(|| panic!("no hierarchy for {controller}"));
    h.dir(path)
}

pub fn read(controller: &str, path: &Path, file: &str) -> String {
    let p = dir_of(controller, path).join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Every directory of cgroup `path` that exists in any hierarchy.
pub fn existing_dirs(path: &Path) -> Vec<PathBuf> {
    hierarchies()
        .iter()
        .map(|h| h.dir(path))
        .filter(|d| d.exists())
        .collect()
}

/// The process state letter from /proc/PID/stat.
pub fn proc_state(pid: i32) -> char {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    after.chars().next().unwrap()
}

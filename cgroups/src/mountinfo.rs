//! Cgroup hierarchy discovery from /proc/self/mountinfo and layout detection (v1, hybrid, v2).

use std::path::{Path, PathBuf};

use crate::error::CgroupError;

/// How cgroups are organised on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only cgroup v1 hierarchies (one per controller or co-mounted groups).
    V1,
    /// v1 controllers plus a cgroup2 mount (usually /sys/fs/cgroup/unified) that has few or no
    /// controllers. Controllers are managed through v1; processes also join the v2 tree.
    Hybrid,
    /// The unified cgroup v2 hierarchy.
    V2,
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted, e.g. `/sys/fs/cgroup/memory`.
    pub mount_point: PathBuf,
    /// The cgroup that is the root of the mount (field 4 of mountinfo), `/` unless bind-mounted
    /// or inside a cgroup namespace.
    pub root: PathBuf,
    /// v1: the controllers bound to it (`cpu`, `cpuacct`, `name=systemd`, ...);
    /// v2: the controllers listed in `cgroup.controllers` of the mount.
    pub controllers: Vec<String>,
    /// 1 or 2.
    pub version: u8,
}

impl Hierarchy {
    /// Whether `controller` is bound to this hierarchy.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    /// The directory of cgroup `path` (relative to the hierarchy root, e.g. `/kina/c1`) in this
    /// hierarchy.
    pub fn dir(&self, path: &Path) -> PathBuf {
        join_cgroup(&self.mount_point, path)
    }
}

impl Hierarchy {
    /// Turns a path from /proc/PID/cgroup into a path relative to this mount: when the mount
    /// shows a sub-tree (field 4 of mountinfo is not `/`, e.g. a bind mount of `/docker/abc`),
    /// that prefix is not part of the directory below the mount point.
    pub fn relative(&self, proc_path: &Path) -> PathBuf {
        if self.root != Path::new("/")
            && let Ok(rest) = proc_path.strip_prefix(&self.root)
        {
            return Path::new("/").join(rest);
        }
        proc_path.to_path_buf()
    }
}

/// Joins an absolute cgroup path below a directory.
pub(crate) fn join_cgroup(base: &Path, cgroup: &Path) -> PathBuf {
    let rel = cgroup.strip_prefix("/").unwrap_or(cgroup);
    if rel.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Mount options of v1 cgroup mounts that are not controller names.
const NON_CONTROLLER_OPTS: &[&str] = &[
    "rw",
    "ro",
    "xattr",
    "noprefix",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
    "nsdelegate",
    "memory_localevents",
    "memory_recursiveprot",
    "none",
];

/// Undoes mountinfo's octal escaping (`\040` for space etc.).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text into the cgroup hierarchies it contains (v2 controllers left empty).
/// The first mount of each distinct hierarchy wins.
pub fn parse_mountinfo(text: &str, source: &Path) -> Result<Vec<Hierarchy>, CgroupError> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            return Err(CgroupError::Parse {
                path: source.to_path_buf(),
                content: line.to_string(),
                reason: "mountinfo line without ` - ` separator".into(),
            });
        };
        if sep < 6 || fields.len() < sep + 4 {
            return Err(CgroupError::Parse {
                path: source.to_path_buf(),
                content: line.to_string(),
                reason: "mountinfo line with too few fields".into(),
            });
        }
        let fstype = fields[sep + 1];
        let version = match fstype {
            "cgroup" => 1,
            "cgroup2" => 2,
            _ => continue,
        };
        let root = PathBuf::from(unescape(fields[3]));
        let mount_point = PathBuf::from(unescape(fields[4]));
        let controllers: Vec<String> = if version == 1 {
            fields[sep + 3]
                .split(',')
                .filter(|o| {
                    !NON_CONTROLLER_OPTS.contains(o) && (!o.contains('=') || o.starts_with("name="))
                })
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        };
        let dup = out
            .iter()
            .any(|h| h.version == version && (version == 2 || h.controllers == controllers));
        if !dup {
            out.push(Hierarchy {
                mount_point,
                root,
                controllers,
                version,
            });
        }
    }
    Ok(out)
}

/// Decides the layout from the parsed hierarchies.
pub fn layout_of(hierarchies: &[Hierarchy]) -> Option<Layout> {
    let has_v1 = hierarchies
        .iter()
        .any(|h| h.version == 1 && h.controllers.iter().any(|c| !c.starts_with("name=")));
    let has_v2 = hierarchies.iter().any(|h| h.version == 2);
    match (has_v1, has_v2) {
        (true, true) => Some(Layout::Hybrid),
        (true, false) => Some(Layout::V1),
        (false, true) => Some(Layout::V2),
        (false, false) => None,
    }
}

/// Every mounted cgroup hierarchy of this process's mount namespace; v2 entries list the
/// controllers available at the mount.
pub fn hierarchies() -> Result<Vec<Hierarchy>, CgroupError> {
    let path = Path::new(MOUNTINFO);
    let text = crate::fs::read_path(path)?;
    let mut hs = parse_mountinfo(&text, path)?;
    for h in hs.iter_mut().filter(|h| h.version == 2) {
        if let Some(c) = crate::fs::read_opt(&h.mount_point, "cgroup.controllers")? {
            h.controllers = c.split_whitespace().map(str::to_string).collect();
        }
    }
    Ok(hs)
}

/// Detects the cgroup layout of this host.
pub fn detect() -> Result<Layout, CgroupError> {
    let hs = hierarchies()?;
    layout_of(&hs).ok_or_else(|| CgroupError::NoCgroupMount {
        path: PathBuf::from(MOUNTINFO),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    // A classic Docker-era v1 host: co-mounted cpu,cpuacct and net_cls,net_prio, systemd options.
    const V1: &str = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,net_cls,net_prio
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpuset,clone_children
33 25 0:30 /docker/abc /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
";

    const PURE_V2: &str = "\
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
28 24 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
99 28 0:25 / /run/my\\040cgroup rw - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_host() {
        let hs = parse_mountinfo(HYBRID, Path::new("fixture")).unwrap();
        assert_eq!(hs.len(), 10);
        assert_eq!(layout_of(&hs), Some(Layout::Hybrid));
        let cpu = hs.iter().find(|h| h.has("cpu")).unwrap();
        assert_eq!(cpu.mount_point, Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(cpu.controllers, vec!["cpu"]);
        let acct = hs.iter().find(|h| h.has("cpuacct")).unwrap();
        assert_eq!(acct.mount_point, Path::new("/sys/fs/cgroup/cpuacct"));
        assert!(hs.iter().any(|h| h.has("name=systemd")));
        let v2 = hs.iter().find(|h| h.version == 2).unwrap();
        assert_eq!(v2.mount_point, Path::new("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn v1_host_with_comounts_and_options() {
        let hs = parse_mountinfo(V1, Path::new("fixture")).unwrap();
        assert_eq!(layout_of(&hs), Some(Layout::V1));
        let cpu = hs.iter().find(|h| h.has("cpu")).unwrap();
        assert_eq!(cpu.controllers, vec!["cpu", "cpuacct"]);
        assert!(cpu.has("cpuacct"));
        let systemd = hs.iter().find(|h| h.has("name=systemd")).unwrap();
        assert_eq!(systemd.controllers, vec!["name=systemd"]);
        let cpuset = hs.iter().find(|h| h.has("cpuset")).unwrap();
        assert_eq!(cpuset.controllers, vec!["cpuset"]);
        let pids = hs.iter().find(|h| h.has("pids")).unwrap();
        assert_eq!(pids.root, Path::new("/docker/abc"));
        assert_eq!(
            pids.dir(Path::new("/kina/c1")),
            Path::new("/sys/fs/cgroup/pids/kina/c1")
        );
    }

    #[test]
    fn proc_paths_are_relative_to_the_mount_root() {
        let hs = parse_mountinfo(V1, Path::new("fixture")).unwrap();
        let pids = hs.iter().find(|h| h.has("pids")).unwrap();
        assert_eq!(
            pids.relative(Path::new("/docker/abc/kina/c1")),
            Path::new("/kina/c1")
        );
        assert_eq!(pids.relative(Path::new("/docker/abc")), Path::new("/"));
        assert_eq!(
            pids.relative(Path::new("/elsewhere")),
            Path::new("/elsewhere")
        );
        let cpu = hs.iter().find(|h| h.has("cpu")).unwrap();
        assert_eq!(cpu.relative(Path::new("/a")), Path::new("/a"));
    }

    #[test]
    fn pure_v2_host() {
        let hs = parse_mountinfo(PURE_V2, Path::new("fixture")).unwrap();
        assert_eq!(hs.len(), 1, "duplicate cgroup2 mounts collapse: {hs:?}");
        assert_eq!(layout_of(&hs), Some(Layout::V2));
        assert_eq!(hs[0].mount_point, Path::new("/sys/fs/cgroup"));
        assert_eq!(hs[0].dir(Path::new("/")), Path::new("/sys/fs/cgroup"));
    }

    #[test]
    fn no_cgroups_and_malformed() {
        let hs = parse_mountinfo("22 1 0:21 / /proc rw - proc proc rw\n", Path::new("f")).unwrap();
        assert_eq!(layout_of(&hs), None);
        assert!(parse_mountinfo("garbage line\n", Path::new("f")).is_err());
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape("/run/my\\040cgroup"), "/run/my cgroup");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/trail\\04"), "/trail\\04");
    }

    #[test]
    fn detects_this_host() {
        // Whatever the host is, detection must succeed and be consistent with hierarchies().
        let layout = detect().unwrap();
        let hs = hierarchies().unwrap();
        assert_eq!(layout_of(&hs), Some(layout));
    }
}

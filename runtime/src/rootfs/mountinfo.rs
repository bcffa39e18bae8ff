//! Parsing `/proc/self/mountinfo` (proc(5)): used to find cgroup hierarchies, the mount that
//! holds the rootfs, and what to detach when falling back from pivot_root to MS_MOVE.

use std::path::{Path, PathBuf};

use super::RootfsError;

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount id.
    pub id: u32,
    /// Parent mount id.
    pub parent: u32,
    /// Root of the mount within its filesystem.
    pub root: PathBuf,
    /// Mount point relative to the process's root.
    pub mount_point: PathBuf,
    /// Per-mount options ("rw,nosuid,relatime").
    pub mount_options: String,
    /// Optional fields ("shared:1", "master:2", …).
    pub optional: Vec<String>,
    /// Filesystem type ("ext4", "cgroup", "cgroup2", …).
    pub fs_type: String,
    /// Mount source.
    pub source: String,
    /// Per-superblock options ("rw,cpu,cpuacct").
    pub super_options: String,
}

impl MountInfo {
    /// True when the mount is a peer of a shared group.
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("shared:"))
    }

    /// True when the mount receives propagation from a master.
    pub fn is_slave(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("master:"))
    }

    /// True when a per-mount option is present (e.g. "ro", "nosuid").
    pub fn has_option(&self, opt: &str) -> bool {
        self.mount_options.split(',').any(|o| o == opt)
    }
}

/// Undoes mountinfo's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one mountinfo line; `None` for a malformed line.
pub fn parse_line(line: &str) -> Option<MountInfo> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let id = l.next()?.parse().ok()?;
    let parent = l.next()?.parse().ok()?;
    let _dev = l.next()?;
    let root = PathBuf::from(unescape(l.next()?));
    let mount_point = PathBuf::from(unescape(l.next()?));
    let mount_options = l.next()?.to_string();
    let optional = l.filter(|s| !s.is_empty()).map(str::to_string).collect();
    let mut r = right.split(' ');
    let fs_type = r.next()?.to_string();
    let source = unescape(r.next()?);
    let super_options = r.next().unwrap_or("").to_string();
    Some(MountInfo {
        id,
        parent,
        root,
        mount_point,
        mount_options,
        optional,
        fs_type,
        source,
        super_options,
    })
}

/// Parses a whole mountinfo text, skipping malformed lines.
pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_line).collect()
}

/// Reads and parses `/proc/self/mountinfo`.
pub fn read_self() -> Result<Vec<MountInfo>, RootfsError> {
    let path = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(path).map_err(|e| RootfsError::Io {
        op: "read",
        path: path.to_path_buf(),
        source: e,
    })?;
    Ok(parse(&text))
}

/// The mount whose mount point is the longest prefix of `path` (the mount holding `path`);
/// the last such entry wins, as later mounts stack on top.
pub fn mount_of<'a>(mounts: &'a [MountInfo], path: &Path) -> Option<&'a MountInfo> {
    let mut best: Option<&MountInfo> = None;
    for m in mounts {
        if path.starts_with(&m.mount_point)
            && best
                .is_none_or(|b| m.mount_point.as_os_str().len() >= b.mount_point.as_os_str().len())
        {
            best = Some(m);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
30 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 30 0:29 /kina/c1 /sys/fs/cgroup/cpu,cpuacct rw,nosuid master:12 - cgroup cgroup rw,cpu,cpuacct
40 22 0:40 / /mnt/with\\040space rw - tmpfs none rw
";

    #[test]
    fn parses_fields() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].mount_point, PathBuf::from("/"));
        assert!(m[0].is_shared());
        assert_eq!(m[2].fs_type, "cgroup2");
        assert_eq!(m[3].root, PathBuf::from("/kina/c1"));
        assert_eq!(m[3].super_options, "rw,cpu,cpuacct");
        assert!(m[3].is_slave() && !m[3].is_shared());
        assert!(m[1].has_option("ro") && !m[1].has_option("rw"));
        assert_eq!(m[4].mount_point, PathBuf::from("/mnt/with space"));
    }

    #[test]
    fn finds_containing_mount() {
        let m = parse(SAMPLE);
        let c = mount_of(&m, Path::new("/sys/fs/cgroup/unified/x")).unwrap();
        assert_eq!(c.id, 31);
        assert_eq!(mount_of(&m, Path::new("/var/lib")).unwrap().id, 22);
        assert_eq!(mount_of(&m, Path::new("/sys/fs/cgroup")).unwrap().id, 30);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert!(parse_line("garbage").is_none());
        assert!(parse_line("1 2 3 - x").is_none());
    }
}

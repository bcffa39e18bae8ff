//! Mount propagation preconditions (as containerd checks them): a `HostToContainer` (rslave)
//! mount needs its source on a shared or slave mount, a `Bidirectional` (rshared) one on a shared
//! mount — otherwise nothing would ever propagate and the pod would silently misbehave.

use std::path::{Path, PathBuf};

/// The mount point holding `path` and its propagation tags (`shared:N`, `master:N`).
pub fn mount_of(path: &Path, mountinfo: &str) -> Option<(PathBuf, Vec<String>)> {
    let path = path.canonicalize().ok()?;
    let mut best: Option<(PathBuf, Vec<String>)> = None;
    for line in mountinfo.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if f.len() < 7 {
            continue;
        }
        let mp = PathBuf::from(unescape(f[4]));
        if !path.starts_with(&mp) {
            continue;
        }
        // Later lines are mounted on top: ties go to the last one.
        if best
            .as_ref()
            .is_none_or(|(b, _)| mp.as_os_str().len() >= b.as_os_str().len())
        {
            best = Some((mp, f[6..sep].iter().map(|s| s.to_string()).collect()));
        }
    }
    best
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Checks `host_path` for CRI propagation `propagation` (1 HostToContainer, 2 Bidirectional).
pub fn check(host_path: &Path, propagation: i32) -> Result<(), String> {
    if propagation == 0 {
        return Ok(());
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let (mp, tags) = mount_of(host_path, &info)
        .ok_or_else(|| format!("cannot find the mount of {}", host_path.display()))?;
    let shared = tags.iter().any(|t| t.starts_with("shared:"));
    let slave = tags.iter().any(|t| t.starts_with("master:"));
    match propagation {
        1 if !(shared || slave) => Err(format!(
            "{} is on mount {} which is neither shared nor slave: HostToContainer propagation needs one",
            host_path.display(),
            mp.display()
        )),
        2 if !shared => Err(format!(
            "{} is on mount {} which is not shared: Bidirectional propagation needs a shared mount",
            host_path.display(),
            mp.display()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
        40 27 0:50 / /mnt/shared rw shared:7 - tmpfs tmpfs rw\n\
        41 40 0:51 / /mnt/shared/slave rw master:7 - tmpfs tmpfs rw\n";

    #[test]
    fn finds_the_deepest_mount_and_its_tags() {
        let (mp, tags) = mount_of(Path::new("/"), INFO).unwrap();
        assert_eq!((mp, tags), (PathBuf::from("/"), vec![]));
        assert!(check(Path::new("/proc/self"), 0).is_ok());
    }

    #[test]
    fn private_root_refuses_propagation() {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let (_, tags) = mount_of(Path::new("/"), &info).unwrap();
        if tags.is_empty() {
            let e = check(Path::new("/"), 1).unwrap_err();
            assert!(e.contains("neither shared nor slave"), "{e}");
            assert!(check(Path::new("/"), 2).is_err());
        }
    }
}

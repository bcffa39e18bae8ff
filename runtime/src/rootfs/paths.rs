//! Resolving container paths inside the rootfs without ever leaving it.
//!
//! [`secure_join`] resolves a container path (e.g. a mount destination) against the rootfs the
//! way the kernel's `RESOLVE_IN_ROOT` would: absolute symlinks are re-rooted at the rootfs, and
//! relative ones are followed component by component. Unlike a silent clamp, a `..` (from the
//! path or from a symlink) that would climb above the rootfs is refused with
//! [`RootfsError::Escape`]: a hostile image gets a clear error, never a mount on the host.
//!
//! [`open_in_root`] then walks the resolved path with `O_NOFOLLOW` from an fd of the rootfs,
//! creating missing directories (and optionally the final file) as it goes. If anything was
//! swapped for a symlink after resolution, the walk fails instead of following it. Mounts are
//! then made on `/proc/self/fd/N` of the returned `O_PATH` fd, so the kernel mounts exactly on
//! the inode we checked (the same technique as runc's `WithProcfd`).

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat};
use nix::sys::stat::{Mode, mkdirat};

use super::RootfsError;

/// At most this many symlinks are followed while resolving one path (like the kernel's 40,
/// generous for images with long link chains).
const MAX_SYMLINKS: usize = 255;

/// Resolves `unsafe_path` (a container path, absolute or relative to the container's `/`)
/// inside `root`, following symlinks as if `root` were `/`. Components that do not exist yet
/// are kept as they are. Returns `root` joined with the resolved, symlink-free path.
pub fn secure_join(root: &Path, unsafe_path: &Path) -> Result<PathBuf, RootfsError> {
    let escape = |why: &str| RootfsError::Escape {
        path: unsafe_path.to_path_buf(),
        root: root.to_path_buf(),
        reason: why.to_string(),
    };
    // Components still to resolve, in order (front = next).
    let mut pending: Vec<Vec<u8>> = split(unsafe_path.as_os_str().as_bytes());
    pending.reverse();
    let mut resolved: Vec<Vec<u8>> = Vec::new();
    let mut links = 0usize;
    while let Some(comp) = pending.pop() {
        match comp.as_slice() {
            b"" | b"." => continue,
            b".." => {
                if resolved.pop().is_none() {
                    return Err(escape("`..` climbs above the container root"));
                }
                continue;
            }
            _ => {}
        }
        let mut candidate = root.to_path_buf();
        for c in &resolved {
            candidate.push(OsStr::from_bytes(c));
        }
        candidate.push(OsStr::from_bytes(&comp));
        let meta = match std::fs::symlink_metadata(&candidate) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                resolved.push(comp);
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(RootfsError::Io {
                    op: "resolve",
                    path: candidate,
                    source: e,
                });
            }
            Err(e) => {
                return Err(RootfsError::Io {
                    op: "lstat",
                    path: candidate,
                    source: e,
                });
            }
        };
        if !meta.file_type().is_symlink() {
            resolved.push(comp);
            continue;
        }
        links += 1;
        if links > MAX_SYMLINKS {
            return Err(RootfsError::Io {
                op: "resolve",
                path: candidate,
                source: std::io::Error::from_raw_os_error(libc::ELOOP),
            });
        }
        let target = std::fs::read_link(&candidate).map_err(|e| RootfsError::Io {
            op: "readlink",
            path: candidate.clone(),
            source: e,
        })?;
        let target = target.as_os_str().as_bytes();
        if target.starts_with(b"/") {
            resolved.clear();
        }
        let mut parts = split(target);
        parts.reverse();
        pending.extend(parts);
    }
    let mut out = root.to_path_buf();
    for c in &resolved {
        out.push(OsStr::from_bytes(c));
    }
    Ok(out)
}

/// `root` joined with `path` lexically (no symlinks followed, `..` clamped at `root`): where
/// the path would be if it contained no symlinks.
pub fn lexical_join(root: &Path, path: &Path) -> PathBuf {
    let mut parts: Vec<&OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => parts.push(s),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    let mut out = root.to_path_buf();
    out.extend(parts);
    out
}

fn split(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// What [`open_in_root`] should find (or create) at the end of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A directory, created (with parents) when missing.
    Dir,
    /// A regular file (mount point for a file bind mount), created empty when missing; the
    /// parents are created as directories.
    File,
    /// Whatever exists; nothing is created.
    Existing,
}

/// Resolves `container_path` inside `root` (see [`secure_join`]), creates what is missing
/// according to `target`, and returns an `O_PATH` fd of the final inode plus its host path.
/// Every component is opened with `O_NOFOLLOW` relative to its parent's fd, so a symlink
/// swapped in after resolution makes this fail (ELOOP) rather than escape.
pub fn open_in_root(
    root: &Path,
    container_path: &Path,
    target: Target,
) -> Result<(OwnedFd, PathBuf), RootfsError> {
    let resolved = secure_join(root, container_path)?;
    let rel = resolved.strip_prefix(root).unwrap_or(Path::new(""));
    let io = |op: &'static str, path: &Path, e: Errno| RootfsError::Sys {
        op,
        path: path.to_path_buf(),
        source: e,
    };
    let mut cur = open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io("open rootfs", root, e))?;
    let comps: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    let mut walked = root.to_path_buf();
    for (i, comp) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        walked.push(comp);
        let want_dir = !last || target == Target::Dir;
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let next = match openat(cur.as_fd(), *comp, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if target != Target::Existing => {
                if want_dir {
                    match mkdirat(cur.as_fd(), *comp, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(io("mkdir", &walked, e)),
                    }
                } else {
                    let created = openat(
                        cur.as_fd(),
                        *comp,
                        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    )
                    .map_err(|e| io("create", &walked, e))?;
                    drop(created);
                }
                openat(cur.as_fd(), *comp, flags, Mode::empty())
                    .map_err(|e| io("open", &walked, e))?
            }
            Err(e) => return Err(io("open", &walked, e)),
        };
        let st = nix::sys::stat::fstat(next.as_fd()).map_err(|e| io("stat", &walked, e))?;
        let kind = st.st_mode & libc::S_IFMT;
        if kind == libc::S_IFLNK {
            return Err(RootfsError::Escape {
                path: container_path.to_path_buf(),
                root: root.to_path_buf(),
                reason: format!("{} became a symlink during setup", walked.display()),
            });
        }
        if want_dir && kind != libc::S_IFDIR {
            let what = if last {
                "is not a directory"
            } else {
                "has a non-directory parent"
            };
            return Err(RootfsError::NotDirectory {
                path: walked.clone(),
                reason: what.to_string(),
            });
        }
        cur = next;
    }
    Ok((cur, resolved))
}

/// The `/proc/self/fd/N` path of `fd`, for mounting onto exactly that inode.
pub fn proc_fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/lib")).unwrap();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        dir
    }

    #[test]
    fn plain_and_missing_paths_join() {
        let r = root();
        let p = secure_join(r.path(), Path::new("/usr/lib/x/y")).unwrap();
        assert_eq!(p, r.path().join("usr/lib/x/y"));
        let p = secure_join(r.path(), Path::new("usr//./lib/../lib")).unwrap();
        assert_eq!(p, r.path().join("usr/lib"));
    }

    #[test]
    fn absolute_symlink_is_rerooted() {
        let r = root();
        symlink("/run", r.path().join("var-run")).unwrap();
        let p = secure_join(r.path(), Path::new("/var-run/foo")).unwrap();
        assert_eq!(p, r.path().join("run/foo"));
    }

    #[test]
    fn relative_symlink_chain_is_followed() {
        let r = root();
        symlink("usr/lib", r.path().join("lib")).unwrap();
        symlink("../lib", r.path().join("run/l")).unwrap();
        let p = secure_join(r.path(), Path::new("/run/l/mod")).unwrap();
        assert_eq!(p, r.path().join("usr/lib/mod"));
    }

    #[test]
    fn symlink_climbing_out_is_refused() {
        let r = root();
        symlink("../../../../../../etc", r.path().join("evil")).unwrap();
        let err = secure_join(r.path(), Path::new("/evil/passwd")).unwrap_err();
        assert!(matches!(err, RootfsError::Escape { .. }), "{err}");
        assert!(err.to_string().contains("/evil/passwd"), "{err}");
    }

    #[test]
    fn dotdot_in_destination_is_refused() {
        let r = root();
        let err = secure_join(r.path(), Path::new("/../etc")).unwrap_err();
        assert!(matches!(err, RootfsError::Escape { .. }));
    }

    #[test]
    fn lexical_join_follows_no_symlinks() {
        let r = root();
        symlink("/run", r.path().join("var-run")).unwrap();
        assert_eq!(
            lexical_join(r.path(), Path::new("/var-run/x")),
            r.path().join("var-run/x")
        );
        assert_eq!(
            lexical_join(r.path(), Path::new("/a/../../b")),
            r.path().join("b")
        );
    }

    #[test]
    fn symlink_loop_is_an_error() {
        let r = root();
        symlink("b", r.path().join("a")).unwrap();
        symlink("a", r.path().join("b")).unwrap();
        let err = secure_join(r.path(), Path::new("/a")).unwrap_err();
        assert!(err.to_string().contains("resolve"), "{err}");
    }

    #[test]
    fn open_in_root_creates_dirs_and_files() {
        let r = root();
        symlink("/run", r.path().join("var-run")).unwrap();
        let (_fd, p) = open_in_root(r.path(), Path::new("/var-run/a/b"), Target::Dir).unwrap();
        assert_eq!(p, r.path().join("run/a/b"));
        assert!(r.path().join("run/a/b").is_dir());
        let (_fd, p) = open_in_root(r.path(), Path::new("/etc/resolv.conf"), Target::File).unwrap();
        assert!(p.is_file());
        let err = open_in_root(r.path(), Path::new("/etc/resolv.conf/x"), Target::Dir);
        assert!(err.is_err());
        let err = open_in_root(r.path(), Path::new("/nope"), Target::Existing);
        assert!(err.is_err());
    }
}

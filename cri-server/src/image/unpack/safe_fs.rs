//! openat-style filesystem operations confined to one snapshot directory: every path is
//! resolved component by component with `O_NOFOLLOW`, so no symlink (in the layer or planted
//! by an earlier entry) can redirect a write outside the snapshot.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// Why a path or operation was refused.
#[derive(Debug)]
pub enum SafeError {
    /// The path tries to leave the snapshot (absolute, `..`, symlinked parent, ...).
    Unsafe(String),
    /// A syscall failed.
    Sys {
        op: &'static str,
        path: PathBuf,
        errno: Errno,
    },
}

pub type SafeResult<T> = Result<T, SafeError>;

fn sys<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> SafeError + 'a {
    move |errno| SafeError::Sys {
        op,
        path: path.to_owned(),
        errno,
    }
}

/// Splits a layer entry path into its normal components, rejecting absolute paths and `..`.
pub fn components(path: &Path) -> SafeResult<Vec<OsString>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_owned()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(SafeError::Unsafe("absolute path".into()));
            }
            Component::ParentDir => return Err(SafeError::Unsafe("path contains \"..\"".into())),
        }
    }
    Ok(out)
}

/// A directory handle inside the snapshot.
#[derive(Debug)]
pub struct Dir {
    pub fd: OwnedFd,
    /// Path relative to the snapshot root (for messages).
    pub rel: PathBuf,
}

impl Dir {
    /// Opens the snapshot root.
    pub fn open_root(root: &Path) -> SafeResult<Dir> {
        let fd = nix::fcntl::open(
            root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys("open", root))?;
        Ok(Dir {
            fd,
            rel: PathBuf::new(),
        })
    }

    /// `stat` of `name` in this directory without following symlinks; None if absent.
    pub fn lstat(&self, name: &OsStr) -> SafeResult<Option<FileStat>> {
        match fstatat(
            self.fd.as_fd(),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(SafeError::Sys {
                op: "stat",
                path: self.rel.join(name),
                errno: e,
            }),
        }
    }

    /// Opens the child directory `name`, creating it (0755) when `create` and absent.
    /// A symlink or non-directory in the way is refused.
    pub fn child(&self, name: &OsStr, create: bool) -> SafeResult<Dir> {
        let rel = self.rel.join(name);
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match openat(self.fd.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => Ok(Dir { fd, rel }),
            Err(Errno::ENOENT) if create => {
                match mkdirat(self.fd.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(SafeError::Sys {
                            op: "mkdir",
                            path: rel,
                            errno: e,
                        });
                    }
                }
                let fd = openat(self.fd.as_fd(), name, flags, Mode::empty())
                    .map_err(sys("open", &rel))?;
                Ok(Dir { fd, rel })
            }
            Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
                let st = self.lstat(name)?;
                let is_link = st.is_some_and(|s| {
                    SFlag::from_bits_truncate(s.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK
                });
                if is_link {
                    Err(SafeError::Unsafe(format!(
                        "parent {} is a symlink",
                        rel.display()
                    )))
                } else {
                    Err(SafeError::Unsafe(format!(
                        "parent {} is not a directory",
                        rel.display()
                    )))
                }
            }
            Err(e) => Err(SafeError::Sys {
                op: "open",
                path: rel,
                errno: e,
            }),
        }
    }

    /// Walks `comps` from this directory (creating missing dirs when `create`).
    pub fn walk(&self, comps: &[OsString], create: bool) -> SafeResult<Dir> {
        let mut cur: Option<Dir> = None;
        for c in comps {
            let next = cur.as_ref().unwrap_or(self).child(c, create)?;
            cur = Some(next);
        }
        match cur {
            Some(d) => Ok(d),
            None => Ok(Dir {
                fd: self.fd.try_clone().map_err(|e| SafeError::Sys {
                    op: "dup",
                    path: self.rel.clone(),
                    errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                })?,
                rel: self.rel.clone(),
            }),
        }
    }

    /// Removes whatever is at `name` (recursively for directories). Absent is fine.
    pub fn remove(&self, name: &OsStr) -> SafeResult<()> {
        let Some(st) = self.lstat(name)? else {
            return Ok(());
        };
        let rel = self.rel.join(name);
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            let child = self.child(name, false)?;
            child.clear()?;
            unlinkat(self.fd.as_fd(), name, UnlinkatFlags::RemoveDir).map_err(sys("rmdir", &rel))
        } else {
            unlinkat(self.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir).map_err(sys("unlink", &rel))
        }
    }

    /// Removes every entry of this directory.
    fn clear(&self) -> SafeResult<()> {
        let fd = self.fd.try_clone().map_err(|_| SafeError::Sys {
            op: "dup",
            path: self.rel.clone(),
            errno: Errno::EBADF,
        })?;
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(sys("readdir", &self.rel))?;
        let names: Vec<OsString> = dir
            .iter()
            .filter_map(|e| e.ok())
            .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_owned())
            .filter(|n| n != "." && n != "..")
            .collect();
        for n in names {
            self.remove(&n)?;
        }
        Ok(())
    }

    /// `/proc/self/fd/<fd>/<name>`: a path naming `name` in this directory without
    /// re-resolving any parent (for calls that only exist path-based, like lsetxattr).
    pub fn proc_path(&self, name: &OsStr) -> PathBuf {
        Path::new(&format!("/proc/self/fd/{}", self.fd.as_raw_fd())).join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_reject_escapes() {
        assert!(matches!(
            components(Path::new("/etc/passwd")),
            Err(SafeError::Unsafe(_))
        ));
        assert!(matches!(
            components(Path::new("a/../../b")),
            Err(SafeError::Unsafe(_))
        ));
        assert_eq!(
            components(Path::new("./a/b")).unwrap(),
            vec![OsString::from("a"), OsString::from("b")]
        );
    }

    #[test]
    fn walk_refuses_symlinked_parent() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/tmp", dir.path().join("link")).unwrap();
        let root = Dir::open_root(dir.path()).unwrap();
        let err = root
            .walk(&[OsString::from("link"), OsString::from("x")], true)
            .unwrap_err();
        assert!(
            matches!(err, SafeError::Unsafe(ref m) if m.contains("symlink")),
            "{err:?}"
        );
    }
}

//! The volume directories on disk: created world-writable (any pod user can write, as with
//! local-path-provisioner's `mkdir -m 0777`), removed without following symlinks.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// A filesystem operation on a volume directory failed; names the path.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct DirError {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DirError {
    let path = path.to_owned();
    move |source| DirError { op, path, source }
}

/// Creates `dir` (its parent, the storage root, must exist) with mode 0777; an existing
/// directory is fine (a retry), anything else there is an error. Returns whether it was created.
pub fn create(dir: &Path) -> Result<bool, DirError> {
    let created = match std::fs::create_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(dir).map_err(err("stat", dir))?;
            if !meta.is_dir() {
                return Err(DirError {
                    op: "create volume directory",
                    path: dir.to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "exists and is not a directory",
                    ),
                });
            }
            false
        }
        Err(e) => return Err(err("create volume directory", dir)(e)),
    };
    // Set explicitly: create_dir's mode is filtered by the umask.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
        .map_err(err("chmod 0777", dir))?;
    Ok(created)
}

/// Removes `dir` and everything in it; a missing directory is fine. Symlinks inside are
/// removed, never followed.
pub fn remove(dir: &Path) -> Result<(), DirError> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err("stat", dir)(e)),
        Ok(m) if m.is_dir() => {
            std::fs::remove_dir_all(dir).map_err(err("remove volume directory", dir))
        }
        Ok(_) => std::fs::remove_file(dir).map_err(err("remove", dir)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_is_idempotent_and_world_writable() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("pvc-1_default_data");
        assert!(create(&dir).unwrap());
        assert!(!create(&dir).unwrap());
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o777);
        std::fs::write(root.path().join("file"), "").unwrap();
        let e = create(&root.path().join("file")).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let e = create(&root.path().join("missing/x")).unwrap_err();
        assert!(e.to_string().contains("missing/x"), "{e}");
    }

    #[test]
    fn remove_deletes_contents_but_not_symlink_targets() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let dir = root.path().join("pvc-1_default_data");
        create(&dir).unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/f"), "data").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        remove(&dir).unwrap();
        assert!(!dir.exists());
        assert!(outside.join("keep").exists());
        remove(&dir).unwrap();
    }
}

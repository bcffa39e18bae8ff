//! Cross-process locks (`flock`) and liveness of the processes that own scratch files, so a
//! CLI (`cri-server images import`) and the running server can share one store safely.

use std::fs::{File, OpenOptions};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use super::error::{Error, Result};

/// A held `flock`; released on drop.
#[derive(Debug)]
pub struct FileLock(#[allow(dead_code)] Flock<File>);

/// Takes a shared or exclusive lock on `path` (created if missing), blocking until granted.
/// Never call it on an async worker thread.
pub fn lock(path: &Path, exclusive: bool) -> Result<FileLock> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(Error::io("open lock", path))?;
    let arg = if exclusive {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockShared
    };
    Flock::lock(f, arg)
        .map(FileLock)
        .map_err(|(_, errno)| Error::Io {
            op: "flock",
            path: path.to_owned(),
            source: errno.into(),
        })
}

/// Whether the process `pid` is alive (used to tell abandoned scratch files from live ones).
pub fn pid_alive(pid: i32) -> bool {
    pid > 0
        && !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        )
}

/// Removes the entries of `dir` named `<pid>-...` whose process is gone (or unparsable).
pub fn clean_abandoned(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let e = e.map_err(Error::io("list", dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| p == std::process::id() as i32 || pid_alive(p)) {
            continue;
        }
        let p = e.path();
        let res = if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        res.map_err(Error::io("clean", &p))?;
    }
    Ok(())
}

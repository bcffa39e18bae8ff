//! Small helpers for reading and writing cgroup control files with errors that name the file
//! and the value, and for parsing the common file formats (single value, flat keyed, nested keyed).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::CgroupError;

/// Writes `value` to `dir/file` (no truncation/creation: cgroup files exist or the controller is
/// missing).
pub(crate) fn write(dir: &Path, file: &str, value: impl AsRef<str>) -> Result<(), CgroupError> {
    write_path(&dir.join(file), value.as_ref())
}

/// Writes `value` to the control file `path` in one write(2) call.
pub(crate) fn write_path(path: &Path, value: &str) -> Result<(), CgroupError> {
    tracing::trace!(path = %path.display(), value, "cgroup write");
    let res = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    res.map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

/// Reads `dir/file` as a string.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    read_path(&dir.join(file))
}

/// Reads the file at `path` as a string.
pub(crate) fn read_path(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads `dir/file` if it exists; `Ok(None)` when the file is absent (controller or kernel
/// feature missing).
pub(crate) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    let path = dir.join(file);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

fn parse_err(path: PathBuf, content: &str, reason: &str) -> CgroupError {
    CgroupError::Parse {
        path,
        content: content.trim().to_string(),
        reason: reason.to_string(),
    }
}

/// Parses a single unsigned value; "max" maps to `u64::MAX`.
pub(crate) fn parse_u64(path: &Path, s: &str) -> Result<u64, CgroupError> {
    let t = s.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse()
        .map_err(|_| parse_err(path.to_path_buf(), s, "expected an unsigned integer or max"))
}

/// Reads `dir/file` as one unsigned value ("max" → `u64::MAX`).
pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    let path = dir.join(file);
    let s = read_path(&path)?;
    parse_u64(&path, &s)
}

/// Reads `dir/file` as one unsigned value, `Ok(None)` if the file does not exist.
pub(crate) fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>, CgroupError> {
    let path = dir.join(file);
    match read_opt(dir, file)? {
        Some(s) => parse_u64(&path, &s).map(Some),
        None => Ok(None),
    }
}

/// Parses a "flat keyed" file (`key value` per line) into a map; non-numeric values are an error.
pub(crate) fn parse_flat_keyed(path: &Path, s: &str) -> Result<BTreeMap<String, u64>, CgroupError> {
    let mut map = BTreeMap::new();
    for line in s.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v), None) = (it.next(), it.next(), it.next()) else {
            return Err(parse_err(path.to_path_buf(), line, "expected `key value`"));
        };
        map.insert(k.to_string(), parse_u64(path, v)?);
    }
    Ok(map)
}

/// Reads a flat keyed file; an absent file gives an empty map.
pub(crate) fn read_flat_keyed(
    dir: &Path,
    file: &str,
) -> Result<BTreeMap<String, u64>, CgroupError> {
    let path = dir.join(file);
    match read_opt(dir, file)? {
        Some(s) => parse_flat_keyed(&path, &s),
        None => Ok(BTreeMap::new()),
    }
}

/// Parses a "nested keyed" line, e.g. io.stat's `8:0 rbytes=1 wbytes=2`, into the leading word
/// and its key=value pairs.
pub(crate) fn parse_nested_line(
    path: &Path,
    line: &str,
) -> Result<(String, BTreeMap<String, u64>), CgroupError> {
    let mut it = line.split_whitespace();
    let Some(head) = it.next() else {
        return Err(parse_err(
            path.to_path_buf(),
            line,
            "empty nested-keyed line",
        ));
    };
    let mut map = BTreeMap::new();
    for kv in it {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(parse_err(path.to_path_buf(), line, "expected key=value"));
        };
        map.insert(k.to_string(), parse_u64(path, v)?);
    }
    Ok((head.to_string(), map))
}

/// Creates `path` and its missing parents, returning the directories that were newly created
/// (outermost first).
pub(crate) fn create_dir_all(path: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut missing = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur {
        if p.is_dir() {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    missing.reverse();
    for dir in &missing {
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(CgroupError::Create {
                    path: dir.clone(),
                    source,
                });
            }
        }
    }
    Ok(missing)
}

/// Reads every pid in `dir/cgroup.procs` of `dir` and all its descendants.
pub(crate) fn pids_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let procs = dir.join("cgroup.procs");
    let content = match fs::read_to_string(&procs) {
        Ok(c) => c,
        // The cgroup was removed while we walked it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: procs,
                source,
            });
        }
    };
    for line in content.lines().filter(|l| !l.is_empty()) {
        let pid = line
            .trim()
            .parse()
            .map_err(|_| parse_err(procs.clone(), line, "expected a pid"))?;
        out.push(pid);
    }
    for sub in subdirs(dir)? {
        pids_recursive(&sub, out)?;
    }
    Ok(())
}

/// Lists the child directories of a cgroup directory (missing directory → empty).
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in rd.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// How long [`remove_tree`] keeps retrying EBUSY (tasks still exiting), across a whole destroy.
pub(crate) const REMOVE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Removes a cgroup directory tree deepest-first. Missing directories are fine; EBUSY (a
/// process is still exiting) is retried until `deadline`.
pub(crate) fn remove_tree(dir: &Path, deadline: std::time::Instant) -> Result<(), CgroupError> {
    for sub in subdirs(dir)? {
        remove_tree(&sub, deadline)?;
    }
    let mut delay = std::time::Duration::from_millis(1);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_millis(50));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_parses_and_rejects_garbage() {
        let p = Path::new("/x/cpu.stat");
        let m = parse_flat_keyed(p, "usage_usec 10\nuser_usec 7\n\n").unwrap();
        assert_eq!(m["usage_usec"], 10);
        assert_eq!(m["user_usec"], 7);
        let err = parse_flat_keyed(p, "usage_usec ten\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/x/cpu.stat"), "{err}");
    }

    #[test]
    fn nested_line_parses() {
        let p = Path::new("/x/io.stat");
        let (head, m) = parse_nested_line(p, "8:0 rbytes=4096 wbytes=0 rios=1").unwrap();
        assert_eq!(head, "8:0");
        assert_eq!(m["rbytes"], 4096);
        assert_eq!(m["rios"], 1);
        assert!(parse_nested_line(p, "8:0 rbytes").is_err());
    }

    #[test]
    fn max_is_u64_max() {
        assert_eq!(parse_u64(Path::new("/p"), "max\n").unwrap(), u64::MAX);
        assert_eq!(parse_u64(Path::new("/p"), "42\n").unwrap(), 42);
    }
}

//! Resolution of OCI `linux.cgroupsPath` into a cgroup path relative to each hierarchy's root,
//! including systemd's `slice:prefix:name` form (expanded to the directories systemd would use).

use std::path::{Component, Path, PathBuf};

use crate::error::CgroupError;

/// The slice systemd puts units in when none is named.
const DEFAULT_SLICE: &str = "system.slice";

fn invalid(path: &str, reason: impl Into<String>) -> CgroupError {
    CgroupError::InvalidPath {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Turns `linux.cgroupsPath` into an absolute cgroup path (relative to each hierarchy's root).
///
/// * `None` or `""` → `/<container_id>` (what runc's cgroupfs driver does);
/// * `/a/b` → `/a/b`; a relative `a/b` is taken relative to the hierarchy root → `/a/b`;
/// * systemd form `slice:prefix:name` → `/<expanded slice>/<prefix>-<name>.scope`, e.g.
///   `kubepods-besteffort.slice:cri:abc` → `/kubepods.slice/kubepods-besteffort.slice/cri-abc.scope`
///   (a `name` ending in `.slice` names a slice, not a scope).
///
/// `..` components, NUL bytes and invalid systemd unit names are rejected.
pub fn resolve_path(
    cgroups_path: Option<&str>,
    container_id: &str,
) -> Result<PathBuf, CgroupError> {
    let raw = cgroups_path.unwrap_or("");
    if raw.contains('\0') {
        return Err(invalid(raw, "contains a NUL byte"));
    }
    if raw.is_empty() {
        if container_id.is_empty()
            || container_id.contains('/')
            || container_id == "."
            || container_id == ".."
        {
            return Err(invalid(
                raw,
                format!("empty cgroupsPath and unusable container id {container_id:?}"),
            ));
        }
        return Ok(PathBuf::from("/").join(container_id));
    }
    let path = if !raw.starts_with('/') && raw.matches(':').count() == 2 {
        expand_systemd(raw)?
    } else {
        clean(raw)?
    };
    if path == Path::new("/") {
        // Limits would apply to the whole host and destroy would target the root.
        return Err(invalid(raw, "must name a cgroup below the root"));
    }
    Ok(path)
}

/// Normalises a cgroupfs path: absolute, no `.`/empty components, no `..`.
fn clean(raw: &str) -> Result<PathBuf, CgroupError> {
    let mut out = PathBuf::from("/");
    for comp in Path::new(raw).components() {
        match comp {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(c) => out.push(c),
            Component::ParentDir => return Err(invalid(raw, "must not contain `..`")),
            Component::Prefix(_) => return Err(invalid(raw, "unexpected path prefix")),
        }
    }
    Ok(out)
}

fn expand_systemd(raw: &str) -> Result<PathBuf, CgroupError> {
    let mut parts = raw.splitn(3, ':');
    let (slice, prefix, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(s), Some(p), Some(n)) => (s, p, n),
        _ => return Err(invalid(raw, "expected slice:prefix:name")),
    };
    if name.is_empty() {
        return Err(invalid(
            raw,
            "systemd form needs a unit name after the last `:`",
        ));
    }
    for (what, part) in [("slice", slice), ("prefix", prefix), ("name", name)] {
        if part.contains('/') || part == ".." || part == "." {
            return Err(invalid(
                raw,
                format!("systemd {what} {part:?} must not contain `/`"),
            ));
        }
    }
    let slice = if slice.is_empty() {
        DEFAULT_SLICE
    } else {
        slice
    };
    let mut path = expand_slice(slice).map_err(|reason| invalid(raw, reason))?;
    let unit = if name.ends_with(".slice") {
        // A slice nested in the parent slice: it must be a child of it by name.
        let expanded = expand_slice(name).map_err(|reason| invalid(raw, reason))?;

        expanded
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    path.push(unit);
    Ok(path)
}

/// Expands a systemd slice name into its cgroup path, like systemd's `unit_name_to_path`:
/// `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root.
pub fn expand_slice(slice: &str) -> Result<PathBuf, String> {
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(format!("slice {slice:?} must end in .slice"));
    };
    if stem == "-" {
        return Ok(PathBuf::from("/"));
    }
    if stem.is_empty() || stem.contains('/') {
        return Err(format!("invalid slice name {slice:?}"));
    }
    if stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        return Err(format!(
            "invalid slice name {slice:?}: dashes separate non-empty components"
        ));
    }
    let mut path = PathBuf::from("/");
    let mut prefix = String::new();
    for comp in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(comp);
        path.push(format!("{prefix}.slice"));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: &str) -> Result<PathBuf, CgroupError> {
        resolve_path(Some(p), "ctr1")
    }

    #[test]
    fn empty_uses_container_id() {
        assert_eq!(resolve_path(None, "ctr1").unwrap(), Path::new("/ctr1"));
        assert_eq!(resolve_path(Some(""), "ctr1").unwrap(), Path::new("/ctr1"));
        assert!(resolve_path(None, "a/b").is_err());
        assert!(resolve_path(None, "..").is_err());
        assert!(resolve_path(None, "").is_err());
    }

    #[test]
    fn absolute_and_relative() {
        assert_eq!(r("/kina/c1").unwrap(), Path::new("/kina/c1"));
        assert_eq!(r("//kina/./c1/").unwrap(), Path::new("/kina/c1"));
        assert_eq!(r("kina/c1").unwrap(), Path::new("/kina/c1"));
        // Two colons but absolute: a plain path.
        assert_eq!(r("/a:b:c").unwrap(), Path::new("/a:b:c"));
    }

    #[test]
    fn rejects_dotdot_and_root() {
        for bad in [
            "/kina/../etc",
            "../x",
            "/a/..",
            "a\0b",
            "/",
            "//./",
            "-.slice::-.slice",
        ] {
            let e = r(bad).unwrap_err();
            assert!(matches!(e, CgroupError::InvalidPath { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn systemd_expansion() {
        assert_eq!(
            r("kubepods-besteffort-pod123.slice:cri-containerd:abc").unwrap(),
            Path::new(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice/cri-containerd-abc.scope"
            )
        );
        assert_eq!(
            r("system.slice:docker:abc").unwrap(),
            Path::new("/system.slice/docker-abc.scope")
        );
        assert_eq!(
            r(":kina:abc").unwrap(),
            Path::new("/system.slice/kina-abc.scope")
        );
        assert_eq!(r("-.slice:kina:abc").unwrap(), Path::new("/kina-abc.scope"));
        assert_eq!(
            r("machine.slice::machine-test.slice").unwrap(),
            Path::new("/machine.slice/machine-test.slice")
        );
        assert_eq!(
            r("user.slice::abc").unwrap(),
            Path::new("/user.slice/abc.scope")
        );
    }

    #[test]
    fn systemd_rejects_bad_units() {
        for bad in [
            "kubepods:cri:abc",
            "a--b.slice:p:n",
            "-a.slice:p:n",
            "a-.slice:p:n",
            "a.slice:p:",
            "a.slice:p/q:n",
            "a.slice:p:..",
        ] {
            assert!(r(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn slice_expansion() {
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            Path::new("/a.slice/a-b.slice/a-b-c.slice")
        );
        assert_eq!(expand_slice("-.slice").unwrap(), Path::new("/"));
        assert!(expand_slice("nope").is_err());
    }
}

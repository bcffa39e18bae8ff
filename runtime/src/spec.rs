//! Loading and validating the bundle config.json (OCI runtime-spec via oci-spec).
//!
//! Parsing goes through `serde_path_to_error`, so a malformed document names the JSON field that
//! failed (`linux.namespaces[2].type: unknown variant ...`). [`validate`] then checks what serde
//! cannot: paths that must exist, absolute paths, namespace consistency, mount sanity.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// The OCI runtime-spec versions this runtime accepts (major 1).
pub const OCI_VERSION_MIN: &str = "1.0.0";
/// The newest runtime-spec version implemented.
pub const OCI_VERSION_MAX: &str = "1.2.0";

/// Errors loading or validating a bundle's config.json.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("malformed {path}: {field}: {message}")]
    Parse {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("invalid config {field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Reads `<bundle>/config.json` and validates it. The bundle path is made absolute.
pub fn load(bundle: &Path) -> Result<Spec, SpecError> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|source| SpecError::Read {
        path: path.clone(),
        source,
    })?;
    let spec = parse(&data).map_err(|(field, message)| SpecError::Parse {
        path,
        field,
        message,
    })?;
    validate(&spec, bundle)?;
    Ok(spec)
}

/// Parses a config document; on error returns (field path, message).
pub fn parse(data: &[u8]) -> Result<Spec, (String, String)> {
    let de = &mut serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." {
            "(document)".to_string()
        } else {
            field
        };
        (field, e.into_inner().to_string())
    })
}

/// The rootfs directory: root.path resolved against the bundle.
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf, SpecError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "missing"))?;
    let p = root.path();
    Ok(if p.is_absolute() {
        p.clone()
    } else {
        bundle.join(p)
    })
}

/// True when the spec asks for a new (not joined) namespace of this type.
pub fn has_new_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    namespace_entry(spec, typ).is_some_and(|path| path.is_none())
}

/// `Some(None)` for a new namespace, `Some(Some(path))` for a joined one, `None` when absent.
pub fn namespace_entry(spec: &Spec, typ: LinuxNamespaceType) -> Option<Option<PathBuf>> {
    let ns = spec.linux().as_ref()?.namespaces().as_ref()?;
    ns.iter().find(|n| n.typ() == typ).map(|n| n.path().clone())
}

/// Checks everything the runtime relies on before it forks.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<(), SpecError> {
    validate_version(spec.version())?;
    let rootfs = rootfs_path(spec, bundle)?;
    if !rootfs.is_dir() {
        return Err(invalid(
            "root.path",
            format!("{} is not a directory", rootfs.display()),
        ));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process", "missing"))?;
    validate_process(process)?;
    validate_mounts(spec)?;
    validate_linux(spec)?;
    if let Some(hooks) = spec.hooks() {
        let all = [
            ("prestart", hooks.prestart()),
            ("createRuntime", hooks.create_runtime()),
            ("createContainer", hooks.create_container()),
            ("startContainer", hooks.start_container()),
            ("poststart", hooks.poststart()),
            ("poststop", hooks.poststop()),
        ];
        for (kind, list) in all {
            for (i, h) in list.iter().flatten().enumerate() {
                if !h.path().is_absolute() {
                    return Err(invalid(
                        format!("hooks.{kind}[{i}].path"),
                        "must be absolute",
                    ));
                }
                if h.timeout().is_some_and(|t| t <= 0) {
                    return Err(invalid(
                        format!("hooks.{kind}[{i}].timeout"),
                        "must be positive",
                    ));
                }
            }
        }
    }
    Ok(())
}

fn validate_version(v: &str) -> Result<(), SpecError> {
    let major = v.split('.').next().unwrap_or_default();
    if major != "1" {
        return Err(invalid(
            "ociVersion",
            format!("unsupported version {v:?} (supported {OCI_VERSION_MIN}..{OCI_VERSION_MAX})"),
        ));
    }
    Ok(())
}

/// Validates a process (also used for `exec -p process.json`).
pub fn validate_process(process: &oci_spec::runtime::Process) -> Result<(), SpecError> {
    let args = process.args().as_deref().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        return Err(invalid("process.args", "must name a program"));
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            "process.cwd",
            format!("{} is not absolute", process.cwd().display()),
        ));
    }
    for (i, e) in process.env().iter().flatten().enumerate() {
        if !e.contains('=') || e.starts_with('=') {
            return Err(invalid(
                format!("process.env[{i}]"),
                format!("{e:?} is not KEY=value"),
            ));
        }
    }
    Ok(())
}

fn validate_mounts(spec: &Spec) -> Result<(), SpecError> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let dest = m.destination();
        if !dest.is_absolute() {
            return Err(invalid(
                format!("mounts[{i}].destination"),
                format!("{} is not absolute", dest.display()),
            ));
        }
        if dest
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(invalid(
                format!("mounts[{i}].destination"),
                "must not contain ..",
            ));
        }
        let opts = m.options().as_deref().unwrap_or_default();
        let is_bind =
            m.typ().as_deref() == Some("bind") || opts.iter().any(|o| o == "bind" || o == "rbind");
        if is_bind {
            let src = m.source().as_ref().ok_or_else(|| {
                invalid(format!("mounts[{i}].source"), "bind mount needs a source")
            })?;
            if !src.exists() {
                return Err(invalid(
                    format!("mounts[{i}].source"),
                    format!("{} does not exist", src.display()),
                ));
            }
        } else if m.typ().as_deref().unwrap_or_default().is_empty() {
            return Err(invalid(
                format!("mounts[{i}].type"),
                "missing (and not a bind mount)",
            ));
        }
    }
    Ok(())
}

fn validate_linux(spec: &Spec) -> Result<(), SpecError> {
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| invalid("linux", "missing"))?;
    let mut seen = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(invalid(
                format!("linux.namespaces[{i}].type"),
                format!("duplicate namespace {}", ns.typ()),
            ));
        }
        if let Some(p) = ns.path()
            && !p.exists()
        {
            return Err(invalid(
                format!("linux.namespaces[{i}].path"),
                format!("{} does not exist", p.display()),
            ));
        }
    }
    let new_user = has_new_namespace(spec, LinuxNamespaceType::User);
    let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if new_user && !maps {
        return Err(invalid(
            "linux.uidMappings",
            "a new user namespace needs uid and gid mappings",
        ));
    }
    if maps && !new_user {
        return Err(invalid(
            "linux.uidMappings",
            "mappings given without a new user namespace",
        ));
    }
    let uts = has_new_namespace(spec, LinuxNamespaceType::Uts);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !uts {
        return Err(invalid(
            "hostname",
            "setting the hostname needs a new uts namespace",
        ));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !uts {
        return Err(invalid(
            "domainname",
            "setting the domainname needs a new uts namespace",
        ));
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty())
        && !has_new_namespace(spec, LinuxNamespaceType::Time)
    {
        return Err(invalid(
            "linux.timeOffsets",
            "time offsets need a new time namespace",
        ));
    }
    for clock in linux.time_offsets().iter().flat_map(|t| t.keys()) {
        if clock != "monotonic" && clock != "boottime" {
            return Err(invalid(
                format!("linux.timeOffsets.{clock}"),
                "only monotonic and boottime clocks",
            ));
        }
    }
    if let Some(p) = linux.cgroups_path()
        && p.components().any(|c| c == std::path::Component::ParentDir)
    {
        return Err(invalid("linux.cgroupsPath", "must not contain .."));
    }
    for key in linux.sysctl().iter().flat_map(|s| s.keys()) {
        if key.contains('/') && key.contains("..") || key.is_empty() {
            return Err(invalid(format!("linux.sysctl.{key}"), "invalid key"));
        }
    }
    Ok(())
}

/// Container ids: like runc, `[A-Za-z0-9_+\-.]+`, not `.` or `..`.
pub fn validate_id(id: &str) -> Result<(), SpecError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid("container id", format!("{id:?} is invalid")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("rootfs")).unwrap();
        d
    }

    const BASE: &str = r#"{"ociVersion":"1.2.0","root":{"path":"rootfs"},
        "process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},
        "linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"uts"}]},
        "hostname":"h"}"#;

    fn with(patch: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(BASE).unwrap();
        patch(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    fn check(data: &[u8]) -> Result<(), SpecError> {
        let b = bundle();
        std::fs::write(b.path().join("config.json"), data).unwrap();
        load(b.path()).map(drop)
    }

    #[test]
    fn valid_config_loads() {
        check(BASE.as_bytes()).unwrap();
    }

    #[test]
    fn unknown_namespace_names_field() {
        let e = check(&with(|v| {
            v["linux"]["namespaces"][1]["type"] = "bogus".into()
        }))
        .unwrap_err();
        assert!(e.to_string().contains("linux.namespaces[1].type"), "{e}");
    }

    #[test]
    fn malformed_json_is_an_error() {
        let e = check(b"{\"ociVersion\": ").unwrap_err();
        assert!(matches!(e, SpecError::Parse { .. }), "{e}");
    }

    #[test]
    fn relative_cwd_rejected() {
        let e = check(&with(|v| v["process"]["cwd"] = "tmp".into())).unwrap_err();
        assert!(e.to_string().contains("process.cwd"), "{e}");
    }

    #[test]
    fn missing_rootfs_rejected() {
        let e = check(&with(|v| v["root"]["path"] = "nope".into())).unwrap_err();
        assert!(e.to_string().contains("root.path"), "{e}");
    }

    #[test]
    fn bad_mount_rejected() {
        let e = check(&with(
            |v| {
                v["mounts"] =
                    serde_json::json!([{"destination":"relative","type":"tmpfs","source":"tmpfs"}])
            },
        ))
        .unwrap_err();
        assert!(e.to_string().contains("mounts[0].destination"), "{e}");
    }

    #[test]
    fn hostname_without_uts_rejected() {
        let e = check(&with(|v| {
            v["linux"]["namespaces"] = serde_json::json!([{"type":"pid"}])
        }))
        .unwrap_err();
        assert!(e.to_string().contains("hostname"), "{e}");
    }

    #[test]
    fn ids() {
        validate_id("abc-1_2.x+y").unwrap();
        assert!(validate_id("..").is_err());
        assert!(validate_id("a/b").is_err());
        assert!(validate_id("").is_err());
    }
}

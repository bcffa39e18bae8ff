//! Linux namespaces: create new ones, join existing ones by path, user namespace id mappings.
//!
//! Order matters: the user namespace is joined (or created and mapped) first, so every other
//! namespace created afterwards is owned by it; namespaces given by path are joined next; the
//! remaining new ones are unshared together (CLONE_NEWPID and CLONE_NEWTIME take effect for
//! children, which is why the runtime forks once more after [`unshare_new`]).

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

/// Errors creating or joining namespaces.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("open namespace {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("setns({kind}) to {path}: {source}")]
    Setns {
        kind: String,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("unshare({flags:?}): {source}")]
    Unshare {
        flags: CloneFlags,
        source: nix::Error,
    },
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Every namespace type, in the order they are joined (user first, mount late).
pub const JOIN_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

/// The clone flag for a namespace type.
pub fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        // nix has no constant for CLONE_NEWTIME (0x80).
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The entry name under /proc/PID/ns/.
pub fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// An opened namespace file, ready for setns.
#[derive(Debug)]
pub struct NsHandle {
    pub typ: LinuxNamespaceType,
    pub path: PathBuf,
    file: File,
}

impl NsHandle {
    pub fn open(typ: LinuxNamespaceType, path: &Path) -> Result<Self, NamespaceError> {
        let file = File::open(path).map_err(|source| NamespaceError::Open {
            path: path.into(),
            source,
        })?;
        Ok(Self {
            typ,
            path: path.into(),
            file,
        })
    }

    /// setns(2) into this namespace.
    pub fn enter(&self) -> Result<(), NamespaceError> {
        nix::sched::setns(self.file.as_fd(), clone_flag(self.typ)).map_err(|source| {
            NamespaceError::Setns {
                kind: proc_name(self.typ).into(),
                path: self.path.clone(),
                source,
            }
        })
    }
}

/// Opens the namespaces the spec joins by path, in [`JOIN_ORDER`]. Opened before any setns,
/// because joining a mount namespace changes what the paths resolve to.
pub fn open_spec_paths(spec: &Spec) -> Result<Vec<NsHandle>, NamespaceError> {
    let mut out = Vec::new();
    for typ in JOIN_ORDER {
        if let Some(Some(path)) = crate::spec::namespace_entry(spec, typ) {
            out.push(NsHandle::open(typ, &path)?);
        }
    }
    Ok(out)
}

/// Opens every namespace of `pid` that differs from ours, in [`JOIN_ORDER`] (for `exec`).
pub fn open_process_namespaces(pid: i32) -> Result<Vec<NsHandle>, NamespaceError> {
    let mut out = Vec::new();
    for typ in JOIN_ORDER {
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/{}", proc_name(typ)));
        let ours = PathBuf::from(format!("/proc/self/ns/{}", proc_name(typ)));
        let (Ok(t), Ok(o)) = (std::fs::metadata(&theirs), std::fs::metadata(&ours)) else {
            continue; // kernel without this namespace type
        };
        if t.ino() != o.ino() || t.dev() != o.dev() {
            out.push(NsHandle::open(typ, &theirs)?);
        }
    }
    Ok(out)
}

/// The flags of the new namespaces other than user (unshared after joining).
pub fn new_namespace_flags(spec: &Spec) -> CloneFlags {
    let mut flags = CloneFlags::empty();
    for typ in JOIN_ORDER {
        if typ != LinuxNamespaceType::User && crate::spec::has_new_namespace(spec, typ) {
            flags |= clone_flag(typ);
        }
    }
    flags
}

/// unshare(2) the given namespaces.
pub fn unshare(flags: CloneFlags) -> Result<(), NamespaceError> {
    if flags.is_empty() {
        return Ok(());
    }
    nix::sched::unshare(flags).map_err(|source| NamespaceError::Unshare { flags, source })
}

fn write_file(path: &Path, data: &str) -> Result<(), NamespaceError> {
    std::fs::write(path, data).map_err(|source| NamespaceError::Write {
        path: path.into(),
        source,
    })
}

fn mapping_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Written by the parent for a child that created a user namespace: setgroups (deny when we
/// lack CAP_SETGID in the parent namespace, i.e. when not root), gid_map, uid_map.
pub fn write_id_mappings(pid: i32, spec: &Spec) -> Result<(), NamespaceError> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let proc = PathBuf::from(format!("/proc/{pid}"));
    if !nix::unistd::geteuid().is_root() {
        write_file(&proc.join("setgroups"), "deny")?;
    }
    if let Some(g) = linux.gid_mappings() {
        write_file(&proc.join("gid_map"), &mapping_text(g))?;
    }
    if let Some(u) = linux.uid_mappings() {
        write_file(&proc.join("uid_map"), &mapping_text(u))?;
    }
    Ok(())
}

/// Writes linux.timeOffsets to /proc/self/timens_offsets (after unsharing the time namespace,
/// before the first child is created in it).
pub fn write_time_offsets(spec: &Spec) -> Result<(), NamespaceError> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let text: String = offsets
        .iter()
        .map(|(clock, o)| {
            format!(
                "{clock} {} {}\n",
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0)
            )
        })
        .collect();
    if text.is_empty() {
        return Ok(());
    }
    write_file(Path::new("/proc/self/timens_offsets"), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_cover_every_type() {
        let mut all = CloneFlags::empty();
        for t in JOIN_ORDER {
            all |= clone_flag(t);
        }
        assert_eq!(all.bits().count_ones(), 8);
        assert_eq!(JOIN_ORDER[0], LinuxNamespaceType::User);
    }

    #[test]
    fn mapping_format() {
        let m: LinuxIdMapping =
            serde_json::from_str(r#"{"containerID":0,"hostID":100000,"size":65536}"#).unwrap();
        assert_eq!(mapping_text(&[m]), "0 100000 65536\n");
    }

    #[test]
    fn own_namespaces_are_not_joined() {
        let own = open_process_namespaces(std::process::id() as i32).unwrap();
        assert!(own.is_empty());
    }
}
